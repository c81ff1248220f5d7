"""Group commit: payments that arrive together share one durable commit.

One fsync per payment caps an inbox at the disk's commit rate. Here one writer thread takes
every payment waiting when the previous commit finishes, stores them all in one transaction
(each inside a savepoint, so a payment that does not fit the ledger is refused alone) and
commits once; only then is each payment's future resolved. So every acknowledgment is backed by
the fsync that covers it, and a burst costs one fsync per batch instead of one per payment.

Checking a payment (parsing, its signature, the chain on first contact) happens before, in the
caller's thread or event loop: the writer never waits on the chain, so no stranger's unknown
channel can hold up anyone else's payment. Payments on one channel are stored in the order they
were submitted.

:meth:`GroupCommit.receive` is the blocking twin of :meth:`GroupCommit.receive_async`.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from micropay.errors import MicropayError, RequestRejected, StoreError
from micropay.payment import Payment
from micropay.receiving import CheckedPayment, Received, Receiver
from micropay.store_transaction import StoreTransaction
from micropay.voucher import Voucher

_Item = tuple[CheckedPayment, "Future[Received]", "Then | None"]
#: Threads that check payments needing the chain (first contact, a stale deposit, a contract signature).
CHAIN_THREADS = 8
#: Payments that may wait for them at once; more are refused with 503 and Retry-After.
MAX_CHAIN_WAITING = 64
_F = TypeVar("_F", "Future[Received]", "asyncio.Future[Received]")
_A = TypeVar("_A")
#: What else a payment's transaction does once the payment is stored (see :meth:`GroupCommit.submit`).
Then = Callable[[StoreTransaction, Received], object]
_R = TypeVar("_R")


class GroupCommit:
    """Stores the payments a :class:`Receiver` checked, many per commit, from one writer thread.

    Start it with :meth:`start` (or use it as a context manager); :meth:`close` stores what was
    submitted before it and stops. ``max_batch`` bounds one transaction."""

    def __init__(self, receiver: Receiver, *, max_batch: int = 512) -> None:
        self.receiver = receiver
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._ready: list[tuple[CheckedPayment, asyncio.Future[Received], Then | None]] = []
        self._chain_pool = ThreadPoolExecutor(max_workers=CHAIN_THREADS, thread_name_prefix="micropay-chain")
        self._chain_waiting = 0
        #: Commits made and payments stored by them, for the curious (a benchmark's batch size).
        self.commits = 0
        self.stored = 0

    def __enter__(self) -> GroupCommit:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start the writer thread (once)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="micropay-group-commit", daemon=True)
                self._thread.start()

    def close(self, timeout: float | None = None) -> None:
        """Store every payment submitted so far, then stop the writer. Later submissions are refused."""
        with self._lock:
            self._closing.set()
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)
        self._chain_pool.shutdown(wait=False, cancel_futures=True)

    def submit(self, checked: CheckedPayment, *, then: Then | None = None) -> Future[Received]:
        """Queue a checked payment (stored once the writer runs: see :meth:`start`); the future
        resolves once the commit that stores it is durable, to what it added, or to the error that
        refused it. ``then(tx, received)`` runs in the same transaction, right after the payment is
        stored (an error it raises refuses the payment). Raises :class:`StoreError` once closing."""
        future: Future[Received] = Future()
        with self._lock:
            if self._closing.is_set():
                raise StoreError("the inbox is not taking payments: it is stopping")
            self._queue.put((checked, future, then))
        return future

    def receive(self, payment: Payment | Voucher | str) -> Received:
        """Check and store a payment, sharing the commit with any others under way; blocks until
        it is durable. Raises what :meth:`Receiver.receive` raises."""
        return self.submit(self.receiver.check(payment)).result()

    async def receive_async(self, payment: Payment | Voucher | str, *, then: Then | None = None) -> Received:
        """:meth:`receive` for an event loop: checked in the loop when the stored channel is
        enough, in a worker thread when the chain must be asked, then stored by the loop itself
        with every payment that became ready in the same turn of the loop (one commit for all).

        The loop, not the writer thread, stores them: a writer thread would have to win Python's
        lock back from the busy loop after each of its SQLite calls (every one releases it), so
        its commits came slowly and held few payments. The commit blocks the loop for one fsync,
        while the requests that arrive meanwhile wait in the socket buffers for the next batch.
        On a PostgreSQL store (a round trip per statement) the writer thread stores them instead,
        and ``then`` runs there. ``then``: as for :meth:`submit`."""
        checked = self.receiver.check(payment, offline=True)
        if checked is None:
            checked = await self._check_on_chain(payment)
        if self._closing.is_set():
            raise StoreError("the inbox is not taking payments: it is stopping")
        if self.receiver.store.database.remote:  # the writer thread waits on the server; the loop serves on
            self.start()
            return await asyncio.wrap_future(self.submit(checked, then=then))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Received] = loop.create_future()
        self._ready.append((checked, future, then))
        if len(self._ready) == 1:  # the first of this turn: store them all once the turn is over
            loop.call_soon(loop.call_soon, self._store_ready)
        return await future

    async def _check_on_chain(self, payment: Payment | Voucher | str) -> CheckedPayment:
        """Check a payment that needs the chain (see :meth:`on_chain`)."""
        return await self.on_chain(self.receiver.check, payment)

    async def on_chain(self, read: Callable[[_A], _R], argument: _A) -> _R:
        """``read(argument)``, a call that asks the chain, in a small pool of its own: strangers
        naming channels the inbox must look up wait there, and when too many wait they are turned
        away (503), never queued without bound in front of the inbox's other work."""
        if self._chain_waiting >= MAX_CHAIN_WAITING:
            raise RequestRejected("the inbox is busy reading the chain: try again in a moment", status=503,
                                  retry_after=1.0)
        self._chain_waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._chain_pool, read, argument)
        finally:
            self._chain_waiting -= 1

    def _store_ready(self) -> None:
        batch, self._ready = self._ready, []
        for future, outcome in self._store(batch):
            if future.done():  # the request was cancelled (its client went away): stored all the same
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    # -- storing a batch -------------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            for future, outcome in self._store(batch):
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    def _store(self, batch: Sequence[tuple[CheckedPayment, _F, Then | None]]
               ) -> list[tuple[_F, Received | BaseException]]:
        """Store ``batch`` in one transaction, each payment in a savepoint of its own; the outcome
        of each once the commit is durable (the commit's error for all, if it failed)."""
        outcomes: list[tuple[_F, Received | BaseException]] = []
        try:
            with self.receiver.store.transaction() as tx:
                # Channels met for the first time are added first, in key order (two processes adding
                # the same new channels in other orders would wait for each other), then all are locked.
                new = {tx.key(c.record.ref): c.state for c, _, _ in batch if c.new}
                added = [new[key].ref for key in sorted(new) if tx.add_channel_if_absent(new[key])]
                refs = [checked.record.ref for checked, _, _ in batch]
                tx.lock_channels(refs)  # at once, in key order
                tx.prefetch_tips(refs)
                for checked, future, then in batch:
                    try:
                        with tx.savepoint():
                            received = self.receiver.store_checked(tx, checked)
                            if then is not None:
                                then(tx, received)
                            outcomes.append((future, received))
                    except MicropayError as exc:  # this payment is refused; the others go on
                        outcomes.append((future, exc))
                for ref in added:  # a refused first payment leaves no trace of its channel
                    tx.forget_unpaid(ref)
        except BaseException as exc:  # noqa: BLE001 - the commit failed: no payment of the batch is held
            failure = exc if isinstance(exc, MicropayError) else StoreError(f"the store could not commit: {exc}")
            return [(future, failure) for _, future, _ in batch]
        self.commits += 1
        self.stored += sum(1 for _, outcome in outcomes if not isinstance(outcome, BaseException))
        return outcomes
