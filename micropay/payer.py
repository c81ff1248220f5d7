"""Payer: the client side. Open a channel, pay per task with vouchers, exit safely.

The rule that keeps the client's money safe: the new cumulative amount, its ledger and the
voucher are committed to the store *before* the voucher is returned, in one transaction that
holds the store's write lock. So a cumulative amount is never signed twice (not after a crash,
not by two threads or processes at once), and a payment can never exceed the deposit.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

from eth_account.signers.local import LocalAccount

from micropay.errors import (
    ChannelExpired,
    ChannelFinal,
    InsufficientDeposit,
    MicropayValueError,
    NotParticipant,
    StoreError,
)
from micropay.escrow import ETH, ChannelKey, Escrow
from micropay.ledger import EMPTY_ROOT, TaskReceipt
from micropay.payment import Payment
from micropay.store import ChannelRecord, LedgerEntry, VoucherStore, extend_entries
from micropay.token import Token
from micropay.voucher import sign_voucher


def _open_store(store: VoucherStore | str | os.PathLike[str]) -> VoucherStore:
    return store if isinstance(store, VoucherStore) else VoucherStore(store)


def _seconds(value: timedelta | int) -> int:
    return int(value.total_seconds()) if isinstance(value, timedelta) else int(value)


class Payer:
    """A client paying freelancers from ``account`` (an eth-account ``LocalAccount``)."""

    def __init__(self, escrow: Escrow, account: LocalAccount, store: VoucherStore | str | os.PathLike[str]) -> None:
        if not isinstance(account, LocalAccount):
            raise MicropayValueError("a Payer signs vouchers, so it needs an eth-account LocalAccount")
        self.escrow = escrow
        self.account = account
        self.store = _open_store(store)

    @property
    def address(self) -> str:
        return self.account.address

    # -- channels --------------------------------------------------------------------------

    def open_channel(
        self,
        payee: str,
        deposit: int,
        token: str | None = None,
        expires_in: timedelta | int = timedelta(days=30),
        *,
        window: timedelta | int = timedelta(days=1),
        salt: int | None = None,
    ) -> ChannelRecord:
        """Open a channel to ``payee`` with ``deposit`` base units (wei for ETH). For a token, the
        escrow is approved for exactly the deposit first if it is not already."""
        token = ETH if token is None else token
        if token != ETH:
            erc20 = Token(self.escrow.w3, token)
            if erc20.allowance(self.address, self.escrow.address) < deposit:
                erc20.approve(self.account, self.escrow.address, deposit, self.escrow.options)
        expiry = self.escrow.now() + _seconds(expires_in)
        key, _ = self.escrow.open(self.account, payee, deposit, token=token, salt=salt, expiry=expiry,
                                  window=_seconds(window))
        state = self.escrow.channel(key)
        record = ChannelRecord(key, self.escrow.chain_id, self.escrow.address, "payer", state.deposit,
                               state.claimed, state.expiry, state.window, state.closed, time.time(),
                               state.observed_at)
        self.store.add_channel(record)
        return record

    def channel(self, channel_id: bytes) -> ChannelRecord:
        record = self.store.channel(channel_id)
        if record.role != "payer" or record.key.payer != self.address:
            raise NotParticipant(f"channel 0x{channel_id.hex()} is not one this account pays from")
        return record

    def ledger(self, channel_id: bytes) -> list[LedgerEntry]:
        return self.store.ledger(self.channel(channel_id).id)

    def sync(self, channel_id: bytes) -> ChannelRecord:
        """Refresh the stored deposit, claimed amount and expiry from the chain."""
        record = self.channel(channel_id)
        state = self.escrow.channel(record.key)
        fresh = record.updated(state, checked_at=time.time())
        self.store.update_chain_state(fresh)
        return fresh

    # -- paying ----------------------------------------------------------------------------

    def pay(self, channel_id: bytes, amount: int, task: str, *, deliverable: bytes = EMPTY_ROOT,
            note: str = "") -> Payment:
        """Pay ``amount`` base units for ``task``. Returns the new cumulative voucher (a
        :class:`Payment` that carries this task's receipt), already committed to the store."""
        receipt = TaskReceipt(task, amount, deliverable, note)
        with self.store.transaction() as db:
            tip = self.store.tip(channel_id, db)  # the ledger's last entry, not the whole ledger
            if tip is None:
                raise self.store.unknown(channel_id)
            record, last = tip.record, tip.last
            count = tip.best.receipt_count if tip.best else 0
            if record.role != "payer" or record.key.payer != self.address:
                raise NotParticipant(f"channel 0x{channel_id.hex()} is not one this account pays from")
            if record.closed:
                raise ChannelFinal("the channel is closed")
            if record.expiry <= time.time():  # advisory (the payee enforces its own margin); no RPC
                raise ChannelExpired("the channel has expired: open a new one")
            previous_total = last.total if last else 0
            if previous_total != record.issued:
                raise StoreError("the store's ledger and issued amount disagree: it was altered")
            total = previous_total + amount
            if total > record.deposit:
                raise InsufficientDeposit(
                    f"paying {amount} would bring the channel to {total}, above its deposit {record.deposit}: "
                    f"top up at least {total - record.deposit}", shortfall=total - record.deposit)
            (entry,) = extend_entries(last, [receipt])
            voucher = sign_voucher(self.account, chain_id=record.chain_id, escrow=record.escrow,
                                   channel_id=channel_id, amount=total, ledger_root=entry.root)
            self.store.add_receipts(db, channel_id, count, [entry])
            self.store.add_voucher(db, voucher, count + 1)
            self.store.set_issued(db, channel_id, total)
        return Payment.of(voucher, (receipt,), count)

    def resend(self, channel_id: bytes, since: int = 0) -> Payment:
        """The latest payment again, with the receipts from index ``since`` (what a payee that
        reported a :class:`~micropay.errors.LedgerGap` asks for). Signs nothing new."""
        record = self.channel(channel_id)
        best = self.store.best_voucher(record.id)
        if best is None:
            raise MicropayValueError("nothing was paid on this channel yet")
        receipts = tuple(e.receipt for e in self.store.ledger(record.id, start=since))
        return Payment.of(best[0], receipts, since)

    # -- deposit and exit ------------------------------------------------------------------

    def top_up(self, channel_id: bytes, amount: int) -> ChannelRecord:
        record = self.channel(channel_id)
        if record.key.token != ETH:
            erc20 = Token(self.escrow.w3, record.key.token)
            if erc20.allowance(self.address, self.escrow.address) < amount:
                erc20.approve(self.account, self.escrow.address, amount, self.escrow.options)
        self.escrow.top_up(self.account, record.key, amount)
        return self.sync(channel_id)

    def extend(self, channel_id: bytes, expires_in: timedelta | int) -> ChannelRecord:
        record = self.channel(channel_id)
        self.escrow.extend(self.account, record.key, self.escrow.now() + _seconds(expires_in))
        return self.sync(channel_id)

    def request_close(self, channel_id: bytes) -> ChannelRecord:
        """Start the exit: the payee keeps one challenge window to claim, then :meth:`reclaim`."""
        self.escrow.request_close(self.account, self.channel(channel_id).key)
        return self.sync(channel_id)

    def reclaim(self, channel_id: bytes) -> int:
        """After expiry, take back what was not claimed. Returns the refund."""
        record = self.channel(channel_id)
        receipt = self.escrow.reclaim(self.account, record.key)
        refund = self.escrow.events("Reclaimed", receipt)[0]["args"]["refund"]
        self.sync(channel_id)
        return refund

    def key(self, channel_id: bytes) -> ChannelKey:
        return self.channel(channel_id).key
