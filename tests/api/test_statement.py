"""Statements (issue 14, item 7): every task paid on a channel under a plan, with its date, title,
planned and paid price, plan version and the settlement transaction that moved it, reconciled to
the wei on both sides, online and offline; filtered by date; rendered as CSV and printable HTML."""

from __future__ import annotations

import csv
import io
import time
from decimal import Decimal

import pytest

from micropay import Payee, Payer
from micropay.plan import Plan, PlanTask
from micropay.statement import CSV_HEADER, Statement, build_statement, to_csv, to_html

MILLI = 10**15
EVIL = '<script>alert("paid")</script> & co'
TASKS = (("logo", "Logo draft", 5), ("palette", "Colour palette", 3), ("cards", "Business cards", 6),
         ("site", EVIL, 7), ("final", "Final files", 4))


def eth(token: str) -> tuple[int, str]:
    assert token == "0x" + "00" * 20
    return 18, "ETH"


def story(payer: Payer, payee: Payee, client, freelancer):
    """Plan five tasks; pay three (one below its price), settle; amend (re-price "final", add
    "social"); pay "site" and an unplanned "extra", settle again. Returns the channel and the two
    settlements."""
    plan = Plan("Brand refresh", payer.address, payee.address, payee.escrow.chain_id, payee.escrow.address,
                "0x" + "00" * 20, tuple(PlanTask(i, t, p * MILLI) for i, t, p in TASKS), payee.address,
                int(time.time()))
    accepted = payer.plans.accept(payee.plans.propose(plan, freelancer).encode(), client)
    payee.plans.take(accepted)
    record = payer.open_for_plan(accepted.hash)
    payee.receive(payer.pay_task(record.id, "logo"))
    payee.receive(payer.pay_task(record.id, "palette"))
    payee.receive(payer.pay_task(record.id, "cards", unplanned=True, amount=5 * MILLI))
    first = payee.settle()
    tasks = list(plan.tasks)
    tasks[4] = PlanTask("final", "Final files", 5 * MILLI)
    tasks.append(PlanTask("social", "Social media kit", 2 * MILLI))
    amendment = Plan(plan.title, plan.payer, plan.payee, plan.chain_id, plan.escrow, plan.token, tuple(tasks),
                     payer.address, int(time.time()), version=2, amends=plan.hash)
    payee.plans.accept(payer.plans.propose(amendment, client).encode(), freelancer)
    payer.plans.take(payee.store.plan(amendment.hash).signed)
    payee.receive(payer.pay_task(record.id, "site"))
    payee.receive(payer.pay_task(record.id, "extra", unplanned=True, amount=2 * MILLI, note="=1+1 rush fee"))
    second = payee.settle()
    return record, first, second


@pytest.fixture
def told(lib_escrow, clients, freelancer, make_payer, payee):
    payer = make_payer(clients[0], "statement-client")
    record, first, second = story(payer, payee, clients[0], freelancer)
    return payer, payee, record, first, second


EXPECTED = [  # task, title, price, paid, version, deviation, settled by the first or second settlement
    ("logo", "Logo draft", 5, 5, 1, "", 0), ("palette", "Colour palette", 3, 3, 1, "", 0),
    ("cards", "Business cards", 6, 5, 1, "below price", 0), ("site", EVIL, 7, 7, 1, "", 1),
    ("extra", "extra", None, 2, None, "unplanned", 1)]


def check_rows(statement: Statement, record, counterparty: str, txs: list[str]) -> None:
    got = [(r.task_id, r.title, r.price, r.paid, r.version, r.deviation, r.settlement) for r in statement.rows]
    assert got == [(t, title, None if p is None else p * MILLI, paid * MILLI, v, d, txs[s])
                   for t, title, p, paid, v, d, s in EXPECTED]
    assert all(r.channel == "0x" + record.id.hex() and r.counterparty == counterparty and r.settled
               for r in statement.rows)
    assert [r.total for r in statement.rows] == [5 * MILLI, 8 * MILLI, 13 * MILLI, 20 * MILLI, 22 * MILLI]
    (totals,) = statement.totals
    assert (totals.planned, totals.paid, totals.settled) == (21 * MILLI, 22 * MILLI, 22 * MILLI)
    (channel,) = statement.channels
    assert (channel.title, channel.version, channel.counterparty) == ("Brand refresh", 2, counterparty)


