"""Payee: the freelancer side. Receive payments, keep the best voucher, settle in one transaction.

A thin facade over the three seams of the job: :mod:`~micropay.receiving` (verify and store a
payment before acknowledging it), :mod:`~micropay.settling` (plan and execute one claimMany) and
:mod:`~micropay.watching` (claim by itself when a payer starts closing or an expiry nears).
"""

from __future__ import annotations

import os
import threading
from datetime import timedelta

from eth_account.signers.local import LocalAccount

from micropay.channel import ETH, ChannelRef, Duration, to_seconds
from micropay.errors import MicropayValueError
from micropay.escrow import Escrow
from micropay.ledger import LedgerEntry
from micropay.payment import Payment
from micropay.planbook import PlanBook
from micropay.progress import Progress, progress
from micropay.receiving import Received, Receiver
from micropay.records import ChannelRecord
from micropay.relay import RelayRequest, authorize_relay
from micropay.settling import Settlement, SettlementPlan, Settler, Unclaimed
from micropay.store import VoucherStore
from micropay.transactions import Receipt, Sender, sender_address
from micropay.voucher import Voucher
from micropay.watching import ErrorHandler, Watcher


class Payee:
    """A freelancer receiving payments on ``escrow`` as ``account`` (a LocalAccount, or the
    address of a node-managed account), keeping them in ``store``.

    ``safety_margin``: payments are refused on a channel that expires sooner than this.
    ``freshness``: seconds a chain read is trusted before a payment makes the payee read again.
    ``max_gas_per_tx``: the most gas one settlement transaction may use (default: half the block
    gas limit); a larger settlement is split into several transactions.
    ``min_window``: payments are refused (:class:`WindowTooShort`) on a channel whose challenge
    window is shorter: 24 hours by default, longer than any L2 sequencer outage seen so far."""

    def __init__(self, escrow: Escrow, account: Sender, store: VoucherStore | str | os.PathLike[str], *,
                 safety_margin: Duration = timedelta(hours=1), freshness: float = 15.0,
                 max_gas_per_tx: int | None = None, min_window: Duration = timedelta(hours=24)) -> None:
        self.escrow = escrow
        self.account = account
        self.store = VoucherStore.open(store, account=self.address)
        self.safety_margin = to_seconds(safety_margin)
        self.receiver = Receiver(escrow, self.address, self.store, safety_margin=self.safety_margin,
                                 freshness=freshness, min_window=to_seconds(min_window))
        self.settler = Settler(escrow, account, self.store, max_gas_per_tx=max_gas_per_tx)
        self.watcher = Watcher(escrow, self.store, self.settler, safety_margin=self.safety_margin)

    @property
    def address(self) -> str:
        """The checksummed address this payee is paid at."""
        return sender_address(self.account)

    # -- receiving ---------------------------------------------------------------------------

    def receive(self, payment: Payment | Voucher | str) -> Received:
        """Verify a payment (or its text) and store it durably: see :meth:`Receiver.receive`
        for what it raises."""
        return self.receiver.receive(payment)

    # -- plans ----------------------------------------------------------------------------------

    @property
    def plans(self) -> PlanBook:
        """The plans and feedback this payee holds, checked against its escrow's chain and address."""
        return PlanBook(self.store, self.address, domain=(self.escrow.chain_id, self.escrow.address),
                        is_signed_by=self.escrow.is_signed_by)

    def progress(self, channel_id: bytes, *, now: float | None = None) -> Progress:
        """Where the work under the channel's plan stands: see :func:`micropay.progress.progress`."""
        return progress(self.store, self.store.channel(self.ref(channel_id)), self.address, now=now)

    # -- what is owed --------------------------------------------------------------------------

    def channels(self) -> list[ChannelRecord]:
        """This payee's channels on this escrow and chain, as stored."""
        return self.settler.channels()

    def unclaimed(self) -> list[Unclaimed]:
        """Per open channel: the best voucher held against what is claimed on chain (one batched read)."""
        return self.settler.unclaimed()

    def ref(self, channel_id: bytes) -> ChannelRef:
        """The full reference of a channel on this payee's escrow."""
        return ChannelRef(self.escrow.chain_id, self.escrow.address, channel_id)

    def ledger(self, channel_id: bytes) -> list[LedgerEntry]:
        """The channel's task receipts as stored, each with the root and total after it. Raises
        :class:`StoreError` if the store file is damaged."""
        return self.store.ledger(self.ref(channel_id))

    # -- settling ------------------------------------------------------------------------------

    def plan_settlement(self, min_net: int = 0, *, token: str = ETH, only: set[bytes] | None = None
                        ) -> SettlementPlan:
        """What a settlement would claim and cost, sending nothing: see :meth:`Settler.plan`.
        Raises :class:`NothingToClaim` when no channel is worth claiming."""
        return self.settler.plan(min_net, token=token, only=only)

    def settle(self, plan: SettlementPlan | None = None, *, min_net: int = 0, token: str = ETH) -> Settlement:
        """Execute ``plan``, or plan (with ``min_net`` and ``token``) and execute: every chosen
        channel in ONE claimMany. Raises :class:`NothingToClaim`, :class:`TransactionError`, …"""
        return self.settler.execute(plan if plan is not None else self.settler.plan(min_net, token=token))

    def resolve_pending(self) -> list[Settlement]:
        """Finish settlements a crash interrupted: see :meth:`Settler.resolve_pending`."""
        return self.settler.resolve_pending()

    def authorize_relay(self, *, max_fee: int, deadline: int | timedelta = timedelta(hours=1), token: str = ETH,
                        only: set[bytes] | None = None) -> RelayRequest:
        """A relay request, signed with this payee's key, for anyone to claim its best vouchers in
        ``token`` (those worth claiming, as :meth:`plan_settlement` sees them, and in ``only`` if
        given) for a fee of at most ``max_fee`` base units: a payee without ETH gets paid. See
        :func:`micropay.relay.authorize_relay`: a voucher above its deposit, or on a channel that
        expires before ``deadline`` (a unix time, or a timedelta from now), is left out and logged.

        Raises :class:`MicropayValueError` if this payee's account is not a local key,
        :class:`InvalidRelayRequest` for a past deadline or bad fee, :class:`NothingToClaim`."""
        if not isinstance(self.account, LocalAccount):
            raise MicropayValueError("a relay request is signed with the payee's key: give the Payee a LocalAccount")
        claimable = self.settler.claimable(token, only=only)
        return authorize_relay(self.escrow, self.account, claimable, max_fee=max_fee, deadline=deadline)

    # -- closing and watching ------------------------------------------------------------------

    def close(self, channel_id: bytes) -> Receipt:
        """Cooperative close with the best voucher held; the rest of the deposit goes back. A
        token channel is claimed instead, not closed (audit L-1): see :meth:`Settler.close`, and
        for what it raises."""
        return self.settler.close(self.ref(channel_id))

    def check_gas_funds(self) -> None:
        """Raises :class:`InsufficientFunds` unless this account can pay for a claim."""
        self.watcher.check_gas_funds()

    def watch_once(self, *, confirmations: int = 2, margin: Duration | None = None,
                   on_error: ErrorHandler | None = None) -> list[Settlement]:
        """One watcher pass: see :meth:`Watcher.watch_once`."""
        return self.watcher.watch_once(confirmations=confirmations, margin=margin, on_error=on_error)

    def watch(self, *, confirmations: int = 2, margin: Duration | None = None, poll_interval: float = 5.0,
              stop: threading.Event | None = None, rounds: int | None = None,
              on_error: ErrorHandler | None = None) -> list[Settlement]:
        """Keep watching: see :meth:`Watcher.watch`."""
        return self.watcher.watch(confirmations=confirmations, margin=margin, poll_interval=poll_interval,
                                  stop=stop, rounds=rounds, on_error=on_error)
