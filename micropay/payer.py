"""Payer: the client side. Open a channel, pay per task with vouchers, exit safely.

The rule that keeps the client's money safe: the new cumulative amount, its ledger and the
voucher are committed to the store *before* the voucher is returned, in one transaction that
holds the channel's lock (SQLite's file lock, PostgreSQL's row lock). So a cumulative amount is
never signed twice (not after a crash, not by two threads, processes or machines at once), and a
payment never exceeds the deposit. Paying needs no node (``escrow=None``: the store is enough).

Who funds and who signs may differ: the funding account (a company wallet, a Safe) names a hot
key (or contract) as each channel's voucher signer at open, and a Payer signs only with that key.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Callable
from datetime import timedelta

from eth_account.signers.local import LocalAccount
from web3.contract.contract import ContractFunction

from micropay.channel import ETH, ChannelKey, ChannelRef, Duration, checked_address, to_seconds
from micropay.errors import (
    ChannelError,
    ChannelExpired,
    ChannelFinal,
    InsufficientDeposit,
    MicropayError,
    MicropayValueError,
    NodeError,
    NotParticipant,
    PlanNotInForce,
    StoreError,
    TaskRefused,
    TransactionPending,
)
from micropay.escrow import Escrow
from micropay.inbox_client import inbox_url
from micropay.ledger import EMPTY_ROOT, LedgerEntry, TaskReceipt, extend_entries
from micropay.outbox import DeliveryResult, Outbox, latest_payment
from micropay.payment import Payment
from micropay.plan import SignedPlan
from micropay.plan_payments import latest_delivery, task_price
from micropay.planbook import PlanBook, paid_tasks
from micropay.progress import Progress, progress
from micropay.records import ChannelRecord
from micropay.store import ChannelLike, StoreTransaction, VoucherStore
from micropay.sync import SyncReport, sync
from micropay.transactions import Sender
from micropay.types import MAX_AMOUNT
from micropay.voucher import DigestSigner, sign_voucher

__all__ = ["Payer", "latest_payment"]  # latest_payment lives in micropay.outbox


class Payer:
    """A client paying freelancers from ``account``, its vouchers signed by ``signer``.

    ``account`` funds the channels and sends the payer's transactions (open, top up, extend,
    request-close, reclaim): an eth-account ``LocalAccount``, or the address of an account whose
    key this process does not hold: a node-managed account, or a contract wallet such as a Safe,
    which this process cannot send for (its owners open the channel, with :meth:`prepare_open`,
    and :meth:`sync_all` finds it). ``signer`` signs the vouchers: a hot ``LocalAccount`` that
    channels opened by this payer name as their signer, or a :class:`~micropay.voucher.DigestSigner`
    (a contract wallet's signature); by default ``account`` itself, then a ``LocalAccount``.

    ``escrow`` is the chain door for opening, topping up and closing; ``None`` works offline
    (paying and resending need only the store). Raises :class:`MicropayValueError` if ``account``
    is neither a LocalAccount nor an address, or nothing can sign."""

    def __init__(self, escrow: Escrow | None, account: LocalAccount | str,
                 store: VoucherStore | str | os.PathLike[str], *,
                 signer: LocalAccount | DigestSigner | None = None) -> None:
        if isinstance(account, str):
            account = checked_address(account, "payer account")
        elif not isinstance(account, LocalAccount):
            raise MicropayValueError("a Payer's account is an eth-account LocalAccount or an address")
        if signer is None:
            if not isinstance(account, LocalAccount):
                raise MicropayValueError("a Payer signs vouchers: give it a LocalAccount, or signer= the key that "
                                         "signs its channels' vouchers")
            signer = account
        elif not isinstance(signer, LocalAccount) and not callable(getattr(signer, "sign_digest", None)):
            raise MicropayValueError("a Payer's signer is an eth-account LocalAccount or a DigestSigner")
        self._escrow = escrow
        self.account: Sender = account
        self.signer = signer
        self.store = VoucherStore.open(store, account=self.address)
        self.outbox = Outbox(self.store)  # payments on channels with an inbox, until it holds them

    @property
    def address(self) -> str:
        """The checksummed address this payer pays from (its channels' payer)."""
        return self.account if isinstance(self.account, str) else self.account.address

    @property
    def signer_address(self) -> str:
        """The checksummed address that signs this payer's vouchers (its channels' voucher signer)."""
        return checked_address(self.signer.address, "signer")

    @property
    def escrow(self) -> Escrow:
        """The escrow proxy; raises :class:`NodeError` for an offline payer."""
        if self._escrow is None:
            raise NodeError("this needs the chain: give the Payer an Escrow (the CLI: --rpc URL)")
        return self._escrow

    # -- channels --------------------------------------------------------------------------

    @property
    def _delegate(self) -> str | None:  # the signer a channel it opens names (None: the funding account)
        return None if self.signer_address == self.address else self.signer_address

    def _sender(self) -> Sender:
        """This payer's sender. Raises :class:`NotParticipant` for a contract wallet (its owners send)."""
        if isinstance(self.account, str) and self.escrow.has_code(self.account):
            raise NotParticipant(f"{self.account} is a contract (a wallet such as a Safe): this process cannot send "
                                 "for it. Have its owners send the transaction (Payer.prepare_open builds an open)")
        return self.account

    def open_channel(self, payee: str, deposit: int, token: str | None = None,
                     expires_in: Duration = timedelta(days=30), *, window: Duration = timedelta(days=1),
                     salt: int | None = None, terms: bytes | None = None) -> ChannelRecord:
        """Open a channel to ``payee`` with ``deposit`` base units (wei for ETH), naming this
        payer's signer as its voucher signer when it is not the funding account. For a token, the
        escrow is approved for exactly the deposit first if it is not already. ``terms``: an
        optional 32-byte hash emitted with the channel. Raises :class:`NotParticipant` for a
        contract funding account (see :meth:`prepare_open`), or what :meth:`Escrow.open` raises."""
        sender = self._sender()
        token = ETH if token is None else token
        if token != ETH:
            self.escrow.token(token).ensure_allowance(sender, self.escrow.address, deposit)
        expiry, seconds = self.escrow.now() + to_seconds(expires_in), to_seconds(window)
        recorded: list[ChannelRecord] = []

        def record_first(key: ChannelKey) -> None:
            # The salt is otherwise only in the event: an interrupted open leaves a trace for `sync`.
            recorded.append(self._record_unseen(key, expiry, seconds, terms))

        try:
            key, _ = self.escrow.open(sender, payee, deposit, token=token, salt=salt, expiry=expiry,
                                      window=seconds, signer=self._delegate, terms=terms, before_send=record_first)
        except MicropayError as exc:
            if recorded and not isinstance(exc, TransactionPending):  # refused: nothing was opened
                with self.store.transaction() as tx:
                    tx.forget_unopened(recorded[0].ref)
            raise
        return self.sync(ChannelRef(self.escrow.chain_id, self.escrow.address, key.id))

    def _record_unseen(self, key: ChannelKey, expiry: int, window: int, terms: bytes | None) -> ChannelRecord:
        unseen = ChannelRecord(key, self.escrow.chain_id, self.escrow.address, "payer", 0, 0, expiry, window, False,
                               0.0, 0, terms=terms)
        self.store.add_channel(unseen)
        return unseen

    def prepare_open(self, payee: str, deposit: int, token: str | None = None,
                     expires_in: Duration = timedelta(days=30), *, window: Duration = timedelta(days=1),
                     salt: int | None = None, terms: bytes | None = None
                     ) -> tuple[ChannelRecord, ContractFunction, int]:
        """For a funding account this process cannot send for (a Safe): record the channel it is
        to open, unseen, and return (record, call, value) for its owners to execute (a token
        channel needs the escrow approved for ``deposit`` first, in the same batch). Once it is
        mined, :meth:`sync_all` sees it and :meth:`pay` signs on it with this payer's signer.

        Raises :class:`MicropayValueError` for bad arguments or a salt already used (what
        :meth:`Escrow.open_call` raises)."""
        token, payee = ETH if token is None else checked_address(token, "token"), checked_address(payee, "payee")
        if payee in (self.address, ETH):
            raise MicropayValueError("the payee must be another, non-zero address")
        if not isinstance(deposit, int) or isinstance(deposit, bool) or not 0 < deposit <= MAX_AMOUNT:
            raise MicropayValueError("deposit must be a positive integer in base units, at most 2**96 - 1")
        expiry, seconds = self.escrow.now() + to_seconds(expires_in), to_seconds(window)
        if not Escrow.MIN_WINDOW <= seconds <= Escrow.MAX_WINDOW:
            raise MicropayValueError(f"window must be {Escrow.MIN_WINDOW}..{Escrow.MAX_WINDOW} seconds, got {seconds}")
        key = ChannelKey(self.address, payee, token, secrets.randbits(64) if salt is None else salt, self._delegate)
        if self.escrow.channels([key])[0] is not None:
            raise MicropayValueError(f"a channel with salt {key.salt} already exists to this payee; use another salt")
        call, value = self.escrow.open_call(key, deposit, expiry=expiry, window=seconds, terms=terms)
        return self._record_unseen(key, expiry, seconds, terms), call, value

    def open_for_plan(self, plan: SignedPlan | bytes, *, deposit: int | None = None, cover: int | None = None,
                      expires_in: Duration = timedelta(days=30), window: Duration = timedelta(days=1),
                      salt: int | None = None, inbox: str | None = None) -> ChannelRecord:
        """Open the channel a plan in force (stored, or given and then taken) is paid through,
        with the plan's hash as its ``terms``. The deposit is the plan's total, or ``deposit``,
        or the price of its first ``cover`` tasks. Its payments go to ``inbox``, else to the
        plan's. Raises :class:`PlanNotInForce`, :class:`PlanMismatch` (a plan this payer does not
        pay), :class:`MicropayValueError` (a bad inbox URL), and what :meth:`open_channel` raises."""
        root, agreed = self.plans.to_open(plan)
        url = inbox_url(inbox or agreed.inbox) if inbox or agreed.inbox else None
        if deposit is not None and cover is not None:
            raise MicropayValueError("give a deposit or a number of tasks to cover, not both")
        if cover is not None:
            if not 0 < cover <= len(agreed.tasks):
                raise MicropayValueError(f"cover 1 to {len(agreed.tasks)} tasks, not {cover}")
            deposit = sum(t.price for t in agreed.tasks[:cover])
        record = self.open_channel(agreed.payee, agreed.total if deposit is None else deposit, agreed.token,
                                   expires_in, window=window, salt=salt, terms=root)
        self.outbox.set_inbox(record.ref, url)
        return record

    @property
    def plans(self) -> PlanBook:
        """The plans and feedback this payer holds (checked against its escrow's chain and escrow when online)."""
        escrow = self._escrow
        return PlanBook(self.store, self.address, domain=None if escrow is None else (escrow.chain_id, escrow.address),
                        is_signed_by=None if escrow is None else escrow.is_signed_by)

    def progress(self, channel: ChannelLike, *, now: float | None = None) -> Progress:
        """Where the work under the channel's plan stands: see :func:`micropay.progress.progress`."""
        return progress(self.store, self.channel(channel), self.address, now=now)

    def sync_all(self, *, adopt: bool = False) -> SyncReport:
        """Find every channel this payer's account funds on the escrow (from its ChannelOpened
        events: those a Safe's owners opened too), add the ones the store lacks and refresh the
        others, in one batched read. A channel recorded by :meth:`prepare_open` becomes payable.

        One the store never recorded may have been paid on from a store since lost: it is added
        as if its whole deposit was signed (:meth:`pay` refuses it; request-close and reclaim
        work) unless ``adopt``, a promise that nothing beyond what is claimed on chain was ever
        signed on it (it was just opened elsewhere, never from a lost store). Raises what the
        escrow's reads raise."""
        return sync(self.store, self.escrow, self.address, payee_side=False, adopt=adopt)

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
            note: str = "", deliver: bool = True) -> Payment:
        """Pay ``amount`` base units for ``task``. Returns the new cumulative voucher with this
        task's receipt, already committed to the store (with its place in the :attr:`outbox`, on a
        channel with an inbox). Works offline. Then, if ``deliver``, :meth:`deliver` the channel's.

        Raises :class:`UnknownChannel`, :class:`NotParticipant` (also for a channel whose vouchers
        another key signs), :class:`ChannelFinal`, :class:`ChannelExpired`,
        :class:`InsufficientDeposit` (with the shortfall), or :class:`InvalidReceipt` for a bad task."""
        return self._sign(self.ref(channel), TaskReceipt(task, amount, deliverable, note), deliver=deliver)

    def pay_task(self, channel: ChannelLike, task_id: str, *, unplanned: bool = False, amount: int | None = None,
                 note: str = "", deliverable: bytes | None = None, deliver: bool = True) -> Payment:
        """Pay task ``task_id`` of the plan the channel was opened under, at the plan's price (in
        force now). The receipt commits to the task id and, by default, to the hash of what the
        freelancer said it delivered. Works offline.

        ``unplanned`` pays anyway what the plan would refuse: a task it does not list, one already
        paid, or ``amount`` other than its price (the freelancer's progress shows the difference).
        Delivers as :meth:`pay` does. Raises :class:`TaskRefused`, :class:`UnknownPlan` (no plan
        for this channel), :class:`PlanNotInForce`, and what :meth:`pay` raises."""
        record = self.channel(channel)
        history = self.plans.for_channel(record)
        current = history.in_force
        if current is None:
            raise PlanNotInForce("the channel's plan is not signed by both sides yet")
        price = task_price(current.signed.plan, task_id, unplanned=unplanned, amount=amount)
        if deliverable is None:
            deliverable = latest_delivery(self.store, history.root, task_id)

        def not_paid_yet(tx: StoreTransaction) -> None:
            # On any channel under this plan: a plan paid through a second channel pays each task once too.
            if not unplanned and task_id in paid_tasks(tx, history.root, history.first):
                raise TaskRefused(f"task {task_id!r} is already paid under this plan; pay it as unplanned to pay "
                                  "it again")

        return self._sign(record.ref, TaskReceipt(task_id, price, deliverable, note), not_paid_yet, deliver=deliver,
                          project=history.root)

    def _sign(self, ref: ChannelRef, receipt: TaskReceipt, check: Callable[[StoreTransaction], None] | None = None,
              *, deliver: bool, project: bytes | None = None) -> Payment:
        """Sign the voucher that adds ``receipt`` under the channel's lock (and the ``project``'s,
        whose channels ``check`` reads) once ``check`` (which may refuse) saw the store; then deliver."""
        with self.store.transaction() as tx:
            if project is not None:
                tx.lock(project)
            tip = tx.tip(ref)  # the ledger's last entry, not the whole ledger
            if tip is None:
                raise self.store.unknown(ref)
            record, last = tip.record, tip.last
            count = tip.best.receipt_count if tip.best else 0
            if record.role != "payer" or record.key.payer != self.address:
                raise NotParticipant(f"{ref} is not one this account pays from")
            if record.key.voucher_signer != self.signer_address:
                raise NotParticipant(f"{ref}'s vouchers are signed by {record.key.voucher_signer}, not by this payer's "
                                     f"signer {self.signer_address}: a payer never signs with another key")
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
            if check is not None:
                check(tx)
            total = previous_total + receipt.amount
            if total > record.deposit:
                raise InsufficientDeposit(
                    f"paying {receipt.amount} would bring the channel to {total}, above its deposit {record.deposit}: "
                    f"top up at least {total - record.deposit}", shortfall=total - record.deposit)
            (entry,) = extend_entries(last, [receipt])
            voucher = sign_voucher(self.signer, chain_id=record.chain_id, escrow=record.escrow,
                                   channel_id=record.id, amount=total, ledger_root=entry.root)
            tx.add_receipts(ref, count, [entry])
            tx.add_voucher(voucher, count + 1, ref)
            tx.set_issued(ref, total)
            if tx.inbox(ref) is not None:  # queued with the voucher: a crash cannot lose its delivery
                tx.queue_delivery(ref, total)
        if deliver:
            with contextlib.suppress(StoreError):  # signed and stored: a failed delivery record is retried later
                self.outbox.deliver(ref)
        return Payment.of(voucher, (receipt,), count)

    def deliver(self, channel: ChannelLike | None = None) -> list[DeliveryResult]:
        """Post the queued payments (of ``channel``, or all) to their inboxes: see :meth:`Outbox.deliver`."""
        return self.outbox.deliver(None if channel is None else self.channel(channel).ref)

    def set_inbox(self, channel: ChannelLike, url: str | None) -> None:
        """Send the channel's next payments to ``url`` (None: none); raises as :meth:`Outbox.set_inbox`."""
        self.outbox.set_inbox(self.channel(channel).ref, url)

    def resend(self, channel: ChannelLike, since: int = 0) -> Payment:
        """The latest payment again, with the receipts from index ``since`` (what a payee that
        reported a :class:`~micropay.errors.LedgerGap` asks for). Signs nothing new. Raises
        :class:`MicropayValueError` if nothing was paid yet."""
        return latest_payment(self.store, self.channel(channel), since)

    # -- deposit and exit ------------------------------------------------------------------

    def top_up(self, channel: ChannelLike, amount: int) -> ChannelRecord:
        """Add ``amount`` to the deposit (approving a token first if needed). Raises
        :class:`NotParticipant` for a contract funding account, or what :meth:`Escrow.top_up` raises."""
        record = self.channel(channel)
        sender = self._sender()
        if record.key.token != ETH:
            self.escrow.token(record.key.token).ensure_allowance(sender, self.escrow.address, amount)
        self.escrow.top_up(sender, record.key, amount)
        return self.sync(record.ref)

    def extend(self, channel: ChannelLike, expires_in: Duration) -> ChannelRecord:
        """Move the expiry to ``expires_in`` from now. Raises :class:`NotParticipant` for a contract
        funding account, or what :meth:`Escrow.extend` raises."""
        record = self.channel(channel)
        self.escrow.extend(self._sender(), record.key, self.escrow.now() + to_seconds(expires_in))
        return self.sync(record.ref)

    def request_close(self, channel: ChannelLike) -> ChannelRecord:
        """Start the exit: the payee keeps one challenge window to claim, then :meth:`reclaim`.
        Raises :class:`NotParticipant` for a contract funding account, or what
        :meth:`Escrow.request_close` raises."""
        record = self.channel(channel)
        self.escrow.request_close(self._sender(), record.key)
        return self.sync(record.ref)

    def reclaim(self, channel: ChannelLike) -> int:
        """After expiry, take back what was not claimed. Returns the refund. Raises
        :class:`NotParticipant` for a contract funding account, or what :meth:`Escrow.reclaim` raises."""
        record = self.channel(channel)
        refund = self.escrow.refund_in(self.escrow.reclaim(self._sender(), record.key))
        self.sync(record.ref)
        return refund
