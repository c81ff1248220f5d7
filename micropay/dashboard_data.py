"""What a dashboard shows, computed from the store and the chain state the caller read.

These are the figures the pages print (and that browser tests compare to the wei): a
freelancer's earnings over time, received per client and settled; each channel's line (paid,
unclaimed, the expiry counted down, and warnings when a client has started closing or the expiry
is inside the safety margin); for a client, what each channel spent against its deposit and
whether each payment is held by the freelancer. Nothing here reads the chain: the caller passes
the channels as :func:`micropay.overview.overview` read them, and the close requests it saw.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from web3.exceptions import Web3Exception

from micropay.channel import ChannelRef
from micropay.channel import closing as ends_within_window
from micropay.charts import Series
from micropay.errors import MicropayError
from micropay.escrow import Escrow
from micropay.escrow_events import LOG_RANGE
from micropay.overview import ChannelView
from micropay.store import VoucherStore


@dataclass(frozen=True)
class ChannelLine:
    """One channel as a dashboard lists it. Amounts in base units of ``token``; ``seconds_left``
    until expiry (negative once expired); ``warnings`` in words, most urgent first;
    ``undelivered``/``acknowledged`` are the client's: payments still queued for the
    freelancer's inbox, and the highest cumulative amount the freelancer acknowledged holding."""

    channel_id: bytes
    ref: ChannelRef
    role: str
    counterparty: str
    token: str
    deposit: int
    paid: int
    claimed: int
    unclaimed: int
    expiry: int
    seconds_left: int
    tasks: int
    warnings: tuple[str, ...]
    undelivered: int = 0
    acknowledged: int = 0


def channel_lines(store: VoucherStore, views: Sequence[ChannelView], *, now: int, safety_margin: int,
                  closing: Collection[bytes] = ()) -> list[ChannelLine]:
    """A :class:`ChannelLine` per view, soonest expiry first. ``closing``: ids of channels whose
    payer has started closing (seen on chain); ``safety_margin``: seconds before expiry from which
    a freelancer's unclaimed value is at risk."""
    lines = []
    for view in views:
        record, state = view.record, view.state
        deposit = state.deposit if state else record.deposit
        claimed = state.claimed if state else record.claimed
        expiry = state.expiry if state else record.expiry
        closed = state.closed if state else record.closed
        payee = record.role == "payee"
        warnings: list[str] = []
        if not closed:
            left = expiry - now
            if payee and record.id in closing:
                warnings.append("the client has started closing: settle before the window ends")
            elif not payee and left > 0 and ends_within_window(state or record, state.observed_at if state else now):
                warnings.append("closing: the freelancer may claim until it expires, then reclaim the rest")
            if left <= 0:
                warnings.append("expired: " + ("nothing more can be claimed" if payee else "reclaim what is left"))
            elif payee and left < safety_margin and view.unclaimed:
                warnings.append("expires inside the safety margin: settle now")
        undelivered = acknowledged = 0
        if not payee:
            rows = store.deliveries(record.ref)
            undelivered = sum(1 for row in rows if row.state == "queued")
            acknowledged = max((row.ack_amount or 0 for row in rows if row.state == "held"), default=0)
        lines.append(ChannelLine(record.id, record.ref, record.role, record.key.payer if payee else record.key.payee,
                                 record.key.token, deposit, view.paid, claimed, view.unclaimed, expiry, expiry - now,
                                 view.tasks, tuple(warnings), undelivered, acknowledged))
    return sorted(lines, key=lambda line: (line.expiry, line.channel_id))


@dataclass(frozen=True)
class Earnings:
    """A freelancer's earnings in one token: received per client (cumulative, at the time each
    payment was stored) and settled (cumulative gross of the confirmed settlements, at the time
    each was recorded)."""

    token: str
    received: tuple[Series, ...]
    settled: Series

    @property
    def series(self) -> list[Series]:
        """Every line of the chart: each client's, then the settled one."""
        return [*self.received, self.settled]


