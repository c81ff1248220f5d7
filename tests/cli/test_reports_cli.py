"""`micropay progress` and `micropay statement` (issue 14, items 6 and 7) on both sides, online
and offline, on a channel whose story is told through the library on the people's own stores."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from datetime import datetime, timedelta, timezone

import pytest
from clihelpers import PASSWORD, assert_clean_error

from micropay import Escrow, Payee, Payer, keystore
from micropay.plan import Plan, PlanTask

MILLI = 10**15
OFFLINE = ("--rpc", "http://127.0.0.1:9")  # nothing listens there


def account(person):
    ((_, path),) = keystore.list_accounts(person.home / "keystores")
    return keystore.load_account(path, PASSWORD)


@pytest.fixture
def story(people, w3):
    """Four tasks ("site" overdue), the deposit covering two; "logo" paid, "palette" paid 0.001 ETH
    below its price, and 0.001 ETH for "rush", not in the plan; "final" delivered; the client's
    amendment re-prices "final" and adds "social"; the freelancer settles."""
    client, freelancer, escrow_address = people
    escrow = Escrow(w3, escrow_address)
    client_key, freelancer_key = account(client), account(freelancer)
    payer = Payer(escrow, client_key, client.home / "micropay.db")
    payee = Payee(escrow, freelancer_key, freelancer.home / "micropay.db")
    now = int(time.time())
    tasks = (PlanTask("logo", "Logo draft", 5 * MILLI, now + 86_400 * 7),
             PlanTask("palette", "Colour palette", 3 * MILLI),
             PlanTask("site", "Landing page", 7 * MILLI, now - 86_400), PlanTask("final", "Final files", 4 * MILLI))
    plan = Plan("Brand refresh", payer.address, payee.address, escrow.chain_id, escrow.address, "0x" + "00" * 20,
                tasks, payee.address, now)
    accepted = payer.plans.accept(payee.plans.propose(plan, freelancer_key).encode(), client_key)
    payee.plans.take(accepted)
    record = payer.open_for_plan(accepted.hash, cover=2)
    payee.receive(payer.pay_task(record.id, "logo"))
    payee.receive(payer.pay_task(record.id, "palette", unplanned=True, amount=2 * MILLI))
    payee.receive(payer.pay_task(record.id, "rush", unplanned=True, amount=MILLI))
    payer.plans.take_feedback(payee.plans.give(freelancer_key, accepted.hash, "final", "delivered"))
    amended = (*tasks[:3], PlanTask("final", "Final files", 5 * MILLI), PlanTask("social", "Social kit", 2 * MILLI))
    amendment = Plan(plan.title, plan.payer, plan.payee, plan.chain_id, plan.escrow, plan.token, amended,
                     payer.address, now, version=2, amends=plan.hash)
    payee.plans.accept(payer.plans.propose(amendment, client_key).encode(), freelancer_key)
    payer.plans.take(payee.store.plan(amendment.hash).signed)
    settlement = payee.settle()
    return client, freelancer, "0x" + record.id.hex(), "0x" + settlement.tx_hash.hex()


def test_progress_for_the_client_syncs_first_and_says_what_is_left(story):
    client, freelancer, channel, _ = story
    offline = client.run(*OFFLINE, "progress", channel)
    assert "no node" in offline.stderr and "showing the chain state as last stored" in offline.stderr
    assert re.search(r"^logo +Logo draft +paid +0.005 ETH +0.005 ETH", offline.stdout, re.M), offline.stdout
    out = client.run("progress", channel).stdout  # reads the chain: the freelancer's claim is now known
    assert out.startswith("'Brand refresh': plan 0x") and f"you pay freelancer {freelancer.address}" in out
    assert re.search(r"^logo +Logo draft +settled +0.005 ETH +0.005 ETH +\d{4}-\d\d-\d\d \d\d:\d\d UTC *$", out, re.M)
    assert re.search(r"^palette +Colour palette +settled +0.003 ETH +0.002 ETH +paid 0.001 ETH below its price$",
                     out, re.M), out
    assert re.search(r"^site +Landing page +planned +0.007 ETH .* the freelancer +overdue$", out, re.M), out
    assert re.search(r"^final +Final files +delivered +0.005 ETH +you$", out, re.M), out
    assert re.search(r"^rush +\(not in the plan\) +settled +0.001 ETH +unplanned$", out, re.M), out
    assert ("paid 0.007 ETH of 0.022 ETH planned (32% of the budget), and 0.001 ETH beyond the planned prices; "
            "settled on chain: 0.008 ETH") in out
    assert ("the deposit covers none of the 3 tasks left (0 ETH of the deposit is left); top up 0.014 ETH to "
            "cover the plan") in out
    assert re.search(r"overdue: 'site' \(due \d{4}-\d\d-\d\d \d\d:\d\d UTC\)", out)
    assert "waiting for the freelancer: 'site', 'social'" in out and "waiting for you: 'final'" in out
    assert re.search(r"version 1, proposed by the freelancer on .* \(agreed, since amended\): total 0.019 ETH", out)
    assert re.search(r"version 2, proposed by you on .* \(in force\): total 0.019 ETH → 0.022 ETH \(\+0.003 ETH\)", out)
    assert "    re-priced 'final': 0.004 ETH → 0.005 ETH" in out and "    added 'social' at 0.002 ETH" in out


def test_progress_for_the_freelancer_and_as_json(story):
    client, freelancer, channel, _ = story
    out = freelancer.run("progress", channel).stdout
    assert f"you are paid by client {client.address}" in out
    assert "the client needs to top up 0.014 ETH to cover the plan" in out
    assert "waiting for you: 'site', 'social'" in out and "waiting for the client: 'final'" in out
    assert re.search(r"version 2, proposed by the client on", out)
    data = client.json("progress", channel)
    assert data["role"] == "payer" and data["channel"] == channel and data["version"] == 2
    assert (data["planned_total"], data["paid_total"], data["settled_total"]) == (
        str(22 * MILLI), str(8 * MILLI), str(8 * MILLI))
    assert [(t["task_id"], t["state"], t["deviation"]) for t in data["tasks"]] == [
        ("logo", "settled", ""), ("palette", "settled", "below price"), ("site", "planned", ""),
        ("final", "delivered", ""), ("social", "planned", ""), ("rush", "settled", "unplanned")]
    assert data["coverage"]["top_up"] == str(14 * MILLI) and data["overdue"] == ["site"]


def test_progress_of_a_channel_without_a_plan_says_so(people):
    client, freelancer, _ = people
    channel = client.open(freelancer.address, "0.01 ETH")
    assert_clean_error(client.run("progress", channel, ok=False), "not opened under a plan")


def parse(text):
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    return [r for r in rows if r["kind"] == "task"], [r for r in rows if r["kind"] == "total"]


def test_statement_csv_for_the_freelancer_names_the_settlement(story):
    client, freelancer, channel, tx = story
    tasks, (total,) = parse(freelancer.run("statement", channel, "--format", "csv").stdout)
    assert [(r["task"], r["title"], r["planned"], r["paid"], r["plan version"], r["deviation"], r["settlement tx"],
             r["counterparty"], r["role"]) for r in tasks] == [
        ("logo", "Logo draft", "0.005", "0.005", "1", "", tx, client.address, "payee"),
        ("palette", "Colour palette", "0.003", "0.002", "1", "below price", tx, client.address, "payee"),
        ("rush", "rush", "", "0.001", "", "unplanned", tx, client.address, "payee")]
    assert (total["planned"], total["paid"], total["settled"], total["paid (base units)"]) == (
        "0.008", "0.008", "0.008", str(8 * MILLI))
    # the client's, read from the chain's events, names the same transaction
    payer_tasks, _ = parse(client.run("statement", channel, "--format", "csv").stdout)
    assert [r["settlement tx"] for r in payer_tasks] == [tx, tx, tx]
    assert {r["counterparty"] for r in payer_tasks} == {freelancer.address}


def test_statement_filters_by_day_and_writes_a_file(story, tmp_path):
    client, freelancer, channel, tx = story
    today = datetime.now(timezone.utc).date()
    day = today.isoformat()
    tomorrow = (today + timedelta(days=1)).isoformat()
    kept, _ = parse(freelancer.run("statement", channel, "--from", day, "--to", day, "--format", "csv").stdout)
    assert len(kept) == 3
    later, totals = parse(freelancer.run("statement", "--all", "--from", tomorrow, "--format", "csv").stdout)
    assert later == [] and totals == []
    earlier, _ = parse(freelancer.run("statement", "--all", "--to", (today - timedelta(days=1)).isoformat(),
                                      "--format", "csv").stdout)
    assert earlier == []
    page = tmp_path / "statement.html"
    result = freelancer.run("statement", "--all", "--format", "html", "--out", str(page))
    assert result.stdout == "" and f"wrote a statement of 3 tasks to {page}" in result.stderr
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "Brand refresh" in html and tx in html
    assert "Logo draft" in html and "0.008 ETH" in html and "@media print" in html and "<script" not in html
    offline = client.run(*OFFLINE, "statement", channel, "--format", "csv")
    assert "no node" in offline.stderr and len(parse(offline.stdout)[0]) == 3


@pytest.mark.parametrize("args, fragment", [
    ((), "give CHANNEL or --all"),
    (("--all", "CHANNEL"), "give CHANNEL or --all"),
    (("--all", "--from", "2025-02-01", "--to", "2025-01-31"), "is after --to"),
    (("--all", "--from", "01/02/2025"), "'01/02/2025' does not match the format"),
])
def test_statement_usage_errors(people, args, fragment):
    client, freelancer, _ = people
    channel = client.open(freelancer.address, "0.01 ETH")
    args = tuple(channel if a == "CHANNEL" else a for a in args)
    result = client.run("statement", *args, "--format", "csv", ok=False)
    assert result.exit_code == 2 and fragment in result.output, result.output


def test_statement_needs_a_format(people):
    client, freelancer, _ = people
    channel = client.open(freelancer.address, "0.01 ETH")
    result = client.run("statement", channel, ok=False)
    assert result.exit_code == 2 and "--format" in result.output
    assert json.loads(client.run("status", "--json").stdout)[0]["channel"] == channel
