"""Payments posted to a real `micropay serve` process: held with an acknowledgment that verifies,
retries answered alike, gaps and stale vouchers answered machine-readably, and everything forged,
foreign, oversized, deep, garbage or slow refused with a 4xx that changes nothing in the store."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest
from eth_account import Account
from inboxhelpers import PASSWORD, open_channel

from micropay.acknowledgment import Acknowledgment
from micropay.payment import Payment
from micropay.voucher import sign_voucher

MILLI = 10**15


@pytest.fixture(scope="module")
def server(freelancer):
    served = freelancer.serve("--read-timeout", "1")
    yield served
    assert served.stop() == 0


@pytest.fixture(scope="module")
def client(make_client):
    return make_client()


def snapshot(freelancer) -> list[tuple[object, ...]]:
    """Everything a payment could change in the freelancer's store, read from this process."""
    with freelancer.store() as store:
        return [(r.id, r.role, store.best_voucher(r.ref), [e.receipt for e in store.ledger(r.ref)])
                for r in store.channels()]


def verified(body: dict, freelancer, channel_id: bytes) -> Acknowledgment:
    ack = Acknowledgment.from_dict(body["acknowledgment"])
    ack.verify(freelancer.address, chain_id=freelancer.world.escrow.chain_id,
               escrow=freelancer.world.escrow.address, channel_id=channel_id)
    return ack


def test_a_payment_posted_is_held_and_its_acknowledgment_verifies(server, client, freelancer):
    channel = open_channel(client, freelancer.address)
    payment = client.pay(channel.id, 3 * MILLI, "logo draft 1")
    answer = server.pay(payment.encode())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["held"], body["duplicate"], body["channelId"]) == (True, False, "0x" + channel.id.hex())
    assert (body["cumulativeAmount"], body["added"]) == (str(3 * MILLI), str(3 * MILLI))
    assert body["tasks"] == [{"taskId": "logo draft 1", "amount": str(3 * MILLI), "note": ""}]
    ack = verified(body, freelancer, channel.id)
    assert (ack.amount, ack.ledger_root) == (3 * MILLI, payment.voucher.ledger_root)
    with freelancer.store() as store:  # held in the freelancer's own store, with nothing typed by hand
        best, count = store.best_voucher(channel.ref)
        assert (best.amount, best.ledger_root, best.signature, count) == (
            3 * MILLI, payment.voucher.ledger_root, payment.voucher.signature, 1)

    again = server.pay(payment.encode())  # a retry: the same answer, nothing stored twice
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["acknowledgment"] == body["acknowledgment"]
    assert next(row for row in snapshot(freelancer) if row[0] == channel.id)[3] == [payment.receipts[0]]
    assert PASSWORD not in server.err.read_text()
    assert freelancer.account.key.hex()[2:] not in server.out.read_text() + server.err.read_text()


def test_a_gap_is_answered_with_the_index_to_resend_from_and_a_stale_voucher_with_what_is_held(
        server, client, freelancer):
    channel = open_channel(client, freelancer.address)
    first, lost, third = (client.pay(channel.id, MILLI, f"task {n}") for n in range(3))
    assert server.pay(first.encode()).status_code == 200
    gap = server.pay(third.encode())
    assert gap.status_code == 409 and gap.json()["error"] == "ledger_gap" and gap.json()["resendFrom"] == 1
    assert gap.json()["message"]
    resent = client.resend(channel.id, since=gap.json()["resendFrom"])
    held = server.pay(resent.encode())
    assert held.status_code == 200 and held.json()["cumulativeAmount"] == str(3 * MILLI)
    assert [t["taskId"] for t in held.json()["tasks"]] == ["task 1", "task 2"]

    stale = server.pay(lost.encode())
    assert stale.status_code == 409 and stale.json()["error"] == "stale_voucher"
    ack = verified(stale.json(), freelancer, channel.id)
    assert (ack.amount, ack.ledger_root) == (3 * MILLI, third.voucher.ledger_root)


def _resigned(payment: Payment, key, **changes) -> Payment:
    v = payment.voucher
    fields = {"chain_id": v.chain_id, "escrow": v.escrow, "channel_id": v.channel_id, "amount": v.amount,
              "ledger_root": v.ledger_root, **changes}
    return Payment.of(sign_voucher(key, **fields), payment.receipts, payment.first_index)


def _deep(depth: int) -> bytes:
    return b'{"payment": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.fixture(scope="module")
