"""Every rejection under a plan leaves both stores unchanged: a plan signed by someone else, for
another chain, escrow or channel, or tampered; an amendment only one side signed (not in force);
an amendment that re-prices or removes a paid task; a task that is unknown, paid twice or at
another price; feedback by the wrong side, on an undelivered task or an unknown plan. Money itself
is never refused: the payee stores every valid payment and its progress shows how it differs from
the plan."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from micropay import Payee, Payer
from micropay._utils import textform
from micropay._utils.crypto import unsafe_sign_digest
from micropay.errors import (
    AmendmentRefused,
    InvalidPlan,
    PlanMismatch,
    PlanNotInForce,
    TaskRefused,
    UnknownPlan,
)
from micropay.feedback import Feedback, SignedFeedback
from micropay.plan import Plan, PlanTask, SignedPlan, parse_plan
from store_snapshot import store_snapshot

MILLI = 10**15
ETH = "0x" + "00" * 20
TASKS = (PlanTask("a", "Wireframes", 3 * MILLI), PlanTask("b", "Design", 4 * MILLI),
         PlanTask("c", "Build", 5 * MILLI))
STRANGER = Account.from_key(b"\x66" * 32)


@contextlib.contextmanager
def unchanged(*sides: Payer | Payee) -> Iterator[None]:
    """Asserts that nothing any of these stores holds changed inside the block (read through the
    store's API, on either backend: see store_snapshot.py)."""
    before = [store_snapshot(side.store) for side in sides]
    assert all(snapshot["schema_version"] > 0 for snapshot in before)  # real stores, read whole
    yield
    assert [store_snapshot(side.store) for side in sides] == before


def plan_for(payer: Payer, payee: Payee, tasks: tuple[PlanTask, ...] = TASKS, *, proposer: str | None = None,
             title: str = "Shop site") -> Plan:
    return Plan(title, payer.address, payee.address, payee.escrow.chain_id, payee.escrow.address, ETH, tasks,
                proposer or payee.address, int(time.time()))


def amend(before: Plan, tasks: tuple[PlanTask, ...], proposer: str) -> Plan:
    return dataclasses.replace(before, tasks=tasks, proposer=proposer, proposed_at=int(time.time()),
                               version=before.version + 1, amends=before.hash)


def replaced(tasks: tuple[PlanTask, ...], task_id: str, **changes: object) -> tuple[PlanTask, ...]:
    return tuple(dataclasses.replace(t, **changes) if t.id == task_id else t for t in tasks)  # type: ignore[arg-type]


@dataclass
class Project:
    payer: Payer
    payee: Payee
    client: LocalAccount
    freelancer: LocalAccount
    agreed: SignedPlan
    channel: bytes

    @property
    def root(self) -> bytes:
        return self.agreed.hash

    def pay(self, task_id: str, **kwargs: object):
        return self.payee.receive(self.payer.pay_task(self.channel, task_id, **kwargs).encode())  # type: ignore[arg-type]


def agree(payer: Payer, payee: Payee, client: LocalAccount, freelancer: LocalAccount, plan: Plan) -> SignedPlan:
    proposal = payee.plans.propose(plan, freelancer)
    agreed = payer.plans.accept(proposal.encode(), client)
    payee.plans.take(agreed.encode())
    return agreed


@pytest.fixture
def project(clients, freelancer, make_payer, payee) -> Project:
    payer = make_payer(clients[0], "client")
    agreed = agree(payer, payee, clients[0], freelancer, plan_for(payer, payee))
    record = payer.open_for_plan(agreed.hash, deposit=40 * MILLI)
    return Project(payer, payee, clients[0], freelancer, agreed, record.id)


def test_the_snapshot_sees_any_write(project):
    with pytest.raises(AssertionError), unchanged(project.payer, project.payee):
        project.payee.plans.give(project.freelancer, project.root, "a", "delivered")
    with pytest.raises(AssertionError), unchanged(project.payer, project.payee):
        project.payer.pay_task(project.channel, "a")


# -- plans signed by someone else, for another chain, escrow or channel, tampered ---------------------


def test_a_plan_signed_by_someone_else_is_refused(clients, freelancer, make_payer, payee):
    payer = make_payer(clients[0], "client")
    agree(payer, payee, clients[0], freelancer, plan_for(payer, payee, title="Earlier work"))  # the stores hold things
    plan = plan_for(payer, payee)
    as_payee = SignedPlan(plan, payee_signature=unsafe_sign_digest(STRANGER, plan.hash))
    as_payer = SignedPlan(plan, payer_signature=unsafe_sign_digest(STRANGER, plan.hash))
    countersigned = SignedPlan(plan, unsafe_sign_digest(STRANGER, plan.hash), SignedPlan(plan).signed_by(
        freelancer).payee_signature)
    others = Plan("Not yours", clients[1].address, clients[2].address, plan.chain_id, plan.escrow, ETH, TASKS,
                  clients[2].address, 0)
    theirs = SignedPlan(others).signed_by(clients[2]).signed_by(clients[1])
    with unchanged(payer, payee):
        for attempt in (lambda: payer.plans.accept(as_payee.encode(), clients[0]),
                        lambda: payer.plans.take(as_payee.to_json()),
                        lambda: payer.open_for_plan(as_payee),
                        lambda: payee.plans.take(as_payee),
                        lambda: payee.plans.accept(as_payee.encode(), freelancer),
                        lambda: payee.plans.accept(as_payer.encode(), freelancer),
                        lambda: payee.plans.take(countersigned.encode()),
                        lambda: payer.plans.take(countersigned.encode())):
            with pytest.raises(InvalidPlan, match="signature is not by its"):
                attempt()
        with pytest.raises(PlanMismatch, match="not 0x"):
            payer.plans.take(theirs.encode())
        with pytest.raises(PlanMismatch, match="not 0x"):
            payee.plans.take(theirs.encode())
        with pytest.raises(InvalidPlan, match="proposed by its proposer"):
            payee.plans.propose(plan, STRANGER)
        with pytest.raises(InvalidPlan, match="proposed by its proposer"):
            payee.plans.propose(dataclasses.replace(plan, proposer=payer.address), freelancer)
        with pytest.raises(InvalidPlan, match="proposed by its proposer"):
            payer.plans.propose(plan, clients[0])  # the payee's plan: the payer can accept it, not propose it


@pytest.mark.parametrize("where", ["chain", "escrow"])
def test_a_plan_for_another_chain_or_escrow_is_refused(clients, freelancer, make_payer, payee, where):
    payer = make_payer(clients[0], "client")
    agree(payer, payee, clients[0], freelancer, plan_for(payer, payee, title="Earlier work"))
    ours = plan_for(payer, payee)
    plan = (dataclasses.replace(ours, chain_id=ours.chain_id + 1) if where == "chain"
            else dataclasses.replace(ours, escrow="0x" + "e5" * 20))
    proposal = SignedPlan(plan).signed_by(freelancer)
    both = proposal.signed_by(clients[0])
    with unchanged(payer, payee):
        for attempt in (lambda: payee.plans.propose(plan, freelancer),
                        lambda: payer.plans.accept(proposal.encode(), clients[0]),
                        lambda: payer.plans.take(proposal.to_json()),
                        lambda: payee.plans.take(both.encode()),
                        lambda: payer.open_for_plan(both)):
            with pytest.raises(PlanMismatch, match="this account uses"):
                attempt()


def test_a_plan_for_another_channel_is_refused(api_token, clients, freelancer, make_payer, payee, project):
    payer, root = project.payer, project.root
    # a channel whose terms are the plan, but to another payee, or in another token
    elsewhere = payer.open_channel(clients[2].address, 10 * MILLI, terms=root)
    in_a_token = payer.open_channel(freelancer.address, 10**12, api_token.address, terms=root)
    with unchanged(payer, payee):
        for channel in (elsewhere.id, in_a_token.id):
            with pytest.raises(PlanMismatch, match="not channel 0x"):
                payer.pay_task(channel, "a")
            with pytest.raises(PlanMismatch, match="not channel 0x"):
                payer.progress(channel)
            with pytest.raises(PlanMismatch, match="not channel 0x"):
                payer.plans.for_channel(payer.channel(channel))
    # the freelancer still takes the money on it, and says the terms are no plan of this channel's
    received = payee.receive(payer.pay(in_a_token.id, 10**6, "a").encode())
    assert received.terms is not None and received.terms.kind == "unknown"
    assert [e.receipt.amount for e in payee.ledger(in_a_token.id)] == [10**6]
    with pytest.raises(PlanMismatch):
        payee.progress(in_a_token.id)


def test_a_payer_cannot_open_a_channel_for_a_plan_it_does_not_pay(clients, freelancer, make_payer, payee):
    client = make_payer(clients[0], "client")
    other = make_payer(clients[1], "other-client")
    # the client is this plan's payee: a party to it, but not the one who pays it
    plan = Plan("Reversed", clients[1].address, clients[0].address, payee.escrow.chain_id, payee.escrow.address, ETH,
                TASKS, clients[0].address, 0)
    agreed = other.plans.accept(client.plans.propose(plan, clients[0]).encode(), clients[1])
    client.plans.take(agreed.encode())
    pending = payee.plans.propose(plan_for(client, payee, title="Only proposed"), freelancer)
    client.plans.take(pending.encode())
    with unchanged(client, other, payee):
        with pytest.raises(PlanMismatch, match="not by this payer"):
            client.open_for_plan(agreed.hash)
        with pytest.raises(PlanNotInForce):
            client.open_for_plan(pending.hash)
        with pytest.raises(UnknownPlan):
            client.open_for_plan(b"\x42" * 32)


def test_a_refused_open_for_a_given_plan_changes_nothing(clients, freelancer, make_payer, payee):
    client = make_payer(clients[0], "client")
    agree(client, payee, clients[0], freelancer, plan_for(client, payee, title="Earlier work"))
    plan = Plan("Reversed", clients[1].address, clients[0].address, payee.escrow.chain_id, payee.escrow.address, ETH,
                TASKS, clients[0].address, 0)
    agreed = SignedPlan(plan).signed_by(clients[0]).signed_by(clients[1])
    with unchanged(client), pytest.raises(PlanMismatch, match="not by this payer"):
        client.open_for_plan(agreed)


def test_a_tampered_plan_is_refused(clients, freelancer, make_payer, payee):
    payer = make_payer(clients[0], "client")
    proposal = payee.plans.propose(plan_for(payer, payee), freelancer)
    payer.plans.take(proposal.encode())
    document = json.loads(textform.unwrap(proposal.encode(), "mpl1", "plan"))
    document["plan"]["tasks"][1]["price"] = str(MILLI)  # cheaper design
    cheaper = textform.wrap("mpl1", json.dumps(document).encode())  # a valid checksum: only the signature tells
    file = json.loads(proposal.to_json())
    file["plan"]["tasks"].append({"id": "d", "title": "Extra", "price": "1", "due": 0, "criteria": ""})
    longer = json.dumps(file)
    agreed_text = proposal.signed_by(clients[0]).encode()
    agreed_document = json.loads(textform.unwrap(agreed_text, "mpl1", "plan"))
    agreed_document["plan"]["title"] = "Shop site and blog"
    retitled = textform.wrap("mpl1", json.dumps(agreed_document).encode())
    typo = agreed_text[:50] + ("a" if agreed_text[50] != "a" else "b") + agreed_text[51:]
    with unchanged(payer, payee):
        for text in (cheaper, longer, retitled, typo):
            for attempt in (lambda t=text: payer.plans.accept(t, clients[0]), lambda t=text: payer.plans.take(t),
                            lambda t=text: payee.plans.take(t), lambda t=text: payer.open_for_plan(parse_plan(t))):
                with pytest.raises(InvalidPlan):
                    attempt()
    assert not payee.plans.history(proposal.hash).versions[0].signed.in_force


# -- amendments --------------------------------------------------------------------------------------


def test_an_amendment_signed_by_one_side_only_is_not_in_force(project):
    payer, payee, v1 = project.payer, project.payee, project.agreed.plan
    project.pay("a")
    v2 = amend(v1, (*replaced(v1.tasks, "b", price=6 * MILLI), PlanTask("d", "Blog", 2 * MILLI)), payee.address)
    proposal = payee.plans.propose(v2, project.freelancer)
    assert payer.plans.take(proposal.encode()) == proposal  # kept, as a proposal
    forged = SignedPlan(v2, unsafe_sign_digest(STRANGER, v2.hash), proposal.payee_signature)
    with unchanged(payer, payee):
        with pytest.raises(TaskRefused, match="no task 'd'"):
            payer.pay_task(project.channel, "d")
        with pytest.raises(TaskRefused, match="priced 4000000000000000 in the plan"):
            payer.pay_task(project.channel, "b", amount=6 * MILLI)
        with pytest.raises(InvalidPlan, match="not in the plan in force"):
            payee.plans.give(project.freelancer, project.root, "d", "delivered")
        for side in (payer, payee):
            with pytest.raises(InvalidPlan, match="payer signature is not by its payer"):
                side.plans.take(forged.encode())
        for progress in (payer.progress(project.channel), payee.progress(project.channel)):
            assert progress.version == 1 and progress.planned_total == 12 * MILLI
            assert [t.task_id for t in progress.tasks] == ["a", "b", "c"]
            assert [(a.version, a.in_force) for a in progress.amendments] == [(1, True), (2, False)]
            assert [(c.kind, c.task_id) for c in progress.amendments[1].changes] == [("re-priced", "b"),
                                                                                     ("added", "d")]
    assert payer.plans.in_force(project.root) == v1 == payee.plans.in_force(project.root)
    received = project.pay("b")  # at the price in force
    assert [(t.task_id, t.amount) for t in received.tasks] == [("b", 4 * MILLI)]
    assert payee.progress(project.channel).tasks[1].deviation == ""


@pytest.mark.parametrize("change", ["re-price", "remove", "re-date", "change"])
def test_an_amendment_may_not_touch_a_paid_task(project, change):
    payer, payee, v1 = project.payer, project.payee, project.agreed.plan
    project.pay("a")
    tasks = {"re-price": replaced(v1.tasks, "a", price=2 * MILLI), "remove": v1.tasks[1:],
             "re-date": replaced(v1.tasks, "a", due=int(time.time()) + 86_400),
             "change": replaced(v1.tasks, "a", criteria="and a sitemap")}[change]
    by_payee, by_payer = amend(v1, tasks, payee.address), amend(v1, tasks, payer.address)
    signed_by_payee = SignedPlan(by_payee).signed_by(project.freelancer)  # as a modified micropay would send it
    signed_by_payer = SignedPlan(by_payer).signed_by(project.client)
    what = "remove" if change == "remove" else change
    with unchanged(payer, payee):
        for attempt in (lambda: payee.plans.propose(by_payee, project.freelancer),
                        lambda: payer.plans.propose(by_payer, project.client),
                        lambda: payer.plans.accept(signed_by_payee.encode(), project.client),
                        lambda: payer.plans.take(signed_by_payee.to_json()),
                        lambda: payee.plans.accept(signed_by_payer.encode(), project.freelancer),
                        lambda: payee.plans.take(signed_by_payer.encode()),
                        lambda: payee.plans.take(signed_by_payer.signed_by(project.freelancer).encode())):
            with pytest.raises(AmendmentRefused, match=f"task 'a' is paid: an amendment cannot {what} it"):
                attempt()
    # an unpaid task may change
    allowed = payee.plans.propose(amend(v1, replaced(v1.tasks, "c", price=2 * MILLI), payee.address),
                                  project.freelancer)
    assert payer.plans.accept(allowed.encode(), project.client).in_force


def test_an_amendment_of_a_task_the_payee_does_not_know_is_paid_is_refused_by_the_payer(project):
    payer, payee, v1 = project.payer, project.payee, project.agreed.plan
    payer.pay_task(project.channel, "b")  # paid, but the payment has not reached the freelancer yet
    proposal = payee.plans.propose(amend(v1, replaced(v1.tasks, "b", price=9 * MILLI), payee.address),
                                   project.freelancer)  # the payee's store sees nothing paid on "b"
    with unchanged(payer, payee), pytest.raises(AmendmentRefused, match="task 'b' is paid: an amendment cannot "
                                                                        "re-price it"):
        payer.plans.accept(proposal.encode(), project.client)
    assert payer.progress(project.channel).version == 1


def test_an_amendment_that_does_not_follow_the_version_in_force_is_refused(project):
    payer, payee, v1 = project.payer, project.payee, project.agreed.plan
    skipping = dataclasses.replace(amend(v1, v1.tasks[:2], payee.address), version=3)
    pending = payee.plans.propose(amend(v1, (*v1.tasks, PlanTask("d", "Blog", MILLI)), payee.address),
                                  project.freelancer)
    payer.plans.take(pending.encode())
    on_a_proposal = amend(pending.plan, pending.plan.tasks[:3], payer.address)  # amends a version not in force
    with unchanged(payer, payee):
        with pytest.raises(AmendmentRefused, match="must amend version 2 in force"):
            payee.plans.propose(skipping, project.freelancer)
        with pytest.raises(AmendmentRefused, match="must amend version 2 in force"):
            payer.plans.propose(on_a_proposal, project.client)
        with pytest.raises(PlanMismatch, match="keeps the plan's parties"):
            payee.plans.propose(dataclasses.replace(amend(v1, v1.tasks, payee.address), token="0x" + "70" * 20),
                                project.freelancer)


# -- paying under the plan ------------------------------------------------------------------------------


def test_paying_an_unknown_task_twice_or_at_another_price_is_refused_unless_unplanned(project):
    payer, payee, channel = project.payer, project.payee, project.channel
    project.pay("a")
    with unchanged(payer, payee):
        with pytest.raises(TaskRefused, match="no task 'extra'"):
            payer.pay_task(channel, "extra")
        with pytest.raises(TaskRefused, match="needs an amount"):
            payer.pay_task(channel, "extra", unplanned=True)
        with pytest.raises(TaskRefused, match="already paid"):
            payer.pay_task(channel, "a")
        with pytest.raises(TaskRefused, match="priced 4000000000000000 in the plan, not 1000000000000000"):
            payer.pay_task(channel, "b", amount=MILLI)
        with pytest.raises(TaskRefused, match="priced 5000000000000000 in the plan, not 6000000000000000"):
            payer.pay_task(channel, "c", amount=6 * MILLI)
    # marked unplanned, each is paid; the freelancer stores every one and its progress shows how it differs
    project.pay("a", unplanned=True)
    project.pay("b", unplanned=True, amount=MILLI)
    project.pay("c", unplanned=True, amount=6 * MILLI)
    project.pay("extra", unplanned=True, amount=2 * MILLI, note="hosting")
    payee.receive(payer.pay(channel, 7, "tip").encode())  # not through the plan at all
    assert [(e.receipt.task_id, e.receipt.amount) for e in payee.ledger(channel)] == [
        ("a", 3 * MILLI), ("a", 3 * MILLI), ("b", MILLI), ("c", 6 * MILLI), ("extra", 2 * MILLI), ("tip", 7)]
    for progress in (payee.progress(channel), payer.progress(channel)):
        assert {t.task_id: (t.price, t.paid, t.deviation) for t in progress.tasks} == {
            "a": (3 * MILLI, 6 * MILLI, "paid twice"), "b": (4 * MILLI, MILLI, "below price"),
            "c": (5 * MILLI, 6 * MILLI, "above price"), "extra": (None, 2 * MILLI, "unplanned"),
            "tip": (None, 7, "unplanned")}
        assert progress.paid_total == 15 * MILLI + 7 and progress.paid_planned == 9 * MILLI  # each task up to its price
        assert progress.to_dict()["tasks"][0]["deviation"] == "paid twice"


# -- feedback ----------------------------------------------------------------------------------------------


def test_feedback_by_the_wrong_side_on_an_undelivered_task_or_an_unknown_plan_is_refused(project):
    payer, payee, root = project.payer, project.payee, project.root
    plan = project.agreed.plan
    delivered = payee.plans.give(project.freelancer, root, "a", "delivered", deliverable=b"\x11" * 32)
    payer.plans.take_feedback(delivered.encode())
    now = int(time.time())

    def signed(account: LocalAccount, task_id: str, status: str, **changes: object) -> SignedFeedback:
        feedback = Feedback(plan.chain_id, plan.escrow, root, task_id, status, now, **changes)  # type: ignore[arg-type]
        return SignedFeedback.sign(feedback, account)

    unknown = dataclasses.replace(signed(project.freelancer, "a", "delivered").feedback, plan=b"\x42" * 32)
    edited = json.loads(textform.unwrap(delivered.encode(), "mpf1", "feedback"))
    edited["feedback"]["deliverable"] = "0x" + "22" * 32
    other_payee = make_other_project(project)
    with unchanged(payer, payee):
        for side in (payer, payee):
            with pytest.raises(InvalidPlan, match="'delivered' feedback must be signed by the plan's payee"):
                side.plans.take_feedback(signed(project.client, "b", "delivered").encode())
            with pytest.raises(InvalidPlan, match="must be signed by the plan's payee"):
                side.plans.take_feedback(signed(STRANGER, "b", "delivered").to_json())
            with pytest.raises(InvalidPlan, match="'approved' feedback must be signed by the plan's payer"):
                side.plans.take_feedback(signed(project.freelancer, "a", "approved").encode())
            with pytest.raises(InvalidPlan, match="must be signed"):
                side.plans.take_feedback(textform.wrap("mpf1", json.dumps(edited).encode()))
            with pytest.raises(UnknownPlan):
                side.plans.take_feedback(SignedFeedback.sign(unknown, project.freelancer).encode())
            with pytest.raises(InvalidPlan, match="another chain or escrow"):
                side.plans.take_feedback(SignedFeedback.sign(
                    Feedback(plan.chain_id + 1, plan.escrow, root, "a", "delivered", now), project.freelancer))
        with pytest.raises(InvalidPlan, match="given by the plan's payee"):
            payer.plans.give(project.client, root, "b", "delivered")
        with pytest.raises(InvalidPlan, match="given by the plan's payer"):
            payee.plans.give(project.freelancer, root, "a", "changes requested")
        with pytest.raises(InvalidPlan, match="given by the plan's payee"):
            payee.plans.give(project.client, root, "b", "delivered")  # another key than the book's
        with pytest.raises(InvalidPlan, match="'b' has not been delivered"):
            payer.plans.give(project.client, root, "b", "changes requested", note="more colour")
        with pytest.raises(InvalidPlan, match="'b' has not been delivered"):
            payee.plans.take_feedback(signed(project.client, "b", "approved").encode())
        with pytest.raises(InvalidPlan, match="'a' has not been delivered"):  # a review dated before the delivery
            payee.plans.take_feedback(SignedFeedback.sign(Feedback(
                plan.chain_id, plan.escrow, root, "a", "approved", delivered.feedback.at - 60), project.client))
        with pytest.raises(InvalidPlan, match="'zzz' is not in the plan in force"):
            payee.plans.give(project.freelancer, root, "zzz", "delivered")
        with pytest.raises(UnknownPlan):
            payer.plans.give(project.client, b"\x42" * 32, "a", "approved")
        with pytest.raises(PlanNotInForce):
            payee.plans.give(project.freelancer, other_payee, "a", "delivered")
    review = payer.plans.give(project.client, root, "a", "changes requested", note="more colour")
    assert payee.plans.take_feedback(review.encode()) == review  # what is right is still taken


def make_other_project(project: Project) -> bytes:
    """A second project, only proposed: its root."""
    proposal = project.payee.plans.propose(plan_for(project.payer, project.payee, title="Later"), project.freelancer)
    project.payer.plans.take(proposal.encode())
    return proposal.hash


# -- a channel whose terms are no plan the payee signed ----------------------------------------------------


def test_a_channel_opened_under_terms_the_payee_never_signed_is_paid_and_flagged(clients, freelancer, make_payer,
                                                                                 payee):
    payer = make_payer(clients[0], "client")
    proposed = payer.plans.propose(plan_for(payer, payee, proposer=payer.address), clients[0])
    payee.plans.take(proposed.encode())  # the freelancer holds the proposal, unsigned by it
    for terms in (b"\x42" * 32, proposed.hash):
        record = payer.open_channel(freelancer.address, 10 * MILLI, terms=terms)
        first = payee.receive(payer.pay(record.id, MILLI, "a").encode())
        assert first.terms is not None and first.terms.kind == "unknown" and first.terms.terms == terms
        assert "not a plan you signed" in first.terms.describe()
        second = payee.receive(payer.pay(record.id, 2 * MILLI, "b").encode())
        assert second.terms is None  # said once, on the first payment
        assert [e.receipt.amount for e in payee.ledger(record.id)] == [MILLI, 2 * MILLI]  # every payment is kept
        assert payee.store.channel(payee.ref(record.id)).terms == terms
        with pytest.raises(UnknownPlan if terms != proposed.hash else PlanNotInForce):
            payee.progress(record.id)
    plain = payer.open_channel(freelancer.address, MILLI)
    received = payee.receive(payer.pay(plain.id, 5, "x").encode())
    assert received.terms is not None and received.terms.kind == "none"


def test_an_amendment_comes_into_force_on_both_sides_when_its_new_price_was_paid_first(project):
    payer, payee, v1 = project.payer, project.payee, project.agreed.plan
    proposal = payee.plans.propose(amend(v1, replaced(v1.tasks, "c", price=2 * MILLI), payee.address),
                                   project.freelancer)
    accepted = payer.plans.accept(proposal.encode(), project.client)
    project.pay("c")  # at the new price, before the acceptance reaches the freelancer
    payee.plans.take(accepted.encode())  # the freelancer signed it when nothing was paid on "c"
    for progress in (payer.progress(project.channel), payee.progress(project.channel)):
        assert progress.version == 2
        assert [(t.task_id, t.price, t.paid, t.deviation) for t in progress.tasks if t.paid] == [
            ("c", 2 * MILLI, 2 * MILLI, "")]


def test_a_proposal_taken_before_a_task_was_paid_cannot_re_price_it_after(project):
    payer, payee, v1 = project.payer, project.payee, project.agreed.plan
    proposal = payee.plans.propose(amend(v1, replaced(v1.tasks, "a", price=MILLI), payee.address), project.freelancer)
    payer.plans.take(proposal.encode())
    project.pay("a")
    with unchanged(payer, payee), pytest.raises(AmendmentRefused, match="task 'a' is paid: an amendment cannot "
                                                                        "re-price it"):
        payer.plans.accept(proposal.encode(), project.client)


def test_a_task_paid_on_one_channel_of_a_plan_is_refused_on_another(project):
    payer, payee = project.payer, project.payee
    project.pay("a")
    with unchanged(payer, payee), pytest.raises(PlanMismatch, match="already paid through channel"):
        payer.open_for_plan(project.root, deposit=10 * MILLI)
    second = payer.open_channel(payee.address, 10 * MILLI, terms=project.root)  # the library lets one insist
    with unchanged(payer, payee), pytest.raises(TaskRefused, match="already paid"):
        payer.pay_task(second.id, "a")


def test_a_payment_on_a_stranger_channel_naming_the_plan_does_not_freeze_its_tasks(clients, make_payer, project):
    payer, payee, v1 = project.payer, project.payee, project.agreed.plan
    stranger = make_payer(clients[1], "stranger")  # the plan's hash is public: it is every channel's terms event
    record = stranger.open_channel(payee.address, MILLI, terms=project.root)
    received = payee.receive(stranger.pay(record.id, 1, "b").encode())  # money is never refused
    assert received.terms is not None and received.terms.kind == "unknown"
    elsewhere = payer.open_channel(clients[2].address, MILLI, terms=project.root)
    payer.pay(elsewhere.id, 1, "c")
    proposal = payee.plans.propose(amend(v1, replaced(replaced(v1.tasks, "b", price=MILLI), "c", price=MILLI),
                                         payee.address), project.freelancer)
    accepted = payer.plans.accept(proposal.encode(), project.client)
    assert payee.plans.take(accepted.encode()).in_force
    assert payee.plans.in_force(project.root).version == 2 == payer.progress(project.channel).version
