"""The dashboard's pages as served (its ASGI app, through httpx): what is offered to whom."""

from __future__ import annotations

import asyncio

import httpx
from eth_account import Account

from helpers import agree_and_open
from micropay import Payee
from micropay.dashboard import Dashboard

MILLI = 10**15


def get(app, path, *, client=("127.0.0.1", 5000), **headers) -> httpx.Response:
    async def run():
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            return await http.get(path, headers=headers)
    return asyncio.run(run())


def test_settle_now_is_offered_only_to_a_local_unproxied_request(clients, freelancer, make_payer, payee,
                                                                lib_escrow):
    payer = make_payer(clients[0])
    channel = payer.open_channel(freelancer.address, 10**17)
    payee.receive(payer.pay(channel.id, 3 * MILLI, task="t"))
    app = Dashboard(payee.store, payee.address, [lib_escrow], payee=payee).app
    local = get(app, "/settle")
    assert 'id="confirm-settle"' in local.text and "Settle now…" in get(app, "/").text
    for headers in ({"X-Forwarded-For": "203.0.113.7"}, {"Host": "pay.example"}, {"Forwarded": "for=203.0.113.7"}):
        page = get(app, "/settle", **headers)
        assert 'id="not-here"' in page.text and 'id="confirm-settle"' not in page.text
        assert "Settle now…" not in get(app, "/", **headers).text
    assert 'id="not-here"' in get(app, "/settle", client=("203.0.113.7", 5000)).text
    assert 'id="confirm-settle"' in get(app, "/settle", Host="[::1]").text  # an IPv6 loopback name, no port


def test_settle_now_warns_instead_of_sending_when_the_account_cannot_pay_the_gas(clients, make_payer, lib_escrow,
                                                                                store_at):
    broke = Account.create()  # never funded
    payee = Payee(lib_escrow, broke, store_at("broke"))
    payer = make_payer(clients[1])
    channel = payer.open_channel(broke.address, 10**17)
    payee.receive(payer.pay(channel.id, 3 * MILLI, task="t"))
    page = get(Dashboard(payee.store, payee.address, [lib_escrow], payee=payee).app, "/settle")
    assert 'id="no-gas"' in page.text and 'id="confirm-settle"' not in page.text
    assert "--via-relay" in page.text


def test_a_pending_amendment_is_shown_with_the_command_that_accepts_it(clients, freelancer, make_payer, payee,
                                                                      lib_escrow):
    import dataclasses
    import time

    from micropay.plan import PlanTask
    payer = make_payer(clients[2])
    plan, accepted, channel = agree_and_open(payer, payee, freelancer, "Site",
                                             (PlanTask("home", "Home page", 5 * MILLI),))
    version_two = dataclasses.replace(plan, tasks=(*plan.tasks, PlanTask("about", "About", 2 * MILLI)), version=2,
                                      amends=accepted.hash, proposed_at=int(time.time()))
    amended = payee.plans.propose(version_two, freelancer)
    payer.plans.take(amended.encode())
    page = get(Dashboard(payer.store, payer.address, [lib_escrow], payer=payer).app,
               f"/channels/0x{channel.id.hex()}")
    assert f"micropay plan accept 0x{amended.plan.hash.hex()}" in page.text
    assert "Version 2 of the plan, proposed by the freelancer" in page.text


def test_an_overdue_task_is_a_warning_on_the_overview_and_its_due_date_is_on_the_channel_page(
        clients, freelancer, make_payer, payee, lib_escrow):
    import time

    from micropay.plan import PlanTask
    payer = make_payer(clients[0], "overdue")
    due = int(time.time()) - 86_400
    _, _, channel = agree_and_open(payer, payee, freelancer, "Late", (PlanTask("logo", "Logo", 5 * MILLI, due=due),),
                                   proposed_at=int(time.time()) - 2 * 86_400)
    payee.receive(payer.pay(channel.id, MILLI, task="advance", deliver=False))  # the freelancer holds the channel
    app = Dashboard(payee.store, payee.address, [lib_escrow], payee=payee).app
    assert "overdue: logo" in get(app, "/").text
    assert f'data-unix="{due}"' in get(app, f"/channels/0x{channel.id.hex()}").text
