"""Watching: claim automatically when a payer starts closing or a channel's expiry nears.

The watcher follows confirmed blocks from a cursor kept in the store. It acts only on channels
it holds a voucher for: a stranger's channel (opened and closed to this payee on purpose) is
ignored, so nobody can stall it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from micropay.channel import Duration, to_seconds
from micropay.errors import InsufficientFunds, MicropayError, NothingToClaim
from micropay.escrow import Escrow
from micropay.settling import Settlement, Settler
from micropay.store import VoucherStore

#: Gas a single-channel claim costs, with room to spare: what the watcher keeps in reserve.
CLAIM_GAS_RESERVE = 120_000

#: Told what failed (a description) and why, when one claim of a watch pass fails.
ErrorHandler = Callable[[str, MicropayError], None]

_logger = logging.getLogger("micropay.watch")


def _log(what: str, error: MicropayError) -> None:
    _logger.warning("claiming %s failed: %s", what, error)


class Watcher:
    """Watches ``escrow`` for the channels ``settler`` settles."""

    def __init__(self, escrow: Escrow, store: VoucherStore, settler: Settler, *, safety_margin: int) -> None:
        self.escrow = escrow
        self.store = store
        self.settler = settler
        self.safety_margin = safety_margin

    def check_gas_funds(self) -> None:
        """Raises :class:`InsufficientFunds` unless the payee can pay for a claim."""
        address = self.settler.address
        balance = self.escrow.balance(address)
        needed = CLAIM_GAS_RESERVE * self.escrow.gas_price()
        if balance < needed:
            raise InsufficientFunds(f"{address} holds {balance} wei; the watcher needs at least {needed} wei "
                                    "to pay for a claim. Fund it before watching.")

    def watch_once(self, *, confirmations: int = 2, margin: Duration | None = None,
                   on_error: ErrorHandler | None = None) -> list[Settlement]:
        """One pass: look at confirmed blocks since the stored cursor; claim every channel of
        ours with unclaimed value whose payer requested a close or whose expiry is near.

        Channels it holds no voucher for are ignored (a stranger's channel cannot stall it). A
        claim that fails is reported to ``on_error`` (default: logged) and does not stop the
        others; when the batch of a token fails, its channels are tried one by one. The cursor
        only moves past blocks whose every claim went through."""
        address = self.settler.address
        cursor_name = f"watch:{self.escrow.chain_id}:{self.escrow.address}:{address}"
        safe = self.escrow.block_number() - confirmations
        start = self.store.cursor(cursor_name)
        start = self.escrow.from_block if start is None else start
        if safe < start:
            return []
        margin_s = self.safety_margin if margin is None else to_seconds(margin)
        requested = self.escrow.closes_requested(address, start, safe)
        chain_now = self.escrow.block_time(safe)
        due: dict[str, set[bytes]] = {}  # token -> channels to claim now
        for item in self.settler.unclaimed():
            if item.value > 0 and item.expiry >= chain_now and \
                    (item.channel_id in requested or item.expiry - chain_now <= margin_s):
                due.setdefault(item.token, set()).add(item.channel_id)
        settlements, failed = [], False
        for token, channels in due.items():
            for group in (channels, *({cid} for cid in channels)) if len(channels) > 1 else (channels,):
                try:
                    settlements.append(self.settler.execute(self.settler.plan(0, token=token, only=group)))
                    break
                except NothingToClaim:
                    break
                except MicropayError as exc:  # this token's (or channel's) failure must not stop the others
                    failed = True
                    (on_error or _log)(f"token {token}, {len(group)} channel(s)", exc)
        if not failed:  # a failed claim is looked for again from the same block next pass
            with self.store.transaction() as tx:
                tx.set_cursor(cursor_name, safe + 1)
        return settlements

    def watch(self, *, confirmations: int = 2, margin: Duration | None = None, poll_interval: float = 5.0,
              stop: threading.Event | None = None, rounds: int | None = None,
              on_error: ErrorHandler | None = None) -> list[Settlement]:
        """Keep watching (until ``stop`` is set or ``rounds`` passes are done). Refuses to start
        without ETH for gas (:class:`InsufficientFunds`): a watcher that cannot pay for a claim
        defends nothing."""
        self.check_gas_funds()
        done: list[Settlement] = []
        passes = 0
        while not (stop and stop.is_set()) and (rounds is None or passes < rounds):
            done += self.watch_once(confirmations=confirmations, margin=margin, on_error=on_error)
            passes += 1
            if rounds is None or passes < rounds:
                if stop is not None:
                    stop.wait(poll_interval)
                else:
                    time.sleep(poll_interval)
        return done
