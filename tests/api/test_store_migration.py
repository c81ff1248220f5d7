"""A version-1 store (channels keyed by id alone) opens as version 2, keyed by chain, escrow and id,
with every channel, receipt, voucher and settlement kept."""

import sqlite3
from dataclasses import replace

import pytest
from eth_account import Account

from micropay import ChannelKey, StoreError, VoucherStore
from micropay.channel import ETH, ChannelRef
from micropay.ledger import TaskReceipt, extend_entries
from micropay.records import u256
from micropay.schema import MIGRATIONS, SCHEMA_VERSION
from micropay.voucher import sign_voucher

PAYER = Account.from_key(b"\x31" * 32)
ESCROW = "0x" + "ab" * 20


def version_one_store(path, chain_id=10):
    """A store file exactly as micropay wrote it before version 2: one channel with two paid
    tasks, and one pending settlement."""
    key = ChannelKey(PAYER.address, "0x" + "22" * 20, ETH, 7)
    entries = extend_entries(None, [TaskReceipt("a", 5), TaskReceipt("b", 7, note="n")])
    vouchers = [sign_voucher(PAYER, chain_id=chain_id, escrow=ESCROW, channel_id=key.id, amount=e.total,
                             ledger_root=e.root) for e in entries]
    db = sqlite3.connect(path)
    for statement in MIGRATIONS[1]:
        db.execute(statement)
    db.execute("INSERT INTO channels VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
               (key.id, chain_id, ESCROW, "payee", key.payer, key.payee, key.token, u256(key.salt), u256(100),
                u256(0), 2**31, 3600, 0, 1.0, 1, u256(0)))
    for i, entry in enumerate(entries):
        r = entry.receipt
        db.execute("INSERT INTO receipts VALUES (?,?,?,?,?,?,?,?)",
                   (key.id, i, r.task_id, u256(r.amount), r.deliverable, r.note, entry.root, u256(entry.total)))
    for count, voucher in enumerate(vouchers, start=1):
        db.execute("INSERT INTO vouchers VALUES (?,?,?,?,?,?)",
                   (key.id, u256(voucher.amount), voucher.ledger_root, voucher.signature, count, 0.0))
    db.execute("INSERT INTO settlements VALUES (?,?,?,?,?,?,?,?,?,?,?)",
               (b"\x55" * 32, b"raw", ESCROW, ETH, "pending", f'[["{key.id.hex()}", "12"]]', u256(12), None, None,
                None, 5.0))
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    return key, entries, vouchers


def test_a_version_one_store_is_migrated_with_everything_kept(tmp_path):
    path = tmp_path / "old.db"
    key, entries, vouchers = version_one_store(path)
    store = VoucherStore(path)
    assert store.schema_version == SCHEMA_VERSION == 2
    ref = ChannelRef(10, ESCROW, key.id)
    record = store.channel(ref)
    assert (record.key, record.deposit, record.expiry, record.role) == (key, 100, 2**31, "payee")
    assert store.channel(key.id) == record  # a bare id still finds it: it is unique in this store
    assert [e.receipt for e in store.ledger(ref)] == [e.receipt for e in entries]
    assert store.best_voucher(ref) == (vouchers[-1], 2)
    assert store.voucher_count(ref) == 2
    (settlement,) = store.settlements()
    assert (settlement.chain_id, settlement.status, settlement.items) == (10, "pending", [(key.id, 12)])


def test_the_migrated_store_takes_the_same_channel_id_on_another_chain(tmp_path):
    path = tmp_path / "old.db"
    key, _, _ = version_one_store(path)
    store = VoucherStore(path)
    other = ChannelRef(11, ESCROW, key.id)  # same escrow address and channel id, another chain
    record = store.channel(ChannelRef(10, ESCROW, key.id))
    store.add_channel(replace(record, chain_id=11))
    assert store.channel(other).chain_id == 11
    assert store.best_voucher(other) is None and store.ledger(other) == []  # nothing of chain 10 leaks in
    assert len(store.channels_with_id(key.id)) == 2
    with pytest.raises(StoreError, match="on 2 chains or escrows"):  # a bare id is now ambiguous
        store.channel(key.id)


def test_a_store_opened_by_two_processes_migrates_once(tmp_path):
    path = tmp_path / "old.db"
    version_one_store(path)
    first, second = VoucherStore(path), VoucherStore(path)  # the second finds it migrated already
    assert first.schema_version == second.schema_version == SCHEMA_VERSION
    assert len(second.channels()) == 1
