"""Plans and feedback posted to a real `micropay serve` process, and a channel's progress read back
by its payer and its payee with signed requests; every other read is refused."""

from __future__ import annotations

import json
import shlex
import sys
import time

import pytest
from eth_account import Account
from inboxhelpers import open_channel

from micropay.feedback import Feedback, SignedFeedback
from micropay.plan import Plan, PlanTask
from micropay.planbook import PlanBook
from micropay.signed_request import TIMESTAMP_HEADER, sign_request

MILLI = 10**15


@pytest.fixture(scope="module")
def events(tmp_path_factory, backend):
    """The hook's file: one per server (the freelancer's store, so the server, is per backend)."""
    return tmp_path_factory.mktemp(f"hook-{backend}") / "events.jsonl"


@pytest.fixture(scope="module")
def server(freelancer, events):
    hook = f"{shlex.quote(sys.executable)} -c {shlex.quote(HOOK)} {shlex.quote(str(events))}"
    served = freelancer.serve("--on-payment", hook)
    yield served
    assert served.stop() == 0


HOOK = "import sys; open(sys.argv[1], 'a').write(sys.stdin.read().strip() + chr(10))"


@pytest.fixture(scope="module")
def project(server, make_client, freelancer):
    """A plan the client proposed through the inbox and the freelancer accepted, a channel opened
    under it, one task paid through the inbox and one delivered."""
    client = make_client("planner")
    escrow = freelancer.world.escrow
    plan = Plan("Brand refresh", client.address, freelancer.address, escrow.chain_id, escrow.address, "0x" + "00" * 20,
                (PlanTask("logo", "Logo", 5 * MILLI), PlanTask("cards", "Cards", 3 * MILLI)), client.address,
                int(time.time()))
    proposal = client.plans.propose(plan, client.account)
    posted = server.post("/v1/plans", {"document": proposal.encode()})
    assert posted.status_code == 200, posted.text
    assert posted.json() == {"stored": True, "kind": "plan", "hash": "0x" + plan.hash.hex(), "inForce": False}
    with freelancer.store() as store:
        book = PlanBook(store, freelancer.address, domain=(escrow.chain_id, escrow.address))
        accepted = book.accept(proposal.encode(), freelancer.account)
        client.plans.take(accepted)
        channel = client.open_for_plan(accepted.hash)
        assert server.pay(client.pay_task(channel.id, "logo").encode()).status_code == 200
    delivered = SignedFeedback.sign(Feedback(escrow.chain_id, escrow.address, accepted.hash, "cards", "delivered",
                                             int(time.time()), b"\x11" * 32, ""), freelancer.account)
    posted = server.post("/v1/feedback", {"document": delivered.encode()})
    assert posted.json() == {"stored": True, "kind": "feedback", "taskId": "cards", "status": "delivered"}
    return client, channel, accepted


_spread = iter(range(50))


def read(server, account, channel_id: bytes, **sign):
    # The same request signed twice in one second is the same signature: a replay. Spread them.
    sign.setdefault("now", time.time() - next(_spread))
    path = f"/v1/channels/0x{channel_id.hex()}/progress"
    headers = sign_request(account, "GET", path, **sign) if account is not None else {}
    return server.client.get(path, headers=headers), headers


def test_the_payer_reads_progress_and_documents_and_answers_with_feedback_the_payee_then_reads(
        server, project, freelancer):
    client, channel, accepted = project
    answer, _ = read(server, client.account, channel.id)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    progress = body["progress"]
    assert (progress["channel"], progress["plan"], progress["role"]) == (
        "0x" + channel.id.hex(), "0x" + accepted.hash.hex(), "payee")
    assert {t["task_id"]: t["state"] for t in progress["tasks"]} == {"logo": "paid", "cards": "delivered"}
    assert [d[:4] for d in body["documents"]] == ["mpl1", "mpf1"]
    for document in body["documents"]:  # the client takes them into its own store
        (client.plans.take if document.startswith("mpl1") else client.plans.take_feedback)(document)
    assert client.progress(channel.id).tasks[1].state == "delivered"

    review = client.plans.give(client.account, accepted.hash, "cards", "approved")
    posted = server.post("/v1/feedback", {"document": review.to_dict()})  # its JSON, not its text
    assert posted.json() == {"stored": True, "kind": "feedback", "taskId": "cards", "status": "approved"}
    as_payee, _ = read(server, freelancer.account, channel.id)
    assert as_payee.status_code == 200
    assert {t["task_id"]: t["state"] for t in as_payee.json()["progress"]["tasks"]}["cards"] == "approved"
    assert len(as_payee.json()["documents"]) == 3


