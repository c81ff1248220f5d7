"""The client's outbox: payments delivered to the freelancer's inbox, retried until it holds them.

A payment signed on a channel with an inbox is queued in the same transaction that signs it (a
``deliveries`` row, schema 5), so it is never lost between signing and sending. :meth:`Outbox.deliver`
then posts the queue, oldest channel first and in amount order within a channel: the latest of up
to :data:`MAX_PER_POST` queued payments with the receipts of them all (one request for a backlog;
a short rate limit is waited out). The inbox answers:

- held: its acknowledgment is verified (signed by the channel's payee, for this channel, for at
  least this amount, and naming an amount and ledger root this very store signed) and stored;
  every queued payment up to the acknowledged amount is then held (vouchers are cumulative);
- a ledger gap (it missed an earlier payment): the latest payment is resent with the receipts
  from the index it names, and its acknowledgment covers everything up to it;
- a stale voucher (it already holds a later payment): the acknowledgment of what it holds is
  verified the same way and covers this one.

Anything else (unreachable, a timeout, a refusal, a server error, an acknowledgment that does not
verify) is recorded on the row, which stays queued; the channel's later payments wait behind it,
so they arrive in order, and the other channels go on. The server's word alone is never trusted.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from micropay.acknowledgment import Acknowledgment
from micropay.channel import ChannelRef
from micropay.errors import (
    DeliveryFailed,
    InboxError,
    InvalidAcknowledgment,
    MicropayValueError,
    RequestRejected,
    StoreError,
)
from micropay.inbox_client import InboxClient, PaymentAnswer, inbox_url, short_reason
from micropay.payment import Payment
from micropay.records import ChannelRecord, DeliveryRecord
from micropay.store import VoucherStore

Outcome = Literal["held", "failed", "waiting"]
#: The longest failure reason recorded on a queued payment.
MAX_ERROR = 300
#: Queued payments delivered by one request (the last one's voucher, with all their receipts).
MAX_PER_POST = 100
#: How often a payment is posted while the inbox answers "too many requests", and the longest wait.
RATE_LIMIT_TRIES = 3
MAX_RATE_LIMIT_WAIT = 5.0


@dataclass(frozen=True)
class DeliveryResult:
    """What one queued payment (cumulative ``amount`` on ``channel``) came to: ``held`` (with the
    verified ``acknowledgment`` that covers it; ``resent_from`` if a ledger gap made the outbox
    resend the latest payment from that receipt), ``failed`` (``error`` says why; it stays
    queued), or ``waiting`` (still queued behind an earlier payment of its channel that failed)."""

    channel: ChannelRef
    amount: int
    outcome: Outcome
    inbox: str | None
    acknowledgment: Acknowledgment | None = None
    error: str | None = None
    resent_from: int | None = None


@dataclass(frozen=True)
class Backlog:
    """A channel's payments not delivered yet: how many, the value they add together, where they
    go, and the last failure (None if none was tried yet)."""

    channel: ChannelRef
    count: int
    amount: int
    inbox: str | None
    last_error: str | None
    attempts: int


class Outbox:
    """The queue of payments in a payer's ``store`` waiting for their channels' inboxes. Needs no
    key and no node: it posts what the store already signed.

    ``connect_timeout``, ``read_timeout`` and ``deadline`` bound each request (see :class:`InboxClient`)."""

    def __init__(self, store: VoucherStore, *, connect_timeout: float = 5.0, read_timeout: float = 15.0,
                 deadline: float = 30.0) -> None:
        self.store = store
        self.connect_timeout, self.read_timeout, self.deadline = connect_timeout, read_timeout, deadline

    # -- what is queued ----------------------------------------------------------------------------

    def set_inbox(self, channel: ChannelRef, url: str | None) -> str | None:
        """Deliver ``channel``'s payments to ``url`` from its next payment on (None: to no inbox).
        Returns the URL as stored. Raises :class:`MicropayValueError` for a URL that is not
        http(s) (see :func:`inbox_url`), :class:`UnknownChannel` for a channel the store lacks."""
        clean = None if url is None else inbox_url(url)
        with self.store.transaction() as tx:
            tx.channel(channel)
            tx.set_inbox(channel, clean)
        return clean

    def record(self, channel: ChannelRef, amount: int) -> DeliveryRecord | None:
        """The outbox row of the payment of cumulative ``amount`` on ``channel``; None if it was
        never queued (the channel had no inbox when it was signed)."""
        return next((row for row in self.store.deliveries(channel) if row.amount == amount), None)

    def queued(self, channel: ChannelRef | None = None) -> list[DeliveryRecord]:
        """The payments not delivered yet (of ``channel``, or of every channel), in delivery order."""
        return self.store.deliveries(channel, queued_only=True)

    def backlog(self, channel: ChannelRef | None = None) -> list[Backlog]:
        """Per channel with payments not delivered yet (``channel`` only, if given), in delivery order."""
        rows = self.queued(channel)
        records = self._records(channel) if rows else {}
        out = []
        for uid, group in itertools.groupby(rows, key=lambda row: row.channel):
            waiting = list(group)
            record = records.get(uid)
            if record is None:
                continue
            start, _ = self.store.voucher_before(record.ref, waiting[0].amount)
            tried = max((row for row in waiting if row.last_error is not None), default=None,
                        key=lambda row: row.last_attempt or 0.0)  # the latest failure
            out.append(Backlog(record.ref, len(waiting), waiting[-1].amount - start, self.store.inbox(record.ref),
                               None if tried is None else tried.last_error, sum(row.attempts for row in waiting)))
        return out

    # -- delivering ----------------------------------------------------------------------------------

    def deliver(self, channel: ChannelRef | None = None) -> list[DeliveryResult]:
        """Post every queued payment (of ``channel``, or of every channel) to its channel's inbox,
        in order, stopping a channel at its first failure and going on with the others. Returns
        one result per payment that was queued. Never raises for the network or the inbox (each
        failure is recorded on its payment); raises :class:`StoreError` if the store fails."""
        rows = self.queued(channel)
        records = self._records(channel) if rows else {}
        results: list[DeliveryResult] = []
        for uid, group in itertools.groupby(rows, key=lambda row: row.channel):
            record = records.get(uid)
            if record is not None:
                results += self._deliver_channel(record, list(group))
        return results

    def _records(self, channel: ChannelRef | None) -> dict[bytes, ChannelRecord]:
        records = self.store.channels("payer") if channel is None else [self.store.channel(channel)]
        return {record.ref.uid: record for record in records}

    def _deliver_channel(self, record: ChannelRecord, rows: Sequence[DeliveryRecord]) -> list[DeliveryResult]:
        ref = record.ref
        url = self.store.inbox(ref)
        results: list[DeliveryResult] = []
        try:
            if url is None:
                raise DeliveryFailed("the channel has no inbox any more: set one (`micropay pay --inbox URL`), "
                                     "or send the payment by hand (`micropay resend`)")
            client = InboxClient(url, connect_timeout=self.connect_timeout, read_timeout=self.read_timeout,
                                 deadline=self.deadline)
        except (DeliveryFailed, MicropayValueError) as exc:
            self._failed(ref, rows[0].amount, exc)
            return [self._result(ref, rows[0].amount, "failed", url, error=exc),
                    *(self._result(ref, row.amount, "waiting", url) for row in rows[1:])]
        covered: tuple[Acknowledgment, int | None] | None = None
        with client:
            for index, row in enumerate(rows):
                if covered is not None and row.amount <= covered[0].amount:
                    results.append(self._result(ref, row.amount, "held", url, covered[0], resent_from=covered[1]))
                    continue
                # Vouchers are cumulative: the last of up to MAX_PER_POST queued payments, with all
                # their receipts, delivers them all in one request, in order.
                last = rows[min(index + MAX_PER_POST, len(rows)) - 1]
                try:
                    covered = self._post(client, record, last.amount, since=row.amount)
                except InboxError as exc:
                    self._failed(ref, row.amount, exc)
                    results.append(self._result(ref, row.amount, "failed", url, error=exc))
                    results += [self._result(ref, later.amount, "waiting", url) for later in rows[index + 1:]]
                    break
                ack = covered[0]
                with self.store.transaction() as tx:
                    tx.delivery_held(ref, ack.amount, ack.ledger_root, ack.signature)
                results.append(self._result(ref, row.amount, "held", url, ack, resent_from=covered[1]))
        return results

    def _post(self, client: InboxClient, record: ChannelRecord, amount: int, *,
              since: int) -> tuple[Acknowledgment, int | None]:
        """Deliver the payment of ``amount`` with the receipts of every payment from the one of
        ``since`` on: its verified acknowledgment, and the receipt index the latest payment was
        resent from if the inbox reported a ledger gap (else None)."""
        ref = record.ref
        found = self.store.voucher_at(ref, amount)
        if found is None:
            raise StoreError(f"{ref}: a payment of {amount} is queued but its voucher is not stored: the store was "
                             "altered")
        voucher, count = found
        _, first = self.store.voucher_before(ref, since)
        receipts = tuple(entry.receipt for entry in self.store.ledger(ref, start=first)[: count - first])
        answer = _patiently(client, Payment.of(voucher, receipts, first))
        resent = None
        if answer.kind == "ledger_gap" and answer.resend_from is not None:
            resent = answer.resend_from
            best = self.store.best_voucher(ref)
            if best is None or resent > best[1]:
                raise DeliveryFailed(f"the inbox asks for the receipts from #{resent + 1}, but the channel has "
                                     f"{0 if best is None else best[1]}: it is not this channel's inbox")
            answer = _patiently(client, latest_payment(self.store, record, resent))
            if answer.kind == "ledger_gap":
                raise DeliveryFailed(f"the inbox still reports a ledger gap after the resend from #{resent + 1}")
        if answer.acknowledgment is None:
            raise DeliveryFailed("the inbox's answer carries no acknowledgment")
        self.verify(record, answer.acknowledgment, amount)
        return answer.acknowledgment, resent

    def verify(self, record: ChannelRecord, ack: Acknowledgment, amount: int) -> None:
        """Raise :class:`InvalidAcknowledgment` unless ``ack`` proves the payee of ``record`` holds
        the payment of ``amount``: signed by the payee, for this channel, for ``amount`` or more,
        and naming an amount and a ledger root this store signed."""
        ack.verify(record.key.payee, chain_id=record.chain_id, escrow=record.escrow, channel_id=record.id)
        if ack.amount < amount:
            raise InvalidAcknowledgment(f"the acknowledgment is for {ack.amount}, less than the payment of {amount}")
        signed = self.store.voucher_at(record.ref, ack.amount)
        if signed is None or signed[0].ledger_root != ack.ledger_root:
            raise InvalidAcknowledgment(f"the acknowledgment names a payment of {ack.amount} and a ledger this store "
                                        "never signed")

    def _failed(self, ref: ChannelRef, amount: int, exc: Exception) -> None:
        with self.store.transaction() as tx:
            tx.delivery_failed(ref, amount, short_reason(str(exc), MAX_ERROR))

    @staticmethod
    def _result(ref: ChannelRef, amount: int, outcome: Outcome, url: str | None, ack: Acknowledgment | None = None,
                *, error: Exception | None = None, resent_from: int | None = None) -> DeliveryResult:
        return DeliveryResult(ref, amount, outcome, url, ack, None if error is None else short_reason(str(error),
                              MAX_ERROR), resent_from)


def _patiently(client: InboxClient, payment: Payment) -> PaymentAnswer:
    """Post ``payment``, waiting out a short rate limit (a burst of payments on one channel) up to
    :data:`RATE_LIMIT_TRIES` times; raises what :meth:`InboxClient.post_payment` raises."""
    for _ in range(RATE_LIMIT_TRIES - 1):
        try:
            return client.post_payment(payment)
        except RequestRejected as exc:
            if exc.status != 429 or exc.retry_after is None or exc.retry_after > MAX_RATE_LIMIT_WAIT:
                raise
            time.sleep(exc.retry_after)
    return client.post_payment(payment)


def latest_payment(store: VoucherStore, record: ChannelRecord, since: int = 0) -> Payment:
    """The latest payment on a payer's stored channel, with the receipts from index ``since``:
    read from the store, signing nothing (so it needs no key). Raises
    :class:`MicropayValueError` if nothing was paid on it yet."""
    best = store.best_voucher(record.ref)
    if best is None:
        raise MicropayValueError("nothing was paid on this channel yet")
    receipts = tuple(e.receipt for e in store.ledger(record.ref, start=since))
    return Payment.of(best[0], receipts, since)


__all__ = ["Backlog", "DeliveryResult", "Outbox", "latest_payment"]
