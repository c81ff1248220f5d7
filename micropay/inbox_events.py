"""What an inbox tells its notifier: each new payment, plan and feedback, built off the request path.

An :class:`InboxEvents` builds the :class:`~micropay.notifications.Event` of what the inbox just
stored and hands it to the :class:`~micropay.notifications.Notifier`, in a task of its own: the
answer to the client never waits for it (a token asked for its symbol, a slow node), and nothing
that goes wrong here can fail a request whose payment is already stored. Without a notifier it
does nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine

from micropay.errors import MicropayError
from micropay.feedback import SignedFeedback
from micropay.notifications import Event, Notifier, feedback_event, payment_event, plan_event
from micropay.payee import Payee
from micropay.plan import SignedPlan
from micropay.receiving import Received
from micropay.server_log import ServerLog
from micropay.units import format_amount

#: Tokens whose units (decimals, symbol) are remembered: those of channels held and plans taken.
MAX_TOKENS = 1024


class InboxEvents:
    """The events of ``payee``'s inbox, for ``notifier`` (None: none); failures go to ``log``.
    Call its methods from the inbox's event loop."""

    def __init__(self, payee: Payee, notifier: Notifier | None, log: ServerLog) -> None:
        self.payee, self.notifier, self.log = payee, notifier, log
        self._units: dict[str, tuple[int, str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def payment(self, received: Received) -> None:
        """A new payment was stored (not a duplicate)."""
        self._send(self._payment_event(received))

    def plan(self, plan: SignedPlan) -> None:
        """A plan proposal, acceptance or amendment was taken."""
        self._send(self._plan_event(plan))

    def feedback(self, feedback: SignedFeedback) -> None:
        """A delivery, a request for changes or an approval was taken."""
        self._send(self._feedback_event(feedback))

    def _send(self, event: Coroutine[object, object, Event | None]) -> None:
        if self.notifier is None:
            event.close()
            return
        notifier = self.notifier

        async def run() -> None:
            try:
                made = await event
                if made is not None:
                    notifier.notify(made)
            except Exception as exc:  # noqa: BLE001 - a notification must never fail a request already stored
                self.log.failure("notify_failed", exc)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)  # held until done: the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)

    async def _payment_event(self, received: Received) -> Event | None:
        ref = self.payee.ref(received.channel_id)
        tip = self.payee.store.peek_tip(ref) or await asyncio.to_thread(self.payee.store.tip, ref)
        return None if tip is None else payment_event(received, tip.record, await self._show(tip.record.key.token))

    async def _plan_event(self, plan: SignedPlan) -> Event:
        return plan_event(plan, await self._show(plan.plan.token))

    async def _feedback_event(self, feedback: SignedFeedback) -> Event:
        history = await asyncio.to_thread(self.payee.plans.history, feedback.feedback.plan)
        return feedback_event(feedback, history.first)

    async def _show(self, token: str) -> Callable[[int], str]:
        """How to write an amount of ``token`` ("0.005 ETH"): the chain is asked once per token,
        and a token that will not say is written in base units from then on."""
        units = self._units.get(token)
        if units is None:
            try:
                units = await asyncio.to_thread(self.payee.escrow.token_units, token)
            except MicropayError:
                units = (0, "base units")
            if len(self._units) < MAX_TOKENS:
                self._units[token] = units
        decimals, symbol = units
        return lambda value: format_amount(value, decimals, symbol)
