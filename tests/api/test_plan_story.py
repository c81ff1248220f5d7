"""The whole story under a plan, through the library, reconciled to the wei: propose five tasks,
accept, open with the plan as terms, pay three, request changes on one, amend (add a task,
re-price an unpaid one), pay the rest, settle, and check progress on both sides."""

from __future__ import annotations

import time

from micropay import Payee, Payer
from micropay.plan import Plan, PlanTask, SignedPlan

MILLI = 10**15
TASKS = (("logo", "Logo draft", 5), ("palette", "Colour palette", 3), ("cards", "Business cards", 6),
         ("site", "Landing page", 7), ("final", "Final files", 4))


def first_plan(payer: Payer, payee: Payee) -> Plan:
    return Plan("Brand refresh", payer.address, payee.address, payee.escrow.chain_id, payee.escrow.address,
                "0x" + "00" * 20, tuple(PlanTask(i, t, p * MILLI, int(time.time()) + 86_400 * 7) for i, t, p in TASKS),
                payee.address, int(time.time()))


def test_the_whole_story_under_a_plan(lib_escrow, clients, freelancer, make_payer, payee):
    payer = make_payer(clients[0], "story-client")
    proposal = payee.plans.propose(first_plan(payer, payee), freelancer)
    assert not proposal.in_force
    accepted = payer.plans.accept(proposal.encode(), clients[0])  # travels as mpl1 text
    assert accepted.in_force
    assert payee.plans.take(accepted.to_json()).in_force  # and back as a JSON file

    record = payer.open_for_plan(accepted.hash)
    assert record.deposit == 25 * MILLI and record.terms == accepted.hash
    assert lib_escrow.terms(record.id) == accepted.hash

    first = payee.receive(payer.pay_task(record.id, "logo").encode())
    assert first.terms is not None and first.terms.kind == "plan" and first.terms.title == "Brand refresh"
    for task in ("palette", "cards"):
        received = payee.receive(payer.pay_task(record.id, task))
        assert received.terms is None and received.tasks[0].task_id == task

    payee.plans.give(freelancer, accepted.hash, "site", "delivered", deliverable=b"\x11" * 32)
    delivered = payee.store.feedback(accepted.hash)[-1].signed
    payer.plans.take_feedback(delivered.encode())
    review = payer.plans.give(clients[0], accepted.hash, "site", "changes requested", note="bigger hero image")
    payee.plans.take_feedback(review.to_json())
    assert payee.progress(record.id).tasks[3].state == "changes requested"
    assert payer.progress(record.id).waiting_for_payee == ("site", "final")

    v1 = accepted.plan
    tasks = list(v1.tasks)
    tasks[4] = PlanTask("final", "Final files", 5 * MILLI, tasks[4].due)  # re-price an unpaid task
    tasks.append(PlanTask("social", "Social media kit", 2 * MILLI))
    amendment = Plan(v1.title, v1.payer, v1.payee, v1.chain_id, v1.escrow, v1.token, tuple(tasks), payer.address,
                     int(time.time()), version=2, amends=v1.hash)
    proposed = payer.plans.propose(amendment, clients[0])
    payee.plans.accept(proposed.encode(), freelancer)
    payer.plans.take(payee.store.plan(amendment.hash).signed)

    payer.top_up(record.id, 3 * MILLI)
    payee.plans.give(freelancer, accepted.hash, "site", "delivered", deliverable=b"\x22" * 32)
    payer.plans.take_feedback(payee.store.feedback(accepted.hash)[-1].signed)
    for task in ("site", "final", "social"):
        payee.receive(payer.pay_task(record.id, task))
    assert payee.ledger(record.id)[3].receipt.deliverable == b"\x22" * 32  # the payment names the delivery

    both = payer.progress(record.id), payee.progress(record.id)
    for progress in both:
        assert progress.version == 2
        assert progress.planned_total == progress.paid_total == 28 * MILLI
        assert {t.state for t in progress.tasks} == {"paid"}
        assert progress.coverage.remaining == 0 and progress.coverage.top_up == 0
        assert [(a.version, a.proposed_by, a.total_before, a.total_after) for a in progress.amendments] == [
            (1, "payee", 0, 25 * MILLI), (2, "payer", 25 * MILLI, 28 * MILLI)]
        assert [(c.kind, c.task_id) for c in progress.amendments[1].changes] == [("re-priced", "final"),
                                                                                 ("added", "social")]
    before = lib_escrow.balance(freelancer.address)
    settlement = payee.settle()
    assert settlement.gross == 28 * MILLI
    assert lib_escrow.balance(freelancer.address) == before + 28 * MILLI - settlement.fee
    payee.store.update_chain_state(payee.store.channel(record.ref).updated(lib_escrow.channel(record.key),
                                                                          time.time()))
    assert {t.state for t in payee.progress(record.id).tasks} == {"settled"}
    assert isinstance(accepted, SignedPlan)