def earnings(store: VoucherStore, token: str, *, label: str = "settled") -> Earnings:
    """The freelancer's earnings in ``token`` from what ``store`` holds. Raises what the store raises."""
    per_client: dict[str, list[tuple[float, bytes, int]]] = {}
    for record in store.channels("payee"):
        if record.key.token != token:
            continue
        ledger = store.ledger(record.ref)
        events = per_client.setdefault(record.key.payer, [])
        for count, stored_at in store.voucher_times(record.ref):
            if 0 < count <= len(ledger):
                events.append((stored_at, record.id, ledger[count - 1].total))
    received = []
    for payer, events in sorted(per_client.items()):
        current: dict[bytes, int] = {}
        points = []
        for stored_at, channel_id, total in sorted(events):
            current[channel_id] = max(current.get(channel_id, 0), total)
            points.append((int(stored_at), sum(current.values())))
        received.append(Series(payer, tuple(points)))
    settled, total = [], 0
    confirmed = sorted((s for s in store.settlements("confirmed") if s.token == token), key=lambda s: s.created_at)
    for settlement in confirmed:
        total += settlement.gross
        settled.append((int(settlement.created_at), total))
    return Earnings(token, tuple(received), Series(label, tuple(settled)))


@dataclass(frozen=True)
class FeedItem:
    """One thing that arrived: a payment (``amount`` added, its tasks) or feedback (a task's new
    status), newest first in :func:`feed`. ``who`` is the other side; ``at`` unix seconds."""

    at: int
    kind: str
    who: str
    token: str
    amount: int
    text: str
    channel_id: bytes | None = None


def feed(store: VoucherStore, address: str, *, limit: int = 20) -> list[FeedItem]:
    """The latest payments received on the store's freelancer channels and the latest feedback on
    its plans, newest first."""
    items: list[FeedItem] = []
    for record in store.channels("payee"):
        ledger = store.ledger(record.ref)
        previous = 0
        for count, stored_at in store.voucher_times(record.ref):
            if not 0 < count <= len(ledger) or count <= previous:
                continue
            tasks = [entry.receipt.task_id for entry in ledger[previous:count]]
            added = ledger[count - 1].total - (ledger[previous - 1].total if previous else 0)
            items.append(FeedItem(int(stored_at), "payment", record.key.payer, record.key.token, added,
                                  ", ".join(repr(task) for task in tasks), record.id))
            previous = count
    for root in store.plan_roots():
        versions = store.plans(root)
        plan = versions[0].signed.plan if versions else None
        for stored in store.feedback(root):
            given = stored.signed.feedback
            who = "" if plan is None else (plan.payee if given.status == "delivered" else plan.payer)
            items.append(FeedItem(int(stored.received_at), "feedback", who, "" if plan is None else plan.token, 0,
                                  f"{given.status}: {given.task_id!r}" + (f" ({given.note})" if given.note else "")))
    # Newest first; within one second, the later stored first (each channel's payments are in order).
    ordered = [item for _, item in sorted(enumerate(items), key=lambda pair: (pair[1].at, pair[0]), reverse=True)]
    return [item for item in ordered if item.who != address or item.kind == "payment"][:limit]


class CloseRequests:
    """The channels to ``payee`` whose client has started closing, followed on ``escrows``'
    ``CloseRequested`` events from each escrow's first block, a few ranges per :meth:`update` (a
    page view), remembered in memory."""

    RANGES_PER_UPDATE = 20

    def __init__(self, escrows: Sequence[Escrow], payee: str) -> None:
        self.payee = payee
        self._next = {escrow.address: (escrow, escrow.from_block) for escrow in escrows}
        self.closing: set[bytes] = set()

    def update(self) -> set[bytes]:
        """Read what is new (at most :attr:`RANGES_PER_UPDATE` ranges per escrow) and return every
        channel seen closing. A node that fails leaves the set as it was, to be read again next time."""
        for address, (escrow, first) in list(self._next.items()):
            block = first
            try:
                head = escrow.block_number()
                for _ in range(self.RANGES_PER_UPDATE):
                    if block > head:
                        break
                    end = min(head, block + LOG_RANGE - 1)
                    self.closing |= escrow.closes_requested(self.payee, block, end)
                    block = end + 1
            except (MicropayError, OSError, Web3Exception):
                pass  # the node failed: what was read is kept, the rest is read next time
            self._next[address] = (escrow, block)
        return set(self.closing)
