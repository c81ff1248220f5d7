"""The plan book: the plans and feedback one account keeps, and the rules they follow.

Both sides keep every version of each plan they are party to, and every piece of feedback, in
their voucher store (``plans`` and ``feedback`` tables). A project is named by its *root*: the
hash of its first version, which is also the ``terms`` of the channel opened under it.

The rules, checked on whichever side proposes, accepts or receives:

- a plan is taken only if it names this account as payer or payee, is for this chain and escrow
  (when the book knows them) and every signature on it is its side's;
- a plan is in force once both sides signed it; an amendment (version n + 1) must amend the
  version n in force and keep the parties, chain, escrow and token;
- an amendment may add tasks, and re-price, re-date or remove tasks not yet paid; a paid task
  must stay exactly as it was;
- feedback is signed by the side that gives it ("delivered": the payee; "changes requested" and
  "approved": the payer), about a task of the plan in force; a review needs a delivery first.

Every check happens before anything is written, inside one store transaction: a refused document
leaves the store unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eth_account.signers.local import LocalAccount

from micropay.documents import SignatureCheck
from micropay.errors import AmendmentRefused, InvalidPlan, PlanMismatch, PlanNotInForce, UnknownPlan
from micropay.feedback import Feedback, SignedFeedback, Status, parse_feedback
from micropay.ledger import EMPTY_ROOT
from micropay.plan import Plan, Role, SignedPlan, parse_plan
from micropay.records import ChannelRecord, StoredFeedback, StoredPlan

if TYPE_CHECKING:  # the store imports its backups, which hold plans through put_plan
    from micropay.store import StoreTransaction, VoucherStore
    from micropay.store_reader import StoreReader


@dataclass(frozen=True)
class PlanHistory:
    """Every stored version of one project, oldest first."""

    root: bytes
    versions: tuple[StoredPlan, ...]

    @property
    def in_force(self) -> StoredPlan | None:
        """The newest version both sides signed, or None if none is in force yet."""
        agreed = [v for v in self.versions if v.signed.in_force]
        return agreed[-1] if agreed else None

    @property
    def pending(self) -> StoredPlan | None:
        """The newest version proposed after the one in force and not signed by both yet."""
        current = self.in_force
        newer = [v for v in self.versions if not v.signed.in_force
                 and (current is None or v.signed.plan.version > current.signed.plan.version)]
        return newer[-1] if newer else None

    @property
    def first(self) -> Plan:
        """The first stored version's plan (every version has the same parties)."""
        return self.versions[0].signed.plan

    def agreed(self) -> list[StoredPlan]:
        """The versions in force over time, oldest first (one per version number)."""
        return [v for v in self.versions if v.signed.in_force]


@dataclass(frozen=True)
class TermsCheck:
    """What a channel's ``terms`` are to this account: ``plan`` (a plan it signed: ``title``),
    ``none`` (opened without terms) or ``unknown`` (a hash that is no plan it signed)."""

    kind: str
    terms: bytes
    title: str = ""

    def describe(self) -> str:
        """One sentence for a person."""
        if self.kind == "plan":
            return f"the channel was opened under your plan {self.title!r} (0x{self.terms.hex()[:12]}…)"
        if self.kind == "none":
            return "the channel was opened without a plan"
        return (f"the channel's terms 0x{self.terms.hex()[:12]}… are not a plan you signed: payments are kept, but "
                "nothing ties them to agreed tasks")


def check_terms(store: VoucherStore | StoreReader, record: ChannelRecord, address: str) -> TermsCheck:
    """Whether ``record``'s terms are a plan ``address`` signed, for the same parties and token."""
    terms = record.terms or EMPTY_ROOT
    if terms == EMPTY_ROOT:
        return TermsCheck("none", terms)
    stored = store.plan(terms)
    if stored is not None and stored.root == terms:
        plan = stored.signed.plan
        role = plan.role_of(address)
        if role is not None and stored.signed.signature(role) and matches(plan, record):
            return TermsCheck("plan", terms, plan.title)
    return TermsCheck("unknown", terms)