def test_the_payees_statement_names_each_settlement_transaction(told, lib_escrow):
    payer, payee, record, first, second = told
    txs = ["0x" + first.tx_hash.hex(), "0x" + second.tx_hash.hex()]
    online = build_statement(payee.store, [payee.store.channel(record.ref)], payee.address, escrow=lib_escrow)
    check_rows(online, record, payer.address, txs)
    for row, settlement in zip(online.rows, [first] * 3 + [second] * 2, strict=True):
        mined = lib_escrow.w3.eth.get_transaction_receipt(settlement.tx_hash)["blockNumber"]
        assert row.settled_at == lib_escrow.w3.eth.get_block(mined)["timestamp"]
    # offline, the payee's own settlement records name the same transactions
    offline = build_statement(payee.store, [payee.store.channel(record.ref)], payee.address)
    check_rows(offline, record, payer.address, txs)
    times = payee.store.voucher_times(record.ref)
    assert [r.paid_at for r in offline.rows] == [at for _, at in times]


def test_the_payers_statement_reads_settlements_from_the_chain(told, lib_escrow):
    payer, payee, record, first, second = told
    fresh = payer.sync(record.id)
    online = build_statement(payer.store, [fresh], payer.address, escrow=lib_escrow)
    check_rows(online, record, payee.address, ["0x" + first.tx_hash.hex(), "0x" + second.tx_hash.hex()])
    # offline the payer knows what the chain claimed, not which transaction moved it
    offline = build_statement(payer.store, [fresh], payer.address)
    assert [(r.settled, r.settlement) for r in offline.rows] == [(True, "")] * 5
    assert offline.totals == online.totals
    # before a sync, nothing is known to be settled
    stale = build_statement(payer.store, [record], payer.address)
    assert [r.settled for r in stale.rows] == [False] * 5 and stale.totals[0].settled == 0


def test_dates_filter_rows_start_inclusive_end_exclusive(told):
    _, payee, record, _, _ = told
    channel = payee.store.channel(record.ref)
    rows = build_statement(payee.store, [channel], payee.address).rows
    cut = rows[3].paid_at
    assert rows[2].paid_at < cut
    late = build_statement(payee.store, [channel], payee.address, start=cut)
    early = build_statement(payee.store, [channel], payee.address, end=cut)
    assert [r.task_id for r in late.rows] == ["site", "extra"]
    assert [r.task_id for r in early.rows] == ["logo", "palette", "cards"]
    assert (late.totals[0].planned, late.totals[0].paid) == (7 * MILLI, 9 * MILLI)
    assert (early.totals[0].planned, early.totals[0].paid) == (14 * MILLI, 13 * MILLI)
    assert build_statement(payee.store, [channel], payee.address, start=time.time() + 60).rows == ()
    assert build_statement(payee.store, [channel], payee.address, start=time.time() + 60).totals == ()


