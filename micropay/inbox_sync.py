"""The client's side of a channel's documents: read them from the freelancer's inbox into its store.

A freelancer's deliveries and amendments reach the client when the client reads its channel's
progress from the freelancer's inbox (``GET /v1/channels/{id}/progress``, a request signed by the
channel's payer or voucher signer). :func:`take_from_inbox` does that read and stores every plan
and feedback document that verifies, each through the plan book (so a forged or foreign document
is skipped, with its reason, and changes nothing). ``micropay progress --from-inbox`` and the
client's dashboard both use it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from micropay.documents import read_document
from micropay.errors import MicropayError, MicropayValueError, NodeError, StoreError
from micropay.feedback import SignedFeedback
from micropay.inbox_client import InboxClient, short_reason
from micropay.plan import Plan, SignedPlan
from micropay.planbook import PlanBook
from micropay.records import ChannelRecord
from micropay.store import VoucherStore


@dataclass(frozen=True)
class Taken:
    """What one read of an inbox stored: ``taken`` documents, and why each other was ``skipped``."""

    url: str
    taken: int
    skipped: tuple[str, ...]


def channel_inbox(store: VoucherStore, record: ChannelRecord) -> str | None:
    """The freelancer's inbox of ``record``: the channel's, else the latest its plan names (None: neither names one)."""
    url = store.inbox(record.ref)
    if url is None and record.terms:
        for stored in reversed(store.plans(record.terms)):
            url = url or stored.signed.plan.inbox
    return url or None


def take_from_inbox(store: VoucherStore, account: LocalAccount, record: ChannelRecord,
                    book_for: Callable[[Plan], PlanBook]) -> Taken:
    """Read ``record``'s progress from its freelancer's inbox with a request ``account`` signs (the
    channel's payer or voucher signer),
    and store every plan and feedback document it returns that verifies (through ``book_for(plan)``,
    the plan book checking that plan). Raises :class:`MicropayValueError` (no inbox), the inbox's
    refusal (:class:`Unauthorized`, :class:`RequestRejected`, :class:`DeliveryFailed`), or a
    :class:`NodeError`/:class:`StoreError` from storing."""
    url = channel_inbox(store, record)
    if url is None:
        raise MicropayValueError(f"channel 0x{record.id.hex()[:10]}… has no inbox (neither the channel nor its "
                                 "plan names one)")
    with InboxClient(url) as client:
        answer = client.progress(record.id, account)
    plans: list[SignedPlan] = []
    feedback: list[SignedFeedback] = []
    skipped: list[str] = []
    for text in answer.documents:
        try:
            document = read_document(text)
            if document.get("micropay") == "feedback":
                feedback.append(SignedFeedback.from_dict(document))
            else:
                plans.append(SignedPlan.from_dict(document))
        except MicropayError as exc:
            skipped.append(f"not a plan or feedback: {short_reason(str(exc))}")
    taken = 0
    ordered: list[SignedPlan | SignedFeedback] = [*plans, *feedback]  # plans first: feedback needs its plan
    for signed in ordered:
        try:
            if isinstance(signed, SignedPlan):
                book_for(signed.plan).take(signed)
            else:
                plan = PlanBook(store, record.key.payer).history(signed.feedback.plan).first
                book_for(plan).take_feedback(signed)
            taken += 1
        except (NodeError, StoreError):
            raise
        except MicropayError as exc:
            skipped.append(f"does not verify: {short_reason(str(exc))}")
    return Taken(url, taken, tuple(skipped))


class InboxReads:
    """Reads a client's channels' documents from their freelancers' inboxes in the background: each
    channel at most every ``every`` seconds, one read at a time, on one thread of its own, so a
    slow or absent inbox never holds a page. :meth:`poke` asks for the channels that are due;
    :attr:`outcome` says, per channel id, how its last read went (None: not read yet)."""

    def __init__(self, store: VoucherStore, account: LocalAccount, book_for: Callable[[Plan], PlanBook], *,
                 every: float = 10.0) -> None:
        self.store, self.account, self.book_for, self.every = store, account, book_for, every
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="micropay-inbox-reads")
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._running: Future[None] | None = None
        self._last: dict[bytes, float] = {}
        self.outcome: dict[bytes, ReadOutcome] = {}

    def start(self, records: Callable[[], Sequence[ChannelRecord]]) -> None:
        """Also read without being asked: every :attr:`every` seconds, the channels ``records()``
        lists (so a delivery is there when a page opens), until :meth:`close`."""
        def run() -> None:
            while not self._stopping.wait(self.every):
                try:
                    self.poke(records())
                except MicropayError:
                    continue  # the store could not list them this time: next time
        threading.Thread(target=run, name="micropay-inbox-reads-timer", daemon=True).start()

    def poke(self, records: Sequence[ChannelRecord]) -> None:
        """Start reading those of ``records`` (the account's, with an inbox) that are due; returns at once."""
        now = time.monotonic()
        with self._lock:
            if self._running is not None and not self._running.done():
                return
            due = [r for r in records if r.role == "payer" and now - self._last.get(r.id, -self.every) >= self.every
                   and channel_inbox(self.store, r) is not None]
            if not due:
                return
            for record in due:
                self._last[record.id] = now
            try:
                self._running = self._executor.submit(self._read, due)
            except RuntimeError:
                return  # closed

    def _read(self, records: Sequence[ChannelRecord]) -> None:
        for record in records:
            try:
                taken = take_from_inbox(self.store, self.account, record, self.book_for)
                outcome = ReadOutcome(time.time(), taken.taken, "; ".join(taken.skipped))
            except MicropayError as exc:
                outcome = ReadOutcome(time.time(), 0, short_reason(str(exc)), failed=True)
            self.outcome[record.id] = outcome

    def close(self) -> None:
        """Stop: a read under way ends by its own deadline; nothing more starts."""
        self._stopping.set()
        self._executor.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class ReadOutcome:
    """How one read of a channel's inbox went: ``at`` (Unix time), documents ``taken``, and
    ``reason``: why it ``failed``, or what it skipped."""

    at: float
    taken: int
    reason: str
    failed: bool = False
