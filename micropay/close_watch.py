"""Close requests: tell the freelancer as soon as a client starts closing a channel.

A payer's ``requestClose`` leaves the payee one challenge window to claim. :class:`CloseRequestWatch`
follows the escrow's ``CloseRequested`` events to the payee from a block cursor kept in the store,
on confirmed blocks, and notifies each request once: "0xAbC1…1234 started closing channel
0x12ab…cdef: claim 0.003 ETH before 2025-06-01 12:00 UTC".

Only channels the store holds a voucher for are looked at: a stranger's channel (opened and
closed to this payee on purpose, any number of times) costs one local lookup and no chain call,
and is never notified. A node or store error is logged (by its type only: a message could quote
an RPC URL and its API key) and the same blocks are read again at the next poll.
"""

from __future__ import annotations

import logging
import threading
from functools import cached_property

from micropay.channel import ChannelKey, ChannelRef, ChannelState, checked_address
from micropay.errors import MicropayValueError
from micropay.escrow import Escrow
from micropay.escrow_events import LOG_RANGE
from micropay.notifications import Event, Notifier, short_address, short_id, utc
from micropay.store import VoucherStore
from micropay.units import format_amount

#: Blocks a close request must be under before it is notified (a node behind a load balancer
#: may not have the newest logs yet; the challenge window is at least an hour).
CONFIRMATIONS = 2

_logger = logging.getLogger("micropay.notify")


class CloseRequestWatch:
    """Polls ``escrow`` every ``poll`` seconds for close requests on ``payee``'s channels held in
    ``store``, and hands one :class:`Event` ("close_request") per request to ``notifier``.

    Raises :class:`MicropayValueError` if ``payee`` is not an address. Creating it makes no
    network call; :meth:`start` runs :meth:`poll_once` in a background thread until :meth:`close`."""

    def __init__(self, escrow: Escrow, store: VoucherStore, payee: str, notifier: Notifier, *, poll: float = 15.0,
                 confirmations: int = CONFIRMATIONS) -> None:
        if not poll > 0 or confirmations < 0:
            raise MicropayValueError("poll must be positive and confirmations at least 0")
        self.escrow = escrow
        self.store = store
        self.payee = checked_address(payee, "payee")
        self.notifier = notifier
        self.poll = poll
        self.confirmations = confirmations
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._seen: set[tuple[bytes, int]] = set()  # (channel, deadline) notified by this process
        self._units: dict[str, tuple[int, str]] = {}

    @cached_property
    def cursor_name(self) -> str:
        """The store cursor under which the next block to read is kept (asks the node for its
        chain id if the escrow was not given it)."""
        return f"notify-close:{self.escrow.chain_id}:{self.escrow.address}:{self.payee}"

    def start(self) -> None:
        """Start polling in a background thread (once)."""
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="micropay-close-watch", daemon=True)
                self._thread.start()

    def close(self, timeout: float = 10) -> None:
        """Stop polling (waits up to ``timeout`` seconds for a pass under way). Never raises."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # noqa: BLE001 - a node or store error must not end the watch: retry next poll
                if not failing:
                    _logger.warning("close-request watch: reading the chain failed (%s); trying again every %g s",
                                    type(exc).__name__, self.poll)
                failing = True
            else:
                if failing:
                    _logger.info("close-request watch: reading the chain works again")
                failing = False
            self._stop.wait(self.poll)

    def poll_once(self) -> list[Event]:
        """Read the confirmed blocks after the stored cursor (in ranges of :data:`LOG_RANGE`),
        notify each new close request on a channel with a voucher held that can still be claimed,
        and move the cursor past them. Returns the events notified.

        Raises what the node or the store raises (nothing is notified for a range whose cursor
        could not be stored: it is read again next time)."""
        done: list[Event] = []
        safe = self.escrow.block_number() - self.confirmations
        while not self._stop.is_set():
            start = self.store.cursor(self.cursor_name)
            start = self.escrow.from_block if start is None else start
            if safe < start:
                break
            end = min(safe, start + LOG_RANGE - 1)
            events = self._events(self.escrow.closes_requested(self.payee, start, end))
            with self.store.transaction() as tx:
                tx.set_cursor(self.cursor_name, end + 1)
            for event, seen in events:
                self._seen.add(seen)
                self.notifier.notify(event)
                done.append(event)
        return done

    def _events(self, requested: set[bytes]) -> list[tuple[Event, tuple[bytes, int]]]:
        """The events for the channels in ``requested`` that this store holds a voucher for."""
        held: list[tuple[ChannelKey, int]] = []
        for channel_id in sorted(requested):
            ref = ChannelRef(self.escrow.chain_id, self.escrow.address, channel_id)
            tip = self.store.tip(ref)  # a local lookup: a stranger's channel costs no chain call
            if tip is not None and tip.best is not None and tip.record.role == "payee" \
                    and tip.record.key.payee == self.payee:
                held.append((tip.record.key, tip.best.amount))
        if not held:
            return []
        events = []
        for (_, best), state in zip(held, self.escrow.channels([key for key, _ in held]), strict=True):
            if state is None or not state.claimable_next_block:
                continue  # closed, or too late to claim: nothing to do
            seen = (state.key.id, state.expiry)
            if seen not in self._seen:
                events.append((self._event(state, best), seen))
        return events

    def _event(self, state: ChannelState, best: int) -> Event:
        key = state.key
        unclaimed = max(0, min(best, state.deposit) - state.claimed)
        who = f"{short_address(key.payer)} started closing channel {short_id(key.id)}"
        if unclaimed:
            text = f"{who}: claim {self._show(key.token, unclaimed)} before {utc(state.expiry)}"
        else:
            text = f"{who}: nothing is left to claim (it ends {utc(state.expiry)})"
        return Event("close_request", text, {
            "channelId": "0x" + key.id.hex(), "chainId": self.escrow.chain_id, "escrow": self.escrow.address,
            "payer": key.payer, "payee": key.payee, "token": key.token, "deadline": state.expiry,
            "deposit": str(state.deposit), "claimed": str(state.claimed), "held": str(best),
            "unclaimed": str(unclaimed)})

    def _show(self, token: str, amount: int) -> str:
        """``amount`` of ``token`` as "0.003 ETH" (in base units for a token that does not say
        its decimals and symbol)."""
        if token not in self._units:
            try:
                self._units[token] = self.escrow.token_units(token)
            except MicropayValueError:
                return f"{amount} base units"
        decimals, symbol = self._units[token]
        return format_amount(amount, decimals, symbol)