def matches(plan: Plan, record: ChannelRecord) -> bool:
    """Whether ``plan`` is for ``record``'s chain, escrow, parties and token."""
    key = record.key
    return (plan.chain_id, plan.escrow, plan.payer, plan.payee, plan.token) == (
        record.chain_id, record.escrow, key.payer, key.payee, key.token)


def check_channel(plan: Plan, record: ChannelRecord) -> None:
    """Raises :class:`PlanMismatch` unless ``plan`` is for ``record``'s chain, escrow, parties and token."""
    if not matches(plan, record):
        raise PlanMismatch(f"the plan is for {plan.payer} paying {plan.payee} in {plan.token} on chain "
                           f"{plan.chain_id} escrow {plan.escrow}: not channel 0x{record.id.hex()}")


class PlanBook:
    """The plans and feedback ``address`` holds in ``store``. ``domain``: the (chain id, escrow)
    every plan must be for (None: any). ``is_signed_by`` judges a contract wallet's signature
    (EIP-1271), as :meth:`micropay.escrow.Escrow.is_signed_by` does."""

    def __init__(self, store: VoucherStore, address: str, *, domain: tuple[int, str] | None = None,
                 is_signed_by: SignatureCheck | None = None) -> None:
        self.store = store
        self.address = address
        self.domain = domain
        self.is_signed_by = is_signed_by

    # -- reading -----------------------------------------------------------------------------

    def history(self, root: bytes) -> PlanHistory:
        """Every stored version of project ``root``. Raises :class:`UnknownPlan` if there is none."""
        versions = self.store.plans(root)
        if not versions:
            raise UnknownPlan(f"no plan 0x{root.hex()} in {self.store.location}")
        return PlanHistory(root, tuple(versions))

    def in_force(self, root: bytes) -> Plan:
        """The version of project ``root`` in force. Raises :class:`UnknownPlan`, or
        :class:`PlanNotInForce` if only a proposal is stored."""
        current = self.history(root).in_force
        if current is None:
            raise PlanNotInForce(f"plan 0x{root.hex()[:12]}… is not signed by both sides yet: it binds nobody")
        return current.signed.plan

    def root_of(self, plan_hash: bytes) -> bytes:
        """The project root of a stored plan version. Raises :class:`UnknownPlan`."""
        stored = self.store.plan(plan_hash)
        if stored is None:
            raise UnknownPlan(f"no plan 0x{plan_hash.hex()} in {self.store.location}")
        return stored.root

    def for_channel(self, record: ChannelRecord) -> PlanHistory:
        """The project ``record`` was opened under. Raises :class:`UnknownPlan` if it has no terms
        or they are no stored plan, :class:`PlanMismatch` if the plan is for another channel."""
        if not record.terms or record.terms == EMPTY_ROOT:
            raise UnknownPlan(f"channel 0x{record.id.hex()} was not opened under a plan")
        history = self.history(record.terms)
        check_channel(history.first, record)
        return history

    def roots(self) -> list[bytes]:
        """The root of every stored project."""
        return self.store.plan_roots()

    # -- plans ---------------------------------------------------------------------------------

    def propose(self, plan: Plan, account: LocalAccount) -> SignedPlan:
        """Sign and store ``plan`` (a first version or an amendment) as this side's proposal.
        Raises :class:`InvalidPlan` if ``account`` is not its proposer, :class:`PlanMismatch`,
        :class:`AmendmentRefused` or :class:`UnknownPlan` (an amendment of a plan not stored)."""
        if account.address != self.address or plan.proposer != self.address:
            raise InvalidPlan(f"a plan is proposed by its proposer {plan.proposer}, signing with its own key")
        return self._store(SignedPlan(plan).signed_by(account))

    def accept(self, document: object, account: LocalAccount) -> SignedPlan:
        """Countersign a proposal (a :class:`SignedPlan` or its text) from the other side and
        store it, in force. Raises :class:`InvalidPlan` (malformed, tampered, not signed by its
        other side), :class:`PlanMismatch`, :class:`AmendmentRefused` or :class:`UnknownPlan`."""
        signed = self._checked(document)
        role = signed.plan.role_of(account.address)
        if account.address != self.address or role is None:
            raise PlanMismatch(f"the plan is between {signed.plan.payer} and {signed.plan.payee}, not {self.address}")
        other: Role = "payee" if role == "payer" else "payer"
        if not signed.signature(other):
            raise InvalidPlan(f"the plan carries no signature of its {other}: there is nothing to accept")
        return self._store(signed.signed_by(account))

    def take(self, document: object) -> SignedPlan:
        """Store a plan the other side sent: a proposal, or a plan it countersigned (then in force).
        Returns the plan with every signature this store now holds. Raises what :meth:`accept` raises."""
        return self._store(self._checked(document))

    def _checked(self, document: object) -> SignedPlan:
        signed = parse_plan(document)
        signed.verify(self.is_signed_by)
        plan = signed.plan
        if plan.role_of(self.address) is None:
            raise PlanMismatch(f"the plan is between {plan.payer} and {plan.payee}, not {self.address}")
        return signed

    def _store(self, signed: SignedPlan) -> SignedPlan:
        plan = signed.plan
        if self.domain is not None and (plan.chain_id, plan.escrow) != self.domain:
            raise PlanMismatch(f"the plan is for escrow {plan.escrow} on chain {plan.chain_id}, this account uses "
                               f"{self.domain[1]} on chain {self.domain[0]}")
        with self.store.transaction() as tx:
            return put_plan(tx, signed, rules=lambda root, existing, merged: self._rules(tx, root, existing, merged))

    def _rules(self, tx: StoreTransaction, root: bytes, existing: StoredPlan | None, signed: SignedPlan) -> None:
        """What this side checks before it holds ``signed`` (merged with what it held, ``existing``)."""
        plan = signed.plan
        role = plan.role_of(self.address)
        if signed.in_force and existing is not None and role is not None and not existing.signed.signature(role):
            self._check_no_rival(tx, root, plan)
        if plan.version > 1:
            # A side is bound by the paid-task rule when it signs: a version it signed before a task
            # was paid (at the new price, by a payer that accepted it) still comes into force here.
            signed_here = existing is not None and role is not None and bool(existing.signed.signature(role))
            self._check_amendment(tx, root, plan, paid_rule=not signed_here)

    def _check_no_rival(self, tx: StoreTransaction, root: bytes, plan: Plan) -> None:
        """Before this side countersigns a version: refuse if it proposed another of the same number,
        which the other side may be countersigning at this moment (two versions in force would fork)."""
        mine = [v.signed.plan for v in tx.plans(root) if v.signed.plan.version == plan.version
                and v.signed.plan.hash != plan.hash and v.signed.plan.proposer == self.address]
        if mine:
            raise AmendmentRefused(f"you proposed another version {plan.version} (0x{mine[0].hash.hex()[:12]}…) "
                                   "yourself: both sides amended at once. Agree on one: withdraw yours "
                                   "(`micropay plan withdraw`) and accept theirs, or ask them to accept yours")

    def withdraw(self, plan_hash: bytes) -> None:
        """Forget a proposal of this side that the other side has not countersigned (in this
        store), so the other side's rival version can be accepted. Raises :class:`UnknownPlan`, or
        :class:`InvalidPlan` if it is not this side's, or is in force."""
        with self.store.transaction() as tx:
            stored = tx.plan(plan_hash)
            if stored is not None:
                tx.lock(stored.root)
                stored = tx.plan(plan_hash)
            if stored is None:
                raise UnknownPlan(f"no plan 0x{plan_hash.hex()} in {self.store.location}")
            if stored.signed.plan.proposer != self.address or stored.signed.in_force:
                raise InvalidPlan("only your own proposal, not yet in force, can be withdrawn")
            tx.forget_plan(plan_hash)

    def _check_amendment(self, tx: StoreTransaction, root: bytes, plan: Plan, *, paid_rule: bool = True) -> None:
        versions = tx.plans(root)
        previous = next((v.signed for v in versions if v.signed.plan.hash == plan.amends), None)
        if previous is None or not previous.in_force or previous.plan.version != plan.version - 1:
            raise AmendmentRefused(f"version {plan.version} must amend version {plan.version - 1} in force; "
                                   f"0x{plan.amends.hex()[:12]}… is not that")
        before = previous.plan
        if (plan.payer, plan.payee, plan.chain_id, plan.escrow, plan.token) != (
                before.payer, before.payee, before.chain_id, before.escrow, before.token):
            raise PlanMismatch("an amendment keeps the plan's parties, chain, escrow and token")
        newer = [v for v in versions if v.signed.in_force and v.signed.plan.version > plan.version]
        if newer:
            raise AmendmentRefused(f"version {newer[-1].signed.plan.version} is already in force")
        for task_id in paid_tasks(tx, root, before) if paid_rule else {}:
            old, new = before.task(task_id), plan.task(task_id)
            if old is None:
                continue  # paid as unplanned: not the plan's to change
            if new is None:
                raise AmendmentRefused(f"task {task_id!r} is paid: an amendment cannot remove it")
            if new != old:
                what = ("re-price" if new.price != old.price else "re-date" if new.due != old.due else "change")
                raise AmendmentRefused(f"task {task_id!r} is paid: an amendment cannot {what} it")

    def to_open(self, plan: SignedPlan | bytes) -> tuple[bytes, Plan]:
        """(root, plan in force) of the plan a channel is about to be opened under by this payer:
        a stored plan's hash, or a plan in force (taken into the store once checked). Raises
        :class:`PlanMismatch` if this account does not pay it or it already has an open channel,
        :class:`PlanNotInForce`, :class:`UnknownPlan`."""
        if isinstance(plan, SignedPlan):
            plan = self._checked(plan)  # every check before anything is stored
            if plan.plan.payer != self.address:
                raise PlanMismatch(f"the plan is paid by {plan.plan.payer}, not by this payer {self.address}")
            if not plan.in_force:
                raise PlanNotInForce("the plan is not signed by both sides: accept it first")
            self.take(plan)
            plan = plan.hash
        elif not isinstance(plan, bytes):
            raise InvalidPlan("a plan is given as a SignedPlan or as its hash (bytes)")
        root = self.root_of(plan)
        agreed = self.in_force(root)
        if agreed.payer != self.address:
            raise PlanMismatch(f"the plan is paid by {agreed.payer}, not by this payer {self.address}")
        current = [r for r in self.store.channels("payer", terms=root) if not r.closed]
        if current:
            raise PlanMismatch(f"plan {agreed.title!r} is already paid through channel 0x{current[0].id.hex()}: top "
                               "it up instead of opening a second one")
        return root, agreed

    # -- feedback ------------------------------------------------------------------------------

    def give(self, account: LocalAccount, root: bytes, task_id: str, status: Status, *,
             deliverable: bytes = EMPTY_ROOT, note: str = "") -> SignedFeedback:
        """Sign and store feedback on a task of the plan in force. Raises :class:`InvalidPlan`
        if this side does not give that kind of feedback, the task is not in the plan in force,
        or (a review) it was not delivered; :class:`UnknownPlan` or :class:`PlanNotInForce`."""
        plan = self.in_force(root)
        feedback = Feedback(plan.chain_id, plan.escrow, root, task_id, status, int(time.time()), deliverable, note)
        if account.address != self.address or plan.role_of(self.address) != feedback.given_by:
            raise InvalidPlan(f"{status!r} is given by the plan's {feedback.given_by}, not by {self.address}")
        return self._add_feedback(SignedFeedback.sign(feedback, account))

    def take_feedback(self, document: object) -> SignedFeedback:
        """Verify and store feedback the other side sent. Raises :class:`InvalidPlan` (malformed,
        tampered, signed by the wrong side, a review of an undelivered task) or :class:`UnknownPlan`."""
        signed = parse_feedback(document)
        history = self.history(signed.feedback.plan)
        signed.verify(history.first, self.is_signed_by)
        return self._add_feedback(signed)

    def _add_feedback(self, signed: SignedFeedback) -> SignedFeedback:
        f = signed.feedback
        with self.store.transaction() as tx:
            tx.lock(f.plan)
            versions = tx.plans(f.plan)
            agreed = [v.signed.plan for v in versions if v.signed.in_force]
            if not agreed:
                raise PlanNotInForce("feedback needs a plan signed by both sides")
            if agreed[-1].task(f.task_id) is None:
                raise InvalidPlan(f"task {f.task_id!r} is not in the plan in force")
            if f.status != "delivered":
                delivered = [s for s in tx.feedback(f.plan) if s.signed.feedback.task_id == f.task_id
                             and s.signed.feedback.status == "delivered" and s.signed.feedback.at <= f.at]
                if not delivered:
                    raise InvalidPlan(f"task {f.task_id!r} has not been delivered: there is nothing to review yet")
            tx.add_feedback(f.plan, StoredFeedback(signed, time.time()))
        return signed


