"""The inbox in this process (its ASGI app through httpx): rate limits per client address and
per channel, bounded memory, one chain lookup per unknown channel, a 500 without a trace, the
group commit, mounting under a prefix, and closing; then the log and the limits themselves."""

from __future__ import annotations

import asyncio
import io
import json

import httpx
import pytest
from eth_account import Account
from inboxhelpers import open_channel
from starlette.applications import Starlette
from starlette.routing import Mount

from micropay import Escrow, Payee
from micropay.errors import MicropayValueError
from micropay.inbox import Inbox
from micropay.inbox_limits import InboxLimits, TokenBuckets
from micropay.payment import Payment
from micropay.server_log import ServerLog
from micropay.signed_request import sign_request
from micropay.voucher import sign_voucher

MILLI = 10**15


@pytest.fixture
def payee(world, freelancer, store_at):
    escrow = Escrow(world.w3, world.escrow.address, chain_id=world.escrow.chain_id)  # its own, to count calls
    return Payee(escrow, freelancer.account, store_at("inbox"))


def make_inbox(payee, **limits) -> tuple[Inbox, io.StringIO]:
    log = io.StringIO()
    return Inbox(payee, limits=InboxLimits(**limits), log=ServerLog(log)), log


async def post(app, path: str, body: object, *, client: str = "10.0.0.1", prefix: str = "",
               headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=(client, 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://inbox") as http:
        if body is None:
            return await http.get(prefix + path, headers=headers)
        return await http.post(prefix + path, json=body, headers=headers)


def test_a_client_address_sending_too_fast_gets_429_and_others_do_not(payee):
    inbox, log = make_inbox(payee, client_rate=1, client_burst=3)

    async def run():
        first = [await post(inbox.app, "/v1/nothing", None) for _ in range(4)]
        other = await post(inbox.app, "/v1/nothing", None, client="10.0.0.2")
        return first, other

    first, other = asyncio.run(run())
    assert [a.status_code for a in first] == [404, 404, 404, 429]
    limited = first[3]
    assert limited.json()["error"] == "rate_limited" and 0 < limited.json()["retryAfter"] <= 1
    assert limited.headers["Retry-After"] == "1"
    assert other.status_code == 404
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    assert [(x["status"], x.get("error")) for x in lines if x["event"] == "request"][-2:] == [
        (429, "rate_limited"), (404, "not_found")]


def test_a_stranger_naming_a_channel_cannot_use_up_its_payers_allowance(payee, make_client):
    inbox, _ = make_inbox(payee, channel_rate=0.001, channel_burst=3, client_rate=0)
    client = make_client()
    channel = open_channel(client, payee.address)
    payments = [client.pay(channel.id, MILLI, f"t{n}") for n in range(4)]
    v = payments[0].voucher
    forged = Payment.of(sign_voucher(Account.create(), chain_id=v.chain_id, escrow=v.escrow, channel_id=v.channel_id,
                                     amount=v.amount, ledger_root=v.ledger_root), payments[0].receipts, 0).encode()
    path = f"/v1/channels/0x{channel.id.hex()}/progress"

    async def run():
        first = await post(inbox.app, "/v1/payments", {"payment": payments[0].encode()})
        strangers = [await post(inbox.app, "/v1/payments", {"payment": forged}, client=f"10.9.0.{n}")
                     for n in range(10)]
        strangers += [await post(inbox.app, path, None, headers=sign_request(Account.create(), "GET", path))
                      for _ in range(10)]
        own = [first] + [await post(inbox.app, "/v1/payments", {"payment": p.encode()}) for p in payments[1:]]
        return strangers, own

    strangers, own = asyncio.run(run())
    assert {a.status_code for a in strangers} == {400, 403}  # forged, and signed by no party: never counted
    assert [a.status_code for a in own] == [200, 200, 200, 429]  # the payer's own requests are
    inbox.close()


def test_documents_are_limited_per_address_more_tightly_than_requests(payee):
    inbox, _ = make_inbox(payee, document_rate=0.01, document_burst=2)

    async def run():
        return [(await post(inbox.app, "/v1/plans", {"document": "mpl1nothing"})).status_code for _ in range(3)]

    assert asyncio.run(run()) == [400, 400, 429]


def test_rate_limit_tables_are_bounded_by_forgetting_the_least_recently_seen():
    buckets = TokenBuckets(rate=1, burst=1, max_keys=100)
    for n in range(10_000):
        assert buckets.take(f"10.0.{n // 256}.{n % 256}", now=0.0) == 0.0
    assert len(buckets) == 100
    assert buckets.take("10.0.39.15", now=0.0) > 0  # still remembered: refused
    assert buckets.take("10.0.0.0", now=0.0) == 0.0  # forgotten long ago: starts full again
    assert buckets.take("10.0.39.15", now=1.0) == 0.0  # refilled after a second


def test_many_addresses_do_not_grow_the_inbox_past_its_bound(payee):
    inbox, _ = make_inbox(payee, max_tracked=50)

    async def run():
        for n in range(120):
            await post(inbox.app, "/v1/nothing", None, client=f"10.1.0.{n}")

    asyncio.run(run())
    assert len(inbox.guard.clients) == 50


def test_a_strangers_unknown_or_foreign_channel_costs_one_chain_lookup(payee, make_client, monkeypatch):
    inbox, _ = make_inbox(payee)
    lookups = []
    real = payee.escrow.key
    monkeypatch.setattr(payee.escrow, "key", lambda channel_id: lookups.append(channel_id) or real(channel_id))
    client = make_client()
    foreign = open_channel(client, Account.create().address)
    foreign_text = client.pay(foreign.id, MILLI, "x").encode()
    ours = open_channel(client, payee.address)
    unknown = client.pay(ours.id, MILLI, "y")
    v = unknown.voucher
    nowhere = Payment.of(sign_voucher(client.account, chain_id=v.chain_id, escrow=v.escrow, channel_id=b"\x07" * 32,
                                      amount=v.amount, ledger_root=v.ledger_root), unknown.receipts, 0).encode()

    async def run():
        return ([await post(inbox.app, "/v1/payments", {"payment": foreign_text}) for _ in range(5)],
                [await post(inbox.app, "/v1/payments", {"payment": nowhere}) for _ in range(5)])

    foreign_answers, unknown_answers = asyncio.run(run())
    assert {(a.status_code, a.json()["error"]) for a in foreign_answers} == {(403, "not_participant")}
    assert {(a.status_code, a.json()["error"]) for a in unknown_answers} == {(404, "unknown_channel")}
    assert lookups == [foreign.id, b"\x07" * 32]
    assert payee.store.channels() == []  # and nothing was stored
    inbox.close()


def test_an_unexpected_error_is_a_500_without_a_trace_and_is_logged(payee, make_client, monkeypatch, store_at):
    inbox, log = make_inbox(payee)
    client = make_client()
    channel = open_channel(client, payee.address)

    def broken(*args, **kwargs):
        raise RuntimeError(f"bug reading {store_at('inbox')}")

    monkeypatch.setattr(payee.receiver, "check", broken)
    answer = asyncio.run(post(inbox.app, "/v1/payments", {"payment": client.pay(channel.id, MILLI, "x").encode()}))
    assert answer.status_code == 500
    assert answer.json() == {"error": "internal", "message": "the inbox failed on this request; it is logged"}
    (failure,) = [json.loads(x) for x in log.getvalue().splitlines() if '"internal_error"' in x]
    assert failure["exception"] == "RuntimeError" and "receive_async" in failure["where"]
    assert "mpp1" not in log.getvalue()  # no body in the log


def test_payments_arriving_together_share_commits_and_close_stores_what_was_submitted(payee, make_client):
    inbox, _ = make_inbox(payee, channel_rate=0, client_rate=0)
    clients = [make_client() for _ in range(8)]
    channels = [open_channel(c, payee.address) for c in clients]
    streams = [[c.pay(ch.id, MILLI, f"t{n}").encode() for n in range(8)] for c, ch in zip(clients, channels,
                                                                                           strict=True)]

    async def client_stream(texts):
        return [(await post(inbox.app, "/v1/payments", {"payment": t})).status_code for t in texts]

    async def run():
        return await asyncio.gather(*(client_stream(s) for s in streams))

    assert asyncio.run(run()) == [[200] * 8] * 8
    assert inbox.group.stored == 64 and inbox.group.commits < 64
    inbox.close()
    inbox.close()  # idempotent
    late = asyncio.run(post(inbox.app, "/v1/payments", {"payment": clients[0].pay(channels[0].id, 1, "z").encode()}))
    assert (late.status_code, late.json()["error"]) == (503, "unavailable")
    for channel in channels:
        assert len(payee.ledger(channel.id)) == 8


def test_the_inbox_mounted_under_a_prefix_serves_payments_and_signed_reads(payee, make_client):
    inbox, _ = make_inbox(payee)
    host = Starlette(routes=[Mount("/alice", app=inbox.app)])
    client = make_client()
    channel = open_channel(client, payee.address)
    path = f"/v1/channels/0x{channel.id.hex()}/progress"

    async def run():
        paid = await post(host, "/v1/payments", {"payment": client.pay(channel.id, MILLI, "x").encode()},
                          prefix="/alice")
        signed = await post(host, path, None, prefix="/alice", headers=sign_request(client.account, "GET",
                                                                                     "/alice" + path))
        unprefixed = await post(host, path, None, prefix="/alice", headers=sign_request(client.account, "GET", path))
        schema = await post(host, "/v1/openapi.json", None, prefix="/alice")
        return paid, signed, unprefixed, schema

    paid, signed, unprefixed, schema = asyncio.run(run())
    assert paid.status_code == 200 and paid.json()["held"] is True
    assert (signed.status_code, signed.json()["error"]) == (404, "unknown_plan")  # signature and party accepted
    assert (unprefixed.status_code, unprefixed.json()["error"]) == (401, "unauthorized")
    assert schema.status_code == 200 and "/v1/payments" in schema.json()["paths"]
    inbox.close()


def test_the_log_never_writes_secrets_or_query_strings():
    out = io.StringIO()
    log = ServerLog(out)
    log.event("x", password="hunter2", private_key="0xabc", body="mpp1", signature_header="0x1", channel="0x12")
    log.access(method="GET", path="/v1/channels/0x12/progress?token=secret", status=200, ms=1.0, client="1.2.3.4")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert set(first) == {"time", "level", "event", "channel"}
    assert second["path"] == "/v1/channels/0x12/progress" and "secret" not in out.getvalue()
    quiet = io.StringIO()
    ServerLog(quiet, level="warning").access(method="GET", path="/", status=200, ms=1.0, client=None)
    assert quiet.getvalue() == ""


def test_limits_are_numbers_at_least_zero():
    for bad in ({"client_rate": -1}, {"max_body": "big"}, {"read_timeout": float("nan")}, {"channel_burst": True}):
        with pytest.raises(MicropayValueError):
            InboxLimits(**bad)
    assert InboxLimits(client_rate=0, channel_rate=0).client_rate == 0


def test_proposals_waiting_for_the_freelancer_are_capped_but_an_acceptance_is_always_taken(payee, monkeypatch):
    import time

    import micropay.inbox
    from micropay.plan import Plan, PlanTask, SignedPlan

    monkeypatch.setattr(micropay.inbox, "MAX_PENDING_PLANS", 2)
    inbox, _ = make_inbox(payee, document_rate=0)
    escrow = payee.escrow

    def proposal(signer, proposer_is_payee=False):
        plan = Plan("Spam", signer.address, payee.address, escrow.chain_id, escrow.address, "0x" + "00" * 20,
                    (PlanTask("t", "T", MILLI),), payee.address if proposer_is_payee else signer.address,
                    int(time.time()))
        return SignedPlan(plan)

    strangers = [Account.create() for _ in range(3)]
    ours = proposal(strangers[0], proposer_is_payee=True)
    payee.plans.propose(ours.plan, payee.account)  # the freelancer's own proposal: pending too

    async def run():
        spam = [await post(inbox.app, "/v1/plans", {"document": proposal(s).signed_by(s).encode()})
                for s in strangers[1:]]
        accepted = await post(inbox.app, "/v1/plans", {
            "document": ours.signed_by(payee.account).signed_by(strangers[0]).encode()})
        return spam, accepted

    spam, accepted = asyncio.run(run())
    assert [r.status_code for r in spam] == [200, 429]
    assert spam[1].json()["error"] == "rate_limited" and "wait for this freelancer" in spam[1].json()["message"]
    assert accepted.status_code == 200 and accepted.json()["inForce"] is True
    assert payee.store.pending_plans() == 1  # the stranger's one; ours came into force


def test_a_document_posted_twice_is_notified_once(payee, tmp_path):
    import sys
    import time

    from micropay.notifications import Notifier
    from micropay.plan import Plan, PlanTask, SignedPlan

    seen = tmp_path / "events.txt"
    hook = f"{sys.executable} -c \"import os; open({str(seen)!r}, 'a').write(os.environ['MICROPAY_EVENT'] + '\\n')\""
    notifier = Notifier(command=hook)
    notifier.start()
    inbox = Inbox(payee, limits=InboxLimits(document_rate=0), notifier=notifier, log=ServerLog(io.StringIO()))
    client = Account.create()
    escrow = payee.escrow
    plan = Plan("Twice", client.address, payee.address, escrow.chain_id, escrow.address, "0x" + "00" * 20,
                (PlanTask("t", "T", MILLI),), client.address, int(time.time()))
    text = SignedPlan(plan).signed_by(client).encode()

    async def run():
        answers = [await post(inbox.app, "/v1/plans", {"document": text}) for _ in range(2)]
        await asyncio.sleep(0.5)  # the events are built off the request path: let them be handed over
        return answers

    assert [r.status_code for r in asyncio.run(run())] == [200, 200]
    notifier.close()
    assert seen.read_text().split() == ["plan"]


def test_the_dashboard_beside_the_inbox_needs_its_login_and_acts_only_for_loopback(payee):
    from micropay.dashboard import Dashboard
    from micropay.dashboard_actions import TokenGate

    inbox, _ = make_inbox(payee)
    pages = Dashboard(payee.store, payee.address, [payee.escrow], payee=payee, refresh=0)
    inbox.app.mount("/dashboard", TokenGate(pages.app, "s3cret-login"))

    async def run():
        async def get(client_ip, path, cookies=None):
            transport = httpx.ASGITransport(app=inbox.app, client=(client_ip, 4000))
            async with httpx.AsyncClient(transport=transport, base_url="http://inbox.example",
                                         cookies=cookies) as http:
                return await http.get(path)

        anonymous = await get("203.0.113.9", "/dashboard/")
        wrong = await get("203.0.113.9", "/dashboard/?token=guess")
        login = await get("203.0.113.9", "/dashboard/?token=s3cret-login")
        cookie = {"micropay_dashboard": "s3cret-login"}
        page = await get("203.0.113.9", "/dashboard/", cookie)
        settle_form = await get("203.0.113.9", "/dashboard/settle", cookie)
        transport = httpx.ASGITransport(app=inbox.app, client=("203.0.113.9", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://inbox.example", cookies=cookie) as http:
            remote_post = await http.post("/dashboard/settle", data={"csrf": pages.guard.csrf})
        return anonymous, wrong, login, page, settle_form, remote_post

    anonymous, wrong, login, page, settle_form, remote_post = asyncio.run(run())
    assert anonymous.status_code == wrong.status_code == 401 and "s3cret" not in anonymous.text
    assert login.status_code == 303 and login.headers["location"] == "/dashboard/"
    assert "micropay_dashboard=s3cret-login" in login.headers["set-cookie"]
    assert "HttpOnly" in login.headers["set-cookie"] and "SameSite=Strict" in login.headers["set-cookie"]
    assert page.status_code == 200 and payee.address in page.text
    assert settle_form.status_code == 200  # looking is allowed with the login
    assert remote_post.status_code == 403 and "loopback" in remote_post.text  # acting is not, from afar
