"""Both sides amend at once: neither side can then countersign the other's version while its own
is pending, so two versions can never be in force; one withdraws and accepts the other's."""

from __future__ import annotations

import time

import pytest

from micropay.errors import AmendmentRefused, InvalidPlan
from micropay.plan import Plan, PlanTask

MILLI = 10**15


def amended(v1: Plan, proposer: str, extra: str) -> Plan:
    return Plan(v1.title, v1.payer, v1.payee, v1.chain_id, v1.escrow, v1.token,
                (*v1.tasks, PlanTask(extra, extra.title(), MILLI)), proposer, int(time.time()), 2, v1.hash)


def test_rival_amendments_cannot_both_come_into_force(clients, freelancer, make_payer, payee):
    payer = make_payer(clients[0], "race-client")
    v1 = Plan("Race", payer.address, payee.address, payee.escrow.chain_id, payee.escrow.address, "0x" + "00" * 20,
              (PlanTask("a", "A", MILLI),), payee.address, int(time.time()))
    agreed = payer.plans.accept(payee.plans.propose(v1, freelancer), clients[0])
    payee.plans.take(agreed)
    theirs = payee.plans.propose(amended(v1, payee.address, "x"), freelancer)
    mine = payer.plans.propose(amended(v1, payer.address, "y"), clients[0])
    payer.plans.take(theirs)
    payee.plans.take(mine)
    with pytest.raises(AmendmentRefused, match="both sides amended at once"):
        payer.plans.accept(theirs, clients[0])
    with pytest.raises(AmendmentRefused, match="both sides amended at once"):
        payee.plans.accept(mine, freelancer)
    assert payer.plans.in_force(agreed.hash).version == payee.plans.in_force(agreed.hash).version == 1

    with pytest.raises(InvalidPlan, match="only your own proposal"):
        payer.plans.withdraw(theirs.hash)
    payer.plans.withdraw(mine.hash)
    accepted = payer.plans.accept(theirs, clients[0])
    payee.plans.take(accepted)
    for side in (payer, payee):
        current = side.plans.in_force(agreed.hash)
        assert current.version == 2 and current.task("x") is not None and current.task("y") is None
    # the withdrawn rival can no longer come into force on either side
    with pytest.raises(AmendmentRefused):
        payee.plans.take(mine.signed_by(freelancer))


def test_a_document_received_again_is_held_once(clients, freelancer, make_payer, payee):
    payer = make_payer(clients[0], "again-client")
    v1 = Plan("Again", payer.address, payee.address, payee.escrow.chain_id, payee.escrow.address, "0x" + "00" * 20,
              (PlanTask("a", "A", MILLI),), payee.address, int(time.time()))
    agreed = payer.plans.accept(payee.plans.propose(v1, freelancer), clients[0])
    assert payee.plans.take(agreed).in_force
    before = payee.store.plans(agreed.hash)
    assert payee.plans.take(agreed.encode()) == agreed
    assert payee.store.plans(agreed.hash) == before
