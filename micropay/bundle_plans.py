"""Plans and feedback in a backup bundle (see :mod:`micropay.bundle`).

A bundle lists every stored plan version (:meth:`SignedPlan.to_dict`) under ``plans`` and every
piece of feedback (:meth:`SignedFeedback.to_dict`) under ``feedback``. Neither carries its
project root: it follows from the plans themselves (version 1's root is its own hash; a later
version's root is the root of the version it amends), so nothing unsigned in the bundle says
which project a plan belongs to.

Importing verifies every signature before anything is written (a plan's against its parties, a
piece of feedback's against the plan its root names, from the bundle or the store), then merges
under the caller's store transaction: a plan already stored gains the signatures the bundle adds
(:meth:`SignedPlan.merged`), feedback already stored is kept as it is.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from micropay.documents import SignatureCheck
from micropay.errors import AmendmentRefused, InvalidPlan, StoreError, UnknownPlan
from micropay.feedback import SignedFeedback
from micropay.plan import Plan, SignedPlan
from micropay.planbook import put_plan
from micropay.records import StoredFeedback

if TYPE_CHECKING:
    from micropay.escrow import Escrow
    from micropay.store import VoucherStore
    from micropay.store_transaction import StoreTransaction


@dataclass(frozen=True)
class BundledPlans:
    """The plans (in version order) and feedback a bundle carries."""

    plans: tuple[SignedPlan, ...] = ()
    feedback: tuple[SignedFeedback, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.plans or self.feedback)


def export_plans(store: VoucherStore) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Every stored plan version and piece of feedback of ``store``, as their JSON documents."""
    plans: list[dict[str, object]] = []
    feedback: list[dict[str, object]] = []
    for root in store.plan_roots():
        plans += [stored.signed.to_dict() for stored in store.plans(root)]
        feedback += [stored.signed.to_dict() for stored in store.feedback(root)]
    return plans, feedback


def parse_plans(bundle: dict[str, Any]) -> BundledPlans:
    """The plans and feedback of a bundle (none for a bundle from before they were kept). Raises
    :class:`StoreError` if either list is not a list, :class:`InvalidPlan` for a malformed document
    (signatures are checked by :func:`verify_plans`)."""
    lists = {name: bundle.get(name, []) for name in ("plans", "feedback")}
    for name, items in lists.items():
        if not isinstance(items, list):
            raise StoreError(f"the bundle's {name} must be a list")
    plans = sorted((SignedPlan.from_dict(item) for item in lists["plans"]), key=lambda s: s.plan.version)
    return BundledPlans(tuple(plans), tuple(SignedFeedback.from_dict(item) for item in lists["feedback"]))


def verify_plans(store: VoucherStore, bundled: BundledPlans, *, owners: Collection[str] | None = None,
                 escrows: Sequence[Escrow] = ()) -> None:
    """Check every signature ``bundled`` carries. A contract wallet's signature (EIP-1271) is
    judged through the one of ``escrows`` its plan is on. Raises :class:`InvalidPlan` for a
    signature that is not its side's (or a plan no side signed), :class:`StoreError` for feedback
    on a project neither the bundle nor the store holds, or (with ``owners``) a plan none of
    ``owners`` is party to."""
    firsts: dict[bytes, Plan] = {}
    for signed in bundled.plans:
        plan = signed.plan
        if owners is not None and plan.payer not in owners and plan.payee not in owners:
            raise StoreError(f"the bundle holds plan 0x{plan.hash.hex()[:12]}… between {plan.payer} and "
                             f"{plan.payee}: not this account's; nothing was imported")
        try:
            signed.verify(_signature_check(plan, escrows))
        except InvalidPlan as exc:
            raise InvalidPlan(f"plan 0x{plan.hash.hex()[:12]}… ({plan.title!r:.60}, version {plan.version}) in "
                              f"the bundle does not verify: {exc}") from None
        if plan.version == 1:
            firsts[plan.hash] = plan
    for signed_feedback in bundled.feedback:
        f = signed_feedback.feedback
        first = firsts.get(f.plan)
        if first is None:
            stored = store.plan(f.plan)
            if stored is None or stored.root != f.plan:
                raise StoreError(f"the bundle holds feedback on plan 0x{f.plan.hex()[:12]}…, the first version "
                                 "of no plan in the bundle or the store: nothing was imported")
            first = stored.signed.plan
        try:
            signed_feedback.verify(first, _signature_check(first, escrows))
        except InvalidPlan as exc:
            raise InvalidPlan(f"feedback on task {f.task_id!r} of plan 0x{f.plan.hex()[:12]}… in the bundle does "
                              f"not verify: {exc}") from None


def _signature_check(plan: Plan, escrows: Sequence[Escrow]) -> SignatureCheck | None:
    escrow = next((e for e in escrows if (e.chain_id, e.address) == (plan.chain_id, plan.escrow)), None)
    return None if escrow is None else escrow.is_signed_by


def merge_plans(tx: StoreTransaction, bundled: BundledPlans) -> None:
    """Write verified ``bundled`` plans and feedback through ``tx``, merged with what the store
    holds. Raises :class:`StoreError` (the transaction then keeps nothing) for an amendment of a
    plan neither holds, or a second version in force at one version number of a project."""
    for signed in bundled.plans:  # in version order: what a version amends is held first
        plan = signed.plan
        try:
            put_plan(tx, signed)
        except UnknownPlan:
            raise StoreError(f"plan 0x{plan.hash.hex()[:12]}… (version {plan.version}) amends "
                             f"0x{plan.amends.hex()[:12]}…, a plan neither the bundle nor the store holds: nothing "
                             "was imported") from None
        except AmendmentRefused:
            raise StoreError(f"plan 0x{plan.hash.hex()[:12]}… is version {plan.version} in force of a project the "
                             f"store holds another version {plan.version} in force of: nothing was imported") from None
    now = time.time()
    for signed_feedback in bundled.feedback:
        tx.add_feedback(signed_feedback.feedback.plan, StoredFeedback(signed_feedback, now))
