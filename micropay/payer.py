"""Payer: the client side. Open a channel, pay per task with vouchers, exit safely.

The rule that keeps the client's money safe: the new cumulative amount, its ledger and the
voucher are committed to the store *before* the voucher is returned, in one transaction that
holds the store's write lock. So a cumulative amount is never signed twice (not after a crash,
not by two threads or processes at once), and a payment can never exceed the deposit.

Paying needs no node: a Payer built with ``escrow=None`` signs from what the store holds.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

from eth_account.signers.local import LocalAccount

from micropay.channel import ETH, ChannelKey, ChannelRef, Duration, to_seconds
from micropay.errors import (
    ChannelError,
    ChannelExpired,
    ChannelFinal,
    InsufficientDeposit,
    MicropayError,
    MicropayValueError,
    NodeError,
    NotParticipant,
    StoreError,
    TransactionPending,
)
from micropay.escrow import Escrow
from micropay.ledger import EMPTY_ROOT, LedgerEntry, TaskReceipt, extend_entries
from micropay.payment import Payment
from micropay.records import ChannelRecord
from micropay.store import ChannelLike, VoucherStore
from micropay.voucher import sign_voucher


class Payer:
    """A client paying freelancers from ``account`` (an eth-account ``LocalAccount``).

    ``escrow`` is the chain door for opening, topping up and closing; ``None`` works offline
    (paying and resending need only the store). Raises :class:`MicropayValueError` if
    ``account`` cannot sign."""

    def __init__(self, escrow: Escrow | None, account: LocalAccount,
                 store: VoucherStore | str | os.PathLike[str]) -> None:
        if not isinstance(account, LocalAccount):
            raise MicropayValueError("a Payer signs vouchers, so it needs an eth-account LocalAccount")
        self._escrow = escrow
        self.account = account
        self.store = VoucherStore.open(store)

    @property
    def address(self) -> str:
        """The checksummed address this payer pays from."""
        return self.account.address

    @property
    def escrow(self) -> Escrow:
        """The escrow proxy; raises :class:`NodeError` for an offline payer."""
        if self._escrow is None:
            raise NodeError("this needs the chain: give the Payer an Escrow (the CLI: --rpc URL)")
        return self._escrow

    # -- channels --------------------------------------------------------------------------

    def open_channel(self, payee: str, deposit: int, token: str | None = None,
                     expires_in: Duration = timedelta(days=30), *, window: Duration = timedelta(days=1),
                     salt: int | None = None) -> ChannelRecord:
        """Open a channel to ``payee`` with ``deposit`` base units (wei for ETH). For a token, the
        escrow is approved for exactly the deposit first if it is not already. Raises what
        :meth:`Escrow.open` raises."""
        token = ETH if token is None else token
        if token != ETH:
            self.escrow.token(token).ensure_allowance(self.account, self.escrow.address, deposit)
        expiry, seconds = self.escrow.now() + to_seconds(expires_in), to_seconds(window)
        recorded: list[ChannelRecord] = []

        def record_first(key: ChannelKey) -> None:
            # The salt is otherwise only in the event: an interrupted open must leave a trace
            # that `micropay sync` can find the funded channel by.
            unseen = ChannelRecord(key, self.escrow.chain_id, self.escrow.address, "payer", 0, 0, expiry, seconds,
                                   False, 0.0, 0)
            self.store.add_channel(unseen)
            recorded.append(unseen)

        try:
            key, _ = self.escrow.open(self.account, payee, deposit, token=token, salt=salt, expiry=expiry,
                                      window=seconds, before_send=record_first)
        except MicropayError as exc:
            if recorded and not isinstance(exc, TransactionPending):  # refused: nothing was opened
                with self.store.transaction() as tx:
                    tx.forget_unopened(recorded[0].ref)
            raise
        return self.sync(ChannelRef(self.escrow.chain_id, self.escrow.address, key.id))

    def ref(self, channel: ChannelLike) -> ChannelRef:
        """The full reference of ``channel``: a bare id is taken to be on this payer's escrow
        (offline: the one channel with that id in the store)."""
        if isinstance(channel, ChannelRef):
            return channel
        if self._escrow is not None:
            return ChannelRef(self._escrow.chain_id, self._escrow.address, channel)
        return self.store.channel(channel).ref

    def channel(self, channel: ChannelLike) -> ChannelRecord:
        """Raises :class:`UnknownChannel`, or :class:`NotParticipant` if this account does not pay it."""
        record = self.store.channel(self.ref(channel))
        if record.role != "payer" or record.key.payer != self.address:
            raise NotParticipant(f"channel 0x{record.id.hex()} is not one this account pays from")
        return record

    def key(self, channel: ChannelLike) -> ChannelKey:
        """The key of ``channel``. Raises :class:`UnknownChannel`, :class:`NotParticipant` if this account
        does not pay it, or :class:`StoreError` (see :meth:`channel`)."""
        return self.channel(channel).key

    def ledger(self, channel: ChannelLike) -> list[LedgerEntry]:
        """The channel's task receipts as stored, each with the root and total after it. Raises
        :class:`UnknownChannel`, :class:`NotParticipant` or :class:`StoreError` (see :meth:`channel`)."""
        return self.store.ledger(self.channel(channel).ref)

    def sync(self, channel: ChannelLike) -> ChannelRecord:
        """Refresh the stored deposit, claimed amount and expiry from the chain."""
        record = self.channel(channel)
        fresh = record.updated(self.escrow.channel(record.key), checked_at=time.time())
        self.store.update_chain_state(fresh)
        return fresh

    # -- paying ----------------------------------------------------------------------------

    def pay(self, channel: ChannelLike, amount: int, task: str, *, deliverable: bytes = EMPTY_ROOT,
            note: str = "") -> Payment:
        """Pay ``amount`` base units for ``task``. Returns the new cumulative voucher with this
        task's receipt, already committed to the store. Works offline.

        Raises :class:`UnknownChannel`, :class:`NotParticipant`, :class:`ChannelFinal`,
        :class:`ChannelExpired`, :class:`InsufficientDeposit` (with the shortfall), or
        :class:`InvalidReceipt` for a bad task."""
        receipt = TaskReceipt(task, amount, deliverable, note)
        ref = self.ref(channel)
        with self.store.transaction() as tx:
            tip = tx.tip(ref)  # the ledger's last entry, not the whole ledger
            if tip is None:
                raise self.store.unknown(ref)
            record, last = tip.record, tip.last
            count = tip.best.receipt_count if tip.best else 0
            if record.role != "payer" or record.key.payer != self.address:
                raise NotParticipant(f"{ref} is not one this account pays from")
            if not record.seen_on_chain:
                raise ChannelError(f"{ref} was recorded before its opening transaction was confirmed: check it on "
                                   "chain before paying (`micropay sync`; in Python, micropay.sync.sync)")
            if record.closed:
                raise ChannelFinal("the channel is closed")
            if record.expiry <= time.time():  # advisory (the payee enforces its own margin); no RPC
                raise ChannelExpired("the channel has expired: open a new one")
            previous_total = last.total if last else 0
            if previous_total != record.issued:
                # A channel rebuilt from the chain (`sync`) without its ledger, or an altered file:
                # anything this store signs now could repeat an amount it signed before.
                raise StoreError(f"{ref}: this store's ledger ends at {previous_total} but it may have signed up to "
                                 f"{record.issued} (it was rebuilt from the chain, or altered): paying again could "
                                 "sign an amount twice. Request-close it and open a new channel")
            total = previous_total + amount
            if total > record.deposit:
                raise InsufficientDeposit(
                    f"paying {amount} would bring the channel to {total}, above its deposit {record.deposit}: "
                    f"top up at least {total - record.deposit}", shortfall=total - record.deposit)
            (entry,) = extend_entries(last, [receipt])
            voucher = sign_voucher(self.account, chain_id=record.chain_id, escrow=record.escrow,
                                   channel_id=record.id, amount=total, ledger_root=entry.root)
            tx.add_receipts(ref, count, [entry])
            tx.add_voucher(voucher, count + 1, ref)
            tx.set_issued(ref, total)
        return Payment.of(voucher, (receipt,), count)

    def resend(self, channel: ChannelLike, since: int = 0) -> Payment:
        """The latest payment again, with the receipts from index ``since`` (what a payee that
        reported a :class:`~micropay.errors.LedgerGap` asks for). Signs nothing new.

        Raises :class:`MicropayValueError` if nothing was paid yet."""
        return latest_payment(self.store, self.channel(channel), since)

    # -- deposit and exit ------------------------------------------------------------------

    def top_up(self, channel: ChannelLike, amount: int) -> ChannelRecord:
        """Add ``amount`` to the deposit (approving a token first if needed)."""
        record = self.channel(channel)
        if record.key.token != ETH:
            self.escrow.token(record.key.token).ensure_allowance(self.account, self.escrow.address, amount)
        self.escrow.top_up(self.account, record.key, amount)
        return self.sync(record.ref)

    def extend(self, channel: ChannelLike, expires_in: Duration) -> ChannelRecord:
        """Move the expiry to ``expires_in`` from now."""
        record = self.channel(channel)
        self.escrow.extend(self.account, record.key, self.escrow.now() + to_seconds(expires_in))
        return self.sync(record.ref)

    def request_close(self, channel: ChannelLike) -> ChannelRecord:
        """Start the exit: the payee keeps one challenge window to claim, then :meth:`reclaim`."""
        record = self.channel(channel)
        self.escrow.request_close(self.account, record.key)
        return self.sync(record.ref)

    def reclaim(self, channel: ChannelLike) -> int:
        """After expiry, take back what was not claimed. Returns the refund."""
        record = self.channel(channel)
        refund = self.escrow.refund_in(self.escrow.reclaim(self.account, record.key))
        self.sync(record.ref)
        return refund


def latest_payment(store: VoucherStore, record: ChannelRecord, since: int = 0) -> Payment:
    """The latest payment on a payer's stored channel, with the receipts from index ``since``:
    read from the store, signing nothing (so it needs no key). Raises
    :class:`MicropayValueError` if nothing was paid on it yet."""
    best = store.best_voucher(record.ref)
    if best is None:
        raise MicropayValueError("nothing was paid on this channel yet")
    receipts = tuple(e.receipt for e in store.ledger(record.ref, start=since))
    return Payment.of(best[0], receipts, since)