def _project(tx: StoreTransaction, plan: Plan) -> bytes:
    """The root of the project ``plan`` belongs to, as far as ``tx``'s store knows it."""
    if plan.version == 1:
        return plan.hash
    amended = tx.plan(plan.amends)
    return plan.amends if amended is None else amended.root


def put_plan(tx: StoreTransaction, signed: SignedPlan,
             rules: Callable[[bytes, StoredPlan | None, SignedPlan], None] | None = None) -> SignedPlan:
    """Hold a verified plan version in ``tx``'s store, merged with the signatures already held;
    returns it as now held. Its root is its own hash for version 1, else the root of the version
    it amends. ``rules(root, existing, merged)`` may refuse (by raising) before anything is
    written; a copy that adds no signature is held as it is, unchecked. Raises
    :class:`UnknownPlan` for an amendment of a plan not held, :class:`AmendmentRefused` for a
    second version in force at one version number."""
    plan = signed.plan
    tx.lock(_project(tx, plan))  # one writer per project: its versions and in-force rule span rows
    existing = tx.plan(plan.hash)
    if existing is not None and existing.signed.merged(signed) == existing.signed:
        return existing.signed  # already held, with every signature this copy carries
    if existing is not None:
        signed, root = existing.signed.merged(signed), existing.root
    elif plan.version == 1:
        root = plan.hash
    else:
        amended = tx.plan(plan.amends)
        if amended is None:
            raise UnknownPlan(f"version {plan.version} amends 0x{plan.amends.hex()[:12]}…, a plan this store "
                              "does not hold: take the version it amends first")
        root = amended.root
    if rules is not None:
        rules(root, existing, signed)
    if signed.in_force and any(v.signed.in_force and v.signed.plan.version == plan.version
                               and v.signed.hash != plan.hash for v in tx.plans(root)):
        raise AmendmentRefused(f"another version {plan.version} of this plan is already in force")
    tx.put_plan(StoredPlan(signed, root, existing.received_at if existing else time.time()), in_force=signed.in_force)
    return signed


def paid_tasks(tx: StoreTransaction, root: bytes, plan: Plan) -> dict[str, int]:
    """Task id -> amount paid, over every stored channel opened under project ``root`` between
    ``plan``'s parties (a channel's terms are public: anyone may open one naming them)."""
    paid: dict[str, int] = {}
    for record in tx.channels(terms=root):
        if matches(plan, record):
            for entry in tx.ledger(record.ref):
                paid[entry.receipt.task_id] = paid.get(entry.receipt.task_id, 0) + entry.receipt.amount
    return paid