def hostile(server, client, make_client, freelancer):
    """One channel of ours (holding a payment) and one of another freelancer's, and their payments."""
    ours = open_channel(client, freelancer.address)
    assert server.pay(client.pay(ours.id, MILLI, "held").encode()).status_code == 200
    nxt = client.pay(ours.id, MILLI, "next")
    foreign_payer = make_client("foreign")
    foreign = open_channel(foreign_payer, Account.create().address)  # another freelancer's channel
    return {"next": nxt, "stranger": Account.create(), "foreign": foreign_payer.pay(foreign.id, MILLI, "x")}


CASES = {
    "forged signature": (400, "invalid_signature", lambda h: json.dumps(
        {"payment": _resigned(h["next"], h["stranger"]).encode()}).encode()),
    "another payee's channel": (403, "not_participant", lambda h: json.dumps(
        {"payment": h["foreign"].encode()}).encode()),
    "another escrow": (400, "domain_mismatch", lambda h: json.dumps(
        {"payment": _resigned(h["next"], h["stranger"], escrow="0x" + "11" * 20).encode()}).encode()),
    "another chain": (400, "domain_mismatch", lambda h: json.dumps(
        {"payment": _resigned(h["next"], h["stranger"], chain_id=1).encode()}).encode()),
    "oversized": (413, "payload_too_large", lambda h: json.dumps({"payment": "mpp1" + "a" * 200_000}).encode()),
    "deep JSON": (400, "too_deep", lambda h: _deep(5000)),
    "garbage bytes": (400, "invalid_payment", lambda h: os.urandom(3000)),
    "not JSON": (400, "invalid_payment", lambda h: b"payment=" + h["next"].encode().encode()),
    "no payment field": (400, "invalid_payment", lambda h: b'{"pay": "x"}'),
    "a payment that is no text": (400, "invalid_payment", lambda h: b'{"payment": 12}'),
    "tampered text": (400, "invalid_payment", lambda h: json.dumps(
        {"payment": h["next"].encode()[:-3] + "qqq"}).encode()),
}


@pytest.mark.parametrize("case", CASES)
def test_hostile_payments_get_a_4xx_and_change_nothing(server, hostile, freelancer, case):
    status, code, body = CASES[case]
    before = snapshot(freelancer)
    for _ in range(2):  # the second time too (a cached verdict answers alike)
        answer = server.post("/v1/payments", content=body(hostile))
        assert (answer.status_code, answer.json()["error"]) == (status, code), answer.text
        assert set(answer.json()) >= {"error", "message"} and "Traceback" not in answer.text
    assert snapshot(freelancer) == before


def test_a_streamed_body_is_cut_at_the_limit_and_a_slow_one_times_out(server, freelancer):
    before = snapshot(freelancer)
    chunks = (b"x" * 8192 for _ in range(64))  # no Content-Length: chunked, counted as it streams
    answer = server.client.post("/v1/payments", content=chunks)
    assert (answer.status_code, answer.json()["error"]) == (413, "payload_too_large")
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /v1/payments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"payment\"")
        started = time.monotonic()
        reply = b""
        while b'"}' not in reply and (chunk := sock.recv(4096)):
            reply += chunk
        reply = reply.decode()
    assert reply.startswith("HTTP/1.1 408") and '"error":"timeout"' in reply
    assert time.monotonic() - started < 9  # answered at the read timeout, not at the socket's
    assert snapshot(freelancer) == before


def test_unknown_paths_and_methods_answer_in_the_error_shape_and_the_schema_is_published(server):
    missing = server.client.get("/v1/nothing-here")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    wrong = server.client.get("/v1/payments")
    assert (wrong.status_code, wrong.json()["error"]) == (405, "method_not_allowed")
    assert server.client.get("/docs").status_code == 404  # no docs UI: it would load a CDN
    schema = server.client.get("/v1/openapi.json").json()
    assert set(schema["paths"]) == {"/v1/payments", "/v1/plans", "/v1/feedback",
                                    "/v1/channels/{channel_id}/progress"}
    assert "requestBody" in schema["paths"]["/v1/payments"]["post"]


def test_a_channel_posting_too_fast_is_told_when_to_retry(server, client, freelancer):
    channel = open_channel(client, freelancer.address)
    text = client.pay(channel.id, MILLI, "spam").encode()
    answers = [server.pay(text) for _ in range(150)]  # the default burst per channel is 50, refilled at 10/s
    limited = [a for a in answers if a.status_code == 429]
    assert limited and all(a.status_code == 200 for a in answers[:50])
    assert limited[0].json()["error"] == "rate_limited" and limited[0].json()["retryAfter"] > 0
    assert int(limited[0].headers["Retry-After"]) >= 1
    other = open_channel(client, freelancer.address)  # another channel is not held up
    assert server.pay(client.pay(other.id, MILLI, "fine").encode()).status_code == 200
