"""A real exported bundle (one channel whose vouchers a delegated key signs, one voucher, two
receipts), built once for the fuzz test."""

import tempfile
from pathlib import Path

from eth_account import Account

from micropay.channel import ETH, ChannelKey, ChannelRef
from micropay.ledger import Ledger, TaskReceipt, extend_entries
from micropay.records import ChannelRecord
from micropay.store import VoucherStore
from micropay.voucher import sign_voucher


def _bundle() -> dict:
    payer, signer = Account.from_key(b"\x09" * 32), Account.from_key(b"\x0a" * 32)
    key = ChannelKey(payer.address, "0x" + "22" * 20, ETH, 1, signer.address)
    escrow = "0x" + "33" * 20  # an address is all the bundle needs; no chain is involved
    receipts = [TaskReceipt("a", 5), TaskReceipt("b", 7, note="n")]
    ledger = Ledger.of(receipts)
    voucher = sign_voucher(signer, chain_id=1, escrow=escrow, channel_id=key.id, amount=ledger.total,
                           ledger_root=ledger.root)
    with tempfile.TemporaryDirectory() as tmp:
        store = VoucherStore(Path(tmp) / "b.db")
        store.add_channel(ChannelRecord(key, 1, escrow, "payee", 100, 0, 2**31, 3600, False, 0.0))
        with store.transaction() as tx:
            tx.add_receipts(ChannelRef(1, escrow, key.id), 0, extend_entries(None, receipts))
            tx.add_voucher(voucher, 2)
        bundle = store.export()
        store.close()
    return bundle


BUNDLE = _bundle()
