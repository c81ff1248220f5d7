"""Keeping the held channels' chain state fresh, so that no payment waits on the chain.

A :class:`~micropay.receiving.Receiver` judges a payment by its channel's deposit, expiry and
closed flag as last read from the chain, and reads them again, before accepting, once they are
older than its ``freshness``. In an inbox under load that read lands on the payments that happen
to arrive then (every channel read at start goes stale at the same moment, and its payments wait
their turn for the chain). :class:`ChainRefresh` reads every held channel of the payee's escrow in
one batched request, more often than ``freshness``, from a thread of its own, and writes what it
read (and the cached tips) in one transaction; a payment then finds its channel fresh. A failing
node is retried at the next interval; the receiver's own read remains the safety net.
"""

from __future__ import annotations

import logging
import threading
import time

from web3.exceptions import Web3Exception

from micropay.errors import MicropayError
from micropay.receiving import Receiver
from micropay.records import ChannelTip

_logger = logging.getLogger(__name__)


class ChainRefresh:
    """Refreshes the chain state of ``receiver``'s held channels every ``interval`` seconds
    (default: a third of its freshness)."""

    def __init__(self, receiver: Receiver, *, interval: float | None = None) -> None:
        self.receiver = receiver
        self.interval = receiver.freshness / 3 if interval is None else interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="micropay-chain-refresh", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def refresh_once(self) -> int:
        """Read every open channel the store holds on the receiver's escrow, in one batch, and
        store what was read. Returns how many were refreshed. Raises what the node or the store raises."""
        escrow, store = self.receiver.escrow, self.receiver.store
        held = [r for r in store.channels("payee")
                if (r.chain_id, r.escrow) == (escrow.chain_id, escrow.address) and not r.closed]
        if not held:
            return 0
        states = escrow.channels([r.key for r in held])
        read_at = time.time()
        refreshed = 0
        with store.transaction() as tx:
            tx.lock_channels([record.ref for record in held])  # all at once, in key order
            for record, state in zip(held, states, strict=True):
                tip = tx.tip(record.ref)
                if state is None or tip is None or tip.record.checked_at > read_at:
                    continue
                fresh = tip.record.updated(state, checked_at=read_at)
                tx.update_chain_state(fresh)
                tx.set_tip(ChannelTip(fresh, tip.best, tip.last))  # the next payment finds it in memory
                refreshed += 1
        return refreshed

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh_once()
            except (MicropayError, OSError, Web3Exception) as exc:
                _logger.warning("chain refresh failed (%s); the inbox reads each channel itself meanwhile",
                                type(exc).__name__)
