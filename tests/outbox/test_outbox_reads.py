"""The inbox client's other requests against the project's inbox: a plan posted as a document, a
channel opened under it whose payments go to the plan's inbox by themselves, and its progress
read with a signed request (refused to a stranger's signature)."""

from __future__ import annotations

import time

import pytest
from eth_account import Account

from micropay.errors import InvalidPlan, RequestRejected, Unauthorized
from micropay.inbox_client import InboxClient
from micropay.plan import Plan, PlanTask

MILLI = 10**15


def test_a_plan_with_an_inbox_its_channel_its_payments_and_their_progress(payer, payee, inbox, client_key,
                                                                          freelancer_key):
    plan = Plan("Logo", payer.address, payee.address, payee.escrow.chain_id, payee.escrow.address, "0x" + "00" * 20,
                (PlanTask("logo", "Logo draft", 5 * MILLI), PlanTask("cards", "Cards", 3 * MILLI)), payee.address,
                int(time.time()), inbox=inbox.url)
    proposal = payee.plans.propose(plan, freelancer_key)
    accepted = payer.plans.accept(proposal.encode(), client_key)
    with InboxClient(inbox.url) as client:
        answer = client.post_document(accepted.encode())
        assert (answer["stored"], answer["kind"], answer["inForce"]) == (True, "plan", True)
        with pytest.raises(InvalidPlan):
            client.post_document("not a document")  # refused here, nothing sent

        record = payer.open_for_plan(accepted.hash)
        assert payer.store.inbox(record.ref) == inbox.url  # from the plan
        payer.pay_task(record.id, "logo")
        assert payer.outbox.record(record.ref, 5 * MILLI).state == "held"

        read = client.progress(record.id, client_key)
        assert read.progress["paid_total"] == str(5 * MILLI) and accepted.encode() in read.documents
        with pytest.raises(Unauthorized, match="HTTP 403, forbidden"):
            client.progress(record.id, Account.create())
        with pytest.raises(RequestRejected, match="HTTP 404") as refused:
            client.progress(b"\x07" * 32, client_key)
        assert refused.value.status == 404
