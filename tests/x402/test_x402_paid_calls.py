"""Paid calls through a real `micropay serve --paywall` process, with clients in this process: what
is paid, charged and settled adds up to the wei, failed calls are not charged, and every refusal
is a 402 that says why."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from x402 import PaymentRequired, x402Client
from x402.http import PAYMENT_REQUIRED_HEADER, PAYMENT_RESPONSE_HEADER, decode_payment_required_header, x402HTTPClient
from x402.http.clients.httpx import PaymentError

from micropay import Payee
from micropay.voucher import sign_voucher
from micropay.x402 import SpendingCapReached, SpendingCaps, paying_client
from micropay.x402.client import MicropayChannelScheme
from micropay.x402.scheme import SCHEME, X402_TERMS, ChargeState, network_of
from micropay.x402.transport import PayingTransport

PRICE = 10**15  # GET /v1/joke: 0.001 ETH (the paywall fixture's prices, in conftest.py)
CAPS = SpendingCaps(deposit=10**18, max_spend=10**19, max_price=10**16)


def calls(payer, url, paths, caps=CAPS):
    """GET each path in turn through a paying client; the answers."""
    async def run():
        async with paying_client(payer, caps, base_url=url, timeout=60) as http:
            return [await http.get(path) for path in paths]
    return asyncio.run(run())


def required(url, path="/v1/joke") -> PaymentRequired:
    answer = httpx.get(url + path)
    assert answer.status_code == 402
    found = decode_payment_required_header(answer.headers[PAYMENT_REQUIRED_HEADER])
    assert isinstance(found, PaymentRequired)
    return found


def header_for(payer, payment_required, caps=CAPS) -> dict[str, str]:
    """The PAYMENT-SIGNATURE header a micropay client would send for one call."""
    client = x402Client()
    client.register(network_of(payer.escrow.chain_id), MicropayChannelScheme(payer, caps))
    client.set_spend_controls(False)
    payload = asyncio.run(client.create_payment_payload(payment_required))
    return x402HTTPClient(client).encode_payment_signature_header(payload)


def refusal(answer: httpx.Response) -> tuple[str, dict]:
    """A 402's error code and our requirement's extra."""
    assert answer.status_code == 402, answer.text
    found = decode_payment_required_header(answer.headers[PAYMENT_REQUIRED_HEADER])
    (ours,) = [r for r in found.accepts if r.scheme == SCHEME]
    return found.error or "", ours.extra


def freelancer_side(seller, world) -> Payee:
    return Payee(world.escrow, seller.account, seller.store_path)


def test_a_hundred_paid_calls_settle_for_a_hundred_times_the_price_and_the_ledger_lists_them(
        paywall, upstream, seller, buyer, x402_world):
    payer = buyer("hundred")
    before = upstream.calls.get("joke", 0)
    answers = calls(payer, paywall.url, ["/v1/joke"] * 100)
    assert [a.status_code for a in answers] == [200] * 100
    assert upstream.calls["joke"] - before == 100
    settled = json.loads(base64.b64decode(answers[-1].headers[PAYMENT_RESPONSE_HEADER]))
    assert settled["success"] is True and settled["extra"]["charged"] == str(100 * PRICE)
    (channel,) = payer.store.channels("payer")
    payee = freelancer_side(seller, x402_world)
    assert payee.store.charged(channel.ref) == (100 * PRICE, 100)
    assert [e.receipt.task_id for e in payee.ledger(channel.id)] == ["GET /v1/joke"] * 100
    assert len({e.receipt.deliverable for e in payee.ledger(channel.id)}) == 1  # the same request each time
    settlement = payee.settle(payee.plan_settlement(only={channel.id}))
    assert settlement.gross == 100 * PRICE
    assert x402_world.escrow.channel(channel.key).claimed == 100 * PRICE


def test_one_round_trip_per_call_once_the_route_is_known(paywall, buyer):
    payer = buyer("round-trips")
    sent: list[bool] = []

    class Counting(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            sent.append("payment-signature" in request.headers)
            return await super().handle_async_request(request)

    async def run():
        client = x402Client()
        scheme = MicropayChannelScheme(payer, CAPS)
        client.register(network_of(payer.escrow.chain_id), scheme)
        client.set_spend_controls(False)
        async with httpx.AsyncClient(transport=PayingTransport(client, scheme, Counting()),
                                     base_url=paywall.url) as http:
            for _ in range(3):
                assert (await http.get("/v1/joke")).status_code == 200
    asyncio.run(run())
    assert sent == [False, True, True, True]  # the first call learns the price; then one request per call


def test_a_client_killed_mid_run_pays_on_after_a_restart_without_paying_twice(paywall, upstream, seller, buyer,
                                                                              x402_world):
    payer = buyer("crashing")
    key, store = payer.account.key.hex(), payer.store.location  # a path, or a URL (no password here)
    argv = [sys.executable, str(Path(__file__).with_name("agent_worker.py")), x402_world.anvil.url,
            x402_world.escrow.address, key, store, paywall.url]
    before = upstream.calls.get("joke", 0)
    worker = subprocess.Popen([*argv, "1000"], stdout=subprocess.PIPE, text=True)
    for _ in range(25):  # 25 calls answered, then kill -9 somewhere in the middle of the next ones
        assert worker.stdout.readline().strip() == "200"
    worker.send_signal(signal.SIGKILL)
    worker.wait(30)
    again = subprocess.run([*argv, "5"], capture_output=True, text=True, timeout=120, check=True)
    assert again.stdout.split() == ["200"] * 5
    served = upstream.calls["joke"] - before
    (channel,) = payer.store.channels("payer")
    payee = freelancer_side(seller, x402_world)
    assert payee.store.charged(channel.ref) == (served * PRICE, served)  # each call that ran was charged once
    signed = payer.store.best_voucher(channel.ref)[0].amount
    assert signed == payee.store.best_voucher(channel.ref)[0].amount == served * PRICE  # nothing signed twice


def test_a_failed_handler_is_not_charged_and_the_next_voucher_leaves_it_out(paywall, upstream, seller, buyer,
                                                                            x402_world):
    payer = buyer("failing")
    assert [a.status_code for a in calls(payer, paywall.url, ["/v1/joke", "/v1/fail"])] == [200, 500]
    (channel,) = payer.store.channels("payer")
    payee = freelancer_side(seller, x402_world)
    assert payee.store.charged(channel.ref) == (PRICE, 1)  # the failed call charged nothing
    assert payer.store.best_voucher(channel.ref)[0].amount == 2 * PRICE  # signed for it, not taken
    assert [a.status_code for a in calls(payer, paywall.url, ["/v1/joke"])] == [200]
    # The next call is paid by the voucher the failed one left: its cumulative amount leaves the failure out.
    assert payer.store.best_voucher(channel.ref)[0].amount == 2 * PRICE
    assert payee.store.charged(channel.ref) == (2 * PRICE, 2)
    assert payee.store.best_voucher(channel.ref)[0].amount == 2 * PRICE


def test_concurrent_calls_on_one_channel_are_all_paid_once(paywall, seller, buyer, x402_world):
    payer = buyer("concurrent")

    async def run():
        async with paying_client(payer, CAPS, base_url=paywall.url, timeout=60) as http:
            assert (await http.get("/v1/joke")).status_code == 200  # learns the route
            return await asyncio.gather(*(http.get("/v1/joke") for _ in range(16)))
    answers = asyncio.run(run())
    assert [a.status_code for a in answers] == [200] * 16
    (channel,) = payer.store.channels("payer")
    assert freelancer_side(seller, x402_world).store.charged(channel.ref) == (17 * PRICE, 17)
    assert payer.store.best_voucher(channel.ref)[0].amount == 17 * PRICE


def test_several_clients_at_once_each_pay_for_their_own_calls(paywall, seller, buyer, x402_world):
    payers = [buyer(f"many-{i}") for i in range(4)]

    async def one(payer):
        async with paying_client(payer, CAPS, base_url=paywall.url, timeout=60) as http:
            return [(await http.get("/v1/joke")).status_code for _ in range(10)]

    async def run():
        return await asyncio.gather(*(one(p) for p in payers))
    assert asyncio.run(run()) == [[200] * 10] * 4
    payee = freelancer_side(seller, x402_world)
    for payer in payers:
        (channel,) = payer.store.channels("payer")
        assert payee.store.charged(channel.ref) == (10 * PRICE, 10)


def test_a_replayed_payment_signature_is_refused(paywall, upstream, buyer):
    payer = buyer("replay")
    header = header_for(payer, required(paywall.url))
    assert httpx.get(paywall.url + "/v1/joke", headers=header).status_code == 200
    before = upstream.calls["joke"]
    code, extra = refusal(httpx.get(paywall.url + "/v1/joke", headers=header))
    assert code == "micropay_underpaid" and "short of" in extra["reason"]
    assert ChargeState.from_extra(extra).charged == PRICE  # what the payee holds: the client can resync
    assert upstream.calls["joke"] == before  # the handler never ran


def test_a_voucher_above_the_deposit_is_refused_with_the_reason(paywall, buyer, x402_world):
    payer = buyer("deposit")
    channel = payer.open_channel(paywall_payee(paywall), PRICE // 2, terms=X402_TERMS)
    voucher = sign_voucher(payer.account, chain_id=channel.chain_id, escrow=channel.escrow, channel_id=channel.id,
                           amount=PRICE, ledger_root=b"\x00" * 32)
    code, extra = refusal(send_bare(paywall, voucher))
    assert code == "micropay_insufficient_deposit" and "deposit" in extra["reason"]


def test_a_channel_to_another_payee_is_refused_with_the_reason(paywall, buyer, x402_world):
    payer = buyer("elsewhere")
    channel = payer.open_channel(x402_world.fund().address, 10**17)
    voucher = sign_voucher(payer.account, chain_id=channel.chain_id, escrow=channel.escrow, channel_id=channel.id,
                           amount=PRICE, ledger_root=b"\x00" * 32)
    code, extra = refusal(send_bare(paywall, voucher))
    assert code == "micropay_not_participant" and "pays" in extra["reason"]


def test_a_voucher_for_another_network_is_refused_with_the_reason(paywall, buyer):
    payer = buyer("network")
    channel = payer.open_channel(paywall_payee(paywall), 10**17, terms=X402_TERMS)
    voucher = sign_voucher(payer.account, chain_id=channel.chain_id + 1, escrow=channel.escrow,
                           channel_id=channel.id, amount=PRICE, ledger_root=b"\x00" * 32)
    code, extra = refusal(send_bare(paywall, voucher))
    assert code == "micropay_domain_mismatch" and "chain" in extra["reason"]


def test_a_channel_near_its_expiry_is_refused_with_the_reason(paywall, buyer):
    from datetime import timedelta
    payer = buyer("expiring")
    channel = payer.open_channel(paywall_payee(paywall), 10**17, expires_in=timedelta(minutes=30),
                                terms=X402_TERMS)
    voucher = sign_voucher(payer.account, chain_id=channel.chain_id, escrow=channel.escrow, channel_id=channel.id,
                           amount=PRICE, ledger_root=b"\x00" * 32)
    code, extra = refusal(send_bare(paywall, voucher))
    assert code == "micropay_channel_expired" and "safety margin" in extra["reason"]
    # The paying client never picks such a channel: it opens one that meets the payee's terms.
    assert [a.status_code for a in calls(payer, paywall.url, ["/v1/joke"])] == [200]
    assert len(payer.store.channels("payer")) == 2


def test_a_channel_with_a_short_challenge_window_is_refused_with_the_reason(paywall, buyer):
    from datetime import timedelta
    payer = buyer("short-window")
    channel = payer.open_channel(paywall_payee(paywall), 10**17, window=timedelta(hours=2),  # the payee asks 24 h
                                terms=X402_TERMS)
    voucher = sign_voucher(payer.account, chain_id=channel.chain_id, escrow=channel.escrow, channel_id=channel.id,
                           amount=PRICE, ledger_root=b"\x00" * 32)
    code, extra = refusal(send_bare(paywall, voucher))
    assert code == "micropay_window_too_short" and "challenge window" in extra["reason"]
    assert extra["minWindow"] == 24 * 3600 and extra["minExpiryMargin"] == 3600  # the terms it asks, in the 402


def test_the_client_never_pays_above_its_caps_or_the_price(paywall, buyer):
    payer = buyer("capped")
    below = SpendingCaps(deposit=10**17, max_spend=10**18, max_price=PRICE - 1)
    with pytest.raises(SpendingCapReached, match="above the cap"):  # the scheme's own check
        header_for(payer, required(paywall.url), below)
    with pytest.raises(PaymentError, match="max_amount_per_payment"):  # and x402's spend controls before it
        calls(payer, paywall.url, ["/v1/joke"], below)
    assert payer.store.channels("payer") == []  # nothing opened, nothing signed
    small = SpendingCaps(deposit=3 * PRICE, max_spend=3 * PRICE)
    answers = calls(payer, paywall.url, ["/v1/joke"] * 3, small)
    assert [a.status_code for a in answers] == [200] * 3
    with pytest.raises(PaymentError, match="would pass the cap"):
        calls(payer, paywall.url, ["/v1/joke"], small)
    (channel,) = payer.store.channels("payer")
    assert payer.store.best_voucher(channel.ref)[0].amount == 3 * PRICE
    # Each voucher added exactly the price: never more than the route's price per call.
    assert [e.receipt.amount for e in payer.store.ledger(channel.ref)] == [PRICE] * 3


def test_unpriced_routes_and_the_inbox_pass_without_payment(paywall):
    assert httpx.get(paywall.url + "/free").json() == {"free": True}
    assert httpx.get(paywall.url + "/v1/openapi.json").status_code == 200  # the inbox's own
    assert httpx.post(paywall.url + "/v1/payments", json={"payment": "garbage"}).status_code == 400
    oversized = {"PAYMENT-SIGNATURE": "A" * 200_000}
    assert httpx.get(paywall.url + "/v1/joke", headers=oversized).status_code == 431
    logged = [(e.get("method"), e.get("path"), e.get("status")) for e in paywall.log() if e.get("event") == "request"]
    assert ("GET", "/free", 200) in logged and ("GET", "/v1/joke", 431) in logged  # the paywall's calls are logged


# -- helpers ------------------------------------------------------------------------------------


def paywall_payee(paywall) -> str:
    return paywall.line.split("inbox of ")[1].split(" ")[0]


def send_bare(paywall, voucher) -> httpx.Response:
    """A call paid with a hand-made voucher (no receipts), as a misbehaving client would send it."""
    from micropay.payment import Payment
    found = required(paywall.url)
    (ours,) = [r for r in found.accepts if r.scheme == SCHEME]
    from x402 import PaymentPayload
    payload = PaymentPayload(payload={"payment": Payment.bare(voucher).encode()}, accepted=ours,
                             resource=found.resource)
    header = base64.b64encode(payload.model_dump_json(by_alias=True, exclude_none=True).encode()).decode()
    return httpx.get(paywall.url + "/v1/joke", headers={"PAYMENT-SIGNATURE": header})


def test_a_free_method_beside_a_priced_one_on_the_same_path_stays_free(paywall, seller, buyer, x402_world):
    payer = buyer("methods")

    async def run():
        async with paying_client(payer, CAPS, base_url=paywall.url, timeout=60) as http:
            return [(await http.post("/v1/echo", content=b"one")).status_code,
                    (await http.get("/v1/echo")).json(), (await http.get("/v1/echo")).json(),
                    (await http.post("/v1/echo", content=b"two")).json()]
    assert asyncio.run(run()) == [200, {"echo": "free"}, {"echo": "free"}, {"echo": "two"}]
    (channel,) = payer.store.channels("payer")
    assert [e.receipt.task_id for e in payer.store.ledger(channel.ref)] == ["POST /v1/echo"] * 2
    assert freelancer_side(seller, x402_world).store.charged(channel.ref) == (4 * PRICE, 2)


def test_a_channel_for_planned_work_never_pays_calls(paywall, buyer):
    payer = buyer("planned")
    work = payer.open_channel(paywall_payee(paywall), 10**17)  # opened for tasks, not for calls
    voucher = sign_voucher(payer.account, chain_id=work.chain_id, escrow=work.escrow, channel_id=work.id,
                           amount=PRICE, ledger_root=b"\x00" * 32)
    code, extra = refusal(send_bare(paywall, voucher))
    assert code == "micropay_not_participant" and "not opened for paid calls" in extra["reason"]
    assert [a.status_code for a in calls(payer, paywall.url, ["/v1/joke"])] == [200]
    calls_channel = [r for r in payer.store.channels("payer") if r.id != work.id]
    assert len(calls_channel) == 1 and calls_channel[0].terms == X402_TERMS  # a channel of its own
    assert payer.store.best_voucher(work.ref) is None  # the task channel's deposit untouched


def test_a_failed_call_is_never_claimed_on_chain_even_when_its_voucher_pays_a_cheaper_call(
        paywall, seller, buyer, x402_world):
    payer = buyer("credit")

    async def run(requests):
        async with paying_client(payer, CAPS, base_url=paywall.url, timeout=60) as http:
            return [(await http.request(method, path)).status_code for method, path in requests]
    assert asyncio.run(run([("POST", "/v1/boom")])) == [500]  # priced 2x, fails: its voucher is not stored
    assert asyncio.run(run([("GET", "/v1/joke")])) == [200]  # paid with the 2x voucher: 1x charged
    (channel,) = payer.store.channels("payer")
    payee = freelancer_side(seller, x402_world)
    assert payee.store.charged(channel.ref) == (PRICE, 1)
    assert payee.store.best_voucher(channel.ref)[0].amount == 2 * PRICE
    assert payee.store.claimable_voucher(channel.ref) is None  # no voucher of at most what was charged: not yet
    assert not _plans(payee, channel)  # so a settlement now would claim nothing of the failed call
    assert asyncio.run(run([("GET", "/v1/joke")])) == [200]  # the credit pays this one: nothing new signed
    assert payee.store.charged(channel.ref) == (2 * PRICE, 2)
    assert payer.store.best_voucher(channel.ref)[0].amount == 2 * PRICE
    assert payee.settle(payee.plan_settlement(only={channel.id})).gross == 2 * PRICE


def _plans(payee, channel) -> bool:
    """Whether a settlement can be planned at all (none: nothing claimable anywhere)."""
    from micropay.errors import NothingToClaim
    try:
        payee.plan_settlement(only={channel.id})
    except NothingToClaim:
        return False
    return True


def raw_status(url: str, method: str, path: str) -> int:
    """The status of a request sent byte for byte (httpx would clean the path first)."""
    import socket
    from urllib.parse import urlsplit
    where = urlsplit(url)
    with socket.create_connection((where.hostname, where.port), timeout=30) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: {where.netloc}\r\nConnection: close\r\n\r\n".encode())
        return int(sock.recv(64).split(b" ")[1])


def test_no_path_trick_or_method_reaches_a_priced_route_unpaid(paywall, upstream):
    before = upstream.calls.get("joke", 0)
    for path in ("/./v1/joke", "/x/../v1/joke", "/%2e/v1/joke", "//v1/joke", "/v1/./joke"):
        assert raw_status(paywall.url, "GET", path) == 400, path
    assert raw_status(paywall.url, "HEAD", "/v1/joke") == 402  # HEAD costs what GET costs
    assert upstream.calls.get("joke", 0) == before  # none of them reached the API
    garbage = httpx.get(paywall.url + "/v1/joke", headers={"PAYMENT-SIGNATURE": "not-a-payload"})
    assert garbage.status_code == 400 and garbage.json()["error"] == "invalid_payment_header"


def test_a_price_serve_cannot_read_stops_it_at_once_with_the_reason(seller, upstream):
    with pytest.raises(RuntimeError, match="give the unit"):
        seller.serve("--paywall", upstream.url, "--price", "GET /v1/*=1")  # 1 what? never 1 ETH by surprise
    with pytest.raises(RuntimeError, match="the price of 'GET /v1/\\*'"):
        seller.serve("--paywall", upstream.url, "--price", "GET /v1/*=0.001 USDC")  # this paywall is in ETH