def test_reads_without_a_valid_signature_by_a_party_are_refused(server, project, make_client, freelancer):
    client, channel, _ = project
    unsigned, _ = read(server, None, channel.id)
    assert (unsigned.status_code, unsigned.json()["error"]) == (401, "unauthorized")
    stranger, _ = read(server, Account.create(), channel.id)
    assert (stranger.status_code, stranger.json()["error"]) == (403, "forbidden")
    old, _ = read(server, client.account, channel.id, now=time.time() - 3600)
    assert (old.status_code, old.json()["error"]) == (401, "unauthorized")
    first, headers = read(server, client.account, channel.id)
    assert first.status_code == 200
    replayed = server.client.get(f"/v1/channels/0x{channel.id.hex()}/progress", headers=headers)
    assert (replayed.status_code, replayed.json()["error"]) == (401, "unauthorized")
    other = open_channel(make_client(), freelancer.address)  # signed for another path: altered
    _, signed_elsewhere = read(server, client.account, other.id)
    moved = server.client.get(f"/v1/channels/0x{channel.id.hex()}/progress", headers=signed_elsewhere)
    assert moved.status_code == 401
    signed = sign_request(client.account, "GET", f"/v1/channels/0x{channel.id.hex()}/progress")
    forged = {**signed, TIMESTAMP_HEADER: str(int(signed[TIMESTAMP_HEADER]) - 1)}  # a millisecond earlier than signed
    assert server.client.get(f"/v1/channels/0x{channel.id.hex()}/progress", headers=forged).status_code == 401
    unknown, _ = read(server, client.account, b"\x42" * 32)
    assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_channel")
    bad = server.client.get("/v1/channels/0x12/progress")
    assert (bad.status_code, bad.json()["error"]) == (404, "unknown_channel")


def test_a_channel_without_a_plan_has_no_progress_to_read(server, make_client, freelancer):
    client = make_client()
    channel = open_channel(client, freelancer.address)
    assert server.pay(client.pay(channel.id, MILLI, "x").encode()).status_code == 200
    answer, _ = read(server, client.account, channel.id)
    assert (answer.status_code, answer.json()["error"]) == (404, "unknown_plan")
    assert str(freelancer.home) not in answer.text  # the store's path is never shown, nor its URL
    assert freelancer.store_path not in answer.text


def test_documents_that_are_not_for_this_freelancer_or_not_documents_are_refused(server, make_client, freelancer):
    escrow = freelancer.world.escrow
    client = make_client()
    before = len(freelancer.store().plan_roots())
    strangers = Plan("Not yours", client.address, Account.create().address, escrow.chain_id, escrow.address,
                     "0x" + "00" * 20, (PlanTask("t", "T", MILLI),), client.address, int(time.time()))
    cases = [({"document": client.plans.propose(strangers, client.account).encode()}, 403, "plan_mismatch"),
             ({"document": "mpl1notaplan"}, 400, "invalid_plan"),
             ({"document": 7}, 400, "invalid_plan"),
             ({"document": {"micropay": "plan"}}, 400, "invalid_plan"),
             ({"plan": "x"}, 400, "invalid_plan")]
    for body, status, code in cases:
        answer = server.post("/v1/plans", body)
        assert (answer.status_code, answer.json()["error"]) == (status, code), answer.text
    feedback = server.post("/v1/feedback", {"document": "mpf1garbage"})
    assert (feedback.status_code, feedback.json()["error"]) == (400, "invalid_plan")
    assert len(freelancer.store().plan_roots()) == before


def test_the_hook_hears_of_each_plan_payment_and_delivery(server, project, events):
    client, channel, _ = project
    server.pay(client.pay(channel.id, MILLI, "unplanned extra").encode())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        heard = [json.loads(line) for line in events.read_text().splitlines()] if events.exists() else []
        if any(e["event"] == "payment" and e["tasks"][0]["taskId"] == "unplanned extra" for e in heard):
            break
        time.sleep(0.05)
    kinds = [e["event"] for e in heard]
    assert kinds[:3] == ["plan", "payment", "delivery"]
    extra = next(e for e in heard if e["event"] == "payment" and e["tasks"][0]["taskId"] == "unplanned extra")
    assert extra["text"] == f"+0.001 ETH from {client.address[:6]}…{client.address[-4:]} for 'unplanned extra'"
    assert extra["channelId"] == "0x" + channel.id.hex()


def test_a_channel_opened_under_a_plan_is_read_before_its_first_payment(server, make_client, freelancer):
    """The freelancer delivers before anything is paid: the inbox learns the channel from the chain."""
    client = make_client("early")
    escrow = freelancer.world.escrow
    plan = Plan("Early", client.address, freelancer.address, escrow.chain_id, escrow.address, "0x" + "00" * 20,
                (PlanTask("one", "One", 2 * MILLI),), client.address, int(time.time()))
    proposal = client.plans.propose(plan, client.account)
    assert server.post("/v1/plans", {"document": proposal.encode()}).status_code == 200
    with freelancer.store() as store:
        accepted = PlanBook(store, freelancer.address, domain=(escrow.chain_id, escrow.address)).accept(
            proposal.encode(), freelancer.account)
    client.plans.take(accepted)
    channel = client.open_for_plan(accepted.hash)  # nothing paid: the freelancer's store lacks the channel
    delivered = SignedFeedback.sign(Feedback(escrow.chain_id, escrow.address, accepted.hash, "one", "delivered",
                                             int(time.time()), b"\x12" * 32, ""), freelancer.account)
    assert server.post("/v1/feedback", {"document": delivered.encode()}).status_code == 200
    answer, _ = read(server, client.account, channel.id)
    assert answer.status_code == 200, answer.text
    assert delivered.encode() in answer.json()["documents"]
    assert [t["state"] for t in answer.json()["progress"]["tasks"]] == ["delivered"]
    stranger, _ = read(server, Account.create(), channel.id)  # known now: a stranger is still refused
    assert stranger.status_code == 403
    elsewhere = open_channel(client, make_client().address)  # opened to someone else: no such channel here
    refused, _ = read(server, client.account, elsewhere.id)
    assert (refused.status_code, refused.json()["error"]) == (404, "unknown_channel")
