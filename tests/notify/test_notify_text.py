"""What a notification says: amounts as people read them (ETH and a token), short addresses,
several tasks, documents, and someone else's text made harmless."""

from __future__ import annotations

import json

import pytest
from eth_account import Account
from web3 import Web3

from micropay.channel import ETH, ChannelKey
from micropay.errors import MicropayValueError
from micropay.feedback import Feedback, SignedFeedback
from micropay.ledger import TaskReceipt
from micropay.notifications import document_event, feedback_event, payment_event, plan_event
from micropay.plan import Plan, PlanTask, SignedPlan
from micropay.receiving import Received
from micropay.records import ChannelRecord
from micropay.units import format_amount

PAYER = Web3.to_checksum_address("0xabc1000000000000000000000000000000001234")
SHORT = f"{PAYER[:6]}…1234"
PAYEE = Web3.to_checksum_address("0x00000000000000000000000000000000000000fe")
USDC = Web3.to_checksum_address("0x1000000000000000000000000000000000000002")
ESCROW = Web3.to_checksum_address("0x2000000000000000000000000000000000000003")


def record(token: str) -> ChannelRecord:
    return ChannelRecord(ChannelKey(PAYER, PAYEE, token, 7), 1, ESCROW, "payee", 10**18, 0, 2**31, 86_400, False,
                         0.0)


def test_an_eth_payment_reads_as_an_amount_from_a_short_address_for_a_task():
    channel = record(ETH)
    received = Received(channel.id, channel.key.payer, 8 * 10**15, 5 * 10**15,
                        (TaskReceipt("logo draft 1", 5 * 10**15, note="first pass"),))
    event = payment_event(received, channel, lambda v: format_amount(v, 18, "ETH"))
    assert event.kind == "payment"
    assert event.text == f"+0.005 ETH from {SHORT} for 'logo draft 1'"
    assert event.data == {
        "channelId": "0x" + channel.id.hex(), "chainId": 1, "escrow": ESCROW, "payer": channel.key.payer,
        "payee": channel.key.payee, "token": ETH, "added": "5000000000000000", "cumulative": "8000000000000000",
        "amount": "0.005 ETH", "tasks": [{"taskId": "logo draft 1", "amount": "5000000000000000",
                                          "note": "first pass"}], "duplicate": False}
    assert json.loads(event.to_json()) == {"event": "payment", "text": event.text, **event.data}


@pytest.mark.parametrize(("tasks", "phrase"), [
    (["a", "b"], "for 'a' and 'b'"),
    (["a", "b", "c"], "for 'a', 'b' and 1 more"),
    (["a", "b", "c", "d", "e"], "for 'a', 'b' and 3 more"),
])
def test_a_token_payment_for_several_tasks(tasks, phrase):
    channel = record(USDC)
    receipts = tuple(TaskReceipt(t, 2_500_000) for t in tasks)
    added = 2_500_000 * len(tasks)
    received = Received(channel.id, channel.key.payer, added, added, receipts)
    event = payment_event(received, channel, lambda v: format_amount(v, 6, "USDC"))
    assert event.text == f"+{format_amount(added, 6, 'USDC')} from {SHORT} {phrase}"
    assert [t["taskId"] for t in event.data["tasks"]] == tasks
    assert event.data["token"] == USDC and event.data["added"] == str(added)


def test_someone_elses_text_cannot_break_a_line_or_a_terminal():
    channel = record(ETH)
    nasty = "logo\n\x1b[31mPAID 100 ETH\x1b[0m\u202e" + "x" * 200
    received = Received(channel.id, channel.key.payer, 1, 1, (TaskReceipt(nasty, 1),))
    event = payment_event(received, channel, lambda v: format_amount(v, 18, "ETH"))
    assert event.text.isprintable() and "\x1b" not in event.text and "\n" not in event.text
    assert len(event.text) < 120 and event.text.endswith("…'")
    assert event.data["tasks"][0]["taskId"] == nasty  # the data keeps the exact text, JSON-escaped
    assert "\\u001b" in event.to_json() and "\n" not in event.to_json()


def plan(payer, payee, version: int = 1) -> Plan:
    return Plan("Website", payer.address, payee.address, 1, ESCROW, ETH,
                (PlanTask("logo", "Logo", 5 * 10**15), PlanTask("site", "Site", 45 * 10**15)),
                proposer=payee.address, proposed_at=1_700_000_000, inbox="https://pay.example/inbox")


def test_plan_and_feedback_events_name_their_author_and_task():
    client, freelancer = Account.create(), Account.create()
    proposal = SignedPlan(plan(client, freelancer)).signed_by(freelancer)
    show = lambda v: format_amount(v, 18, "ETH")  # noqa: E731
    event = plan_event(proposal, show)
    proposer = f"{freelancer.address[:6]}…{freelancer.address[-4:]}"
    assert (event.kind, event.text) == ("plan", f"{proposer} proposed 'Website': 2 tasks, 0.05 ETH")
    assert event.data["planHash"] == "0x" + proposal.hash.hex() and event.data["inForce"] is False
    agreed = plan_event(proposal.signed_by(client), show)
    assert agreed.text == "'Website' is agreed: 2 tasks, 0.05 ETH" and agreed.data["inForce"] is True

    approval = SignedFeedback.sign(Feedback(1, ESCROW, proposal.hash, "logo", "approved", 1_700_000_100), client)
    event = feedback_event(approval, proposal.plan)
    assert (event.kind, event.text) == ("feedback", f"{client.address[:6]}…{client.address[-4:]}: approved 'logo'")
    assert event.data["author"] == client.address and event.data["status"] == "approved"
    changes = SignedFeedback.sign(Feedback(1, ESCROW, proposal.hash, "logo", "changes requested", 1, note="bolder"),
                                  client)
    assert feedback_event(changes).text == "asked for changes to 'logo': 'bolder'"
    delivery = SignedFeedback.sign(Feedback(1, ESCROW, proposal.hash, "logo", "delivered", 1), freelancer)
    assert feedback_event(delivery, proposal.plan).kind == "delivery"


def test_document_event_takes_only_document_kinds():
    event = document_event("delivery", "0xAbC1…1234: delivered 'logo'\n", {"taskId": "logo"})
    assert (event.kind, event.text, event.data) == ("delivery", "0xAbC1…1234: delivered 'logo'\ufffd",
                                                    {"taskId": "logo"})
    with pytest.raises(MicropayValueError):
        document_event("payment", "x", {})