def test_a_channel_without_a_plan_names_tasks_by_their_id(lib_escrow, clients, make_payer, payee):
    payer = make_payer(clients[1], "planless")
    record = payer.open_channel(payee.address, 10 * MILLI)
    payee.receive(payer.pay(record.id, 4 * MILLI, "translation"))
    payee.receive(payer.pay(record.id, 4 * MILLI, "translation"))
    statement = build_statement(payee.store, [payee.store.channel(record.ref)], payee.address, escrow=lib_escrow)
    assert [(r.task_id, r.title, r.price, r.version, r.deviation, r.settled, r.settlement) for r in statement.rows] \
        == [("translation", "translation", None, None, "", False, "")] * 2
    assert (statement.channels[0].plan, statement.channels[0].title) == ("", "")
    assert (statement.totals[0].planned, statement.totals[0].paid, statement.totals[0].settled) == (0, 8 * MILLI, 0)
    closed = payee.close(record.id)  # a close moves the money too: its Closed event names the transaction
    channel = payee.store.channel(record.ref)
    online = build_statement(payee.store, [channel], payee.address, escrow=lib_escrow)
    assert [r.settlement for r in online.rows] == ["0x" + closed.tx_hash.hex()] * 2
    assert online.totals[0].settled == 8 * MILLI
    # offline, no settlement record names a close: settled (the stored claimed total says so), transaction unknown
    offline = build_statement(payee.store, [channel], payee.address)
    assert [(r.settled, r.settlement, r.settled_at) for r in offline.rows] == [(True, "", None)] * 2
    assert "yes (transaction not known here)" in to_html(offline, eth)


def test_csv_parses_back_to_the_same_figures(told, lib_escrow):
    _, payee, record, first, _ = told
    statement = build_statement(payee.store, [payee.store.channel(record.ref)], payee.address, escrow=lib_escrow)
    text = to_csv(statement, eth)
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert list(rows[0]) == CSV_HEADER
    tasks, totals = [r for r in rows if r["kind"] == "task"], [r for r in rows if r["kind"] == "total"]
    assert len(tasks) == 5 and len(totals) == 1
    for got, want in zip(tasks, statement.rows, strict=True):
        assert int(got["paid (base units)"]) == want.paid
        assert Decimal(got["paid"]) * 10**18 == want.paid
        assert got["planned"] == ("" if want.price is None else str(Decimal(want.price) / 10**18))
        assert got["settlement tx"] == want.settlement and got["currency"] == "ETH"
        assert got["date (UTC)"].endswith("Z") and got["date (UTC)"][:4].isdigit()
        assert got["title"] == want.title
    assert tasks[0]["settlement tx"] == "0x" + first.tx_hash.hex()
    assert tasks[2]["deviation"] == "below price" and tasks[4]["deviation"] == "unplanned"
    assert tasks[4]["note"] == "'=1+1 rush fee"  # a spreadsheet must not run it as a formula
    total = totals[0]
    assert (total["planned"], total["paid"], total["settled"]) == ("0.021", "0.022", "0.022")
    assert int(total["paid (base units)"]) == 22 * MILLI
    assert sum(Decimal(r["paid"]) for r in tasks) == Decimal(total["paid"])


def test_html_prints_and_escapes_what_others_wrote(told, lib_escrow):
    payer, payee, record, first, second = told
    statement = build_statement(payee.store, [payee.store.channel(record.ref)], payee.address, escrow=lib_escrow)
    page = to_html(statement, eth)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page.lower() and "&lt;script&gt;alert(&quot;paid&quot;)&lt;/script&gt; &amp; co" in page
    assert "src=" not in page and "href=" not in page and "@import" not in page  # nothing fetched
    assert "@media print" in page and "size: A4" in page and "table-header-group" in page
    for tx in (first.tx_hash, second.tx_hash):
        assert "0x" + tx.hex() in page
    for title in ("Logo draft", "Colour palette", "Business cards", "extra"):
        assert title in page
    assert payer.address in page and payee.address in page
    assert "0.022 ETH" in page and "0.021 ETH" in page and "paid below its price" in page
    assert "every payment to date" in page
    day = 86_400
    start, end = (int(statement.rows[0].paid_at) // day) * day, (int(statement.rows[-1].paid_at) // day + 1) * day
    dated = build_statement(payee.store, [payee.store.channel(record.ref)], payee.address, start=start, end=end)
    first_day = time.strftime("%-d %B %Y", time.gmtime(start))
    last_day = time.strftime("%-d %B %Y", time.gmtime(end - 1))
    assert f"from {first_day} to {last_day}" in to_html(dated, eth) and len(dated.rows) == 5
