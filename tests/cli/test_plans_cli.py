"""Agreed plans through the command, as a freelancer and a client type it (issue 14): the freelancer
proposes plan.toml, the client accepts it (or declines, signing nothing), the channel is opened
under it, tasks are paid at the plan's price (and only with --unplanned at another), feedback
travels both ways, amendments are accepted or refused, and a plan for another escrow is refused."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from clihelpers import PAYMENT, Person, assert_clean_error

from micropay.feedback import parse_feedback
from micropay.plan import parse_plan
from micropay.plan_source import MAX_SOURCE_BYTES
from micropay.store import VoucherStore

PLAN_TEXT = re.compile(r"mpl1[a-z2-7]+")
FEEDBACK_TEXT = re.compile(r"mpf1[a-z2-7]+")
MILLI = 10**15
TASKS = (("logo", "Logo draft", "0.005 ETH"), ("palette", "Colour palette", "0.003 ETH"),
         ("cards", "Business cards", "0.006 ETH"))


def write_plan(path: Path, client: str, *, tasks=TASKS, escrow: str | None = None) -> Path:
    """A plan.toml as a freelancer writes one."""
    lines = ['title = "Brand refresh"', f'client = "{client}"']
    if escrow:
        lines.append(f'escrow = "{escrow}"')
    for task_id, title, price, *more in tasks:
        lines += ["", "[[tasks]]", f'id = "{task_id}"', f'title = "{title}"', f'price = "{price}"', *more]
    path.write_text("\n".join(lines) + "\n")
    return path


def one(pattern: re.Pattern[str], text: str) -> str:
    """The only match of ``pattern`` in ``text`` (the whole of stdout, but for its newline)."""
    assert pattern.fullmatch(text.strip()), text
    return text.strip()


def stored_versions(person: Person) -> list[tuple[int, bool]]:
    """(version, in force) of every plan version in ``person``'s store."""
    with VoucherStore(person.home / "micropay.db") as store:
        return [(s.signed.plan.version, s.signed.in_force) for root in store.plan_roots() for s in store.plans(root)]


def ledger(person: Person) -> list[tuple[str, int, bytes]]:
    """(task, amount, deliverable) of every task paid on ``person``'s one channel."""
    with VoucherStore(person.home / "micropay.db") as store:
        (record,) = store.channels()
        return [(e.receipt.task_id, e.receipt.amount, e.receipt.deliverable) for e in store.ledger(record.ref)]


class Agreed:
    """A client and a freelancer who agreed the three-task plan: its texts and files."""

    def __init__(self, people, tmp_path: Path) -> None:
        self.client, self.freelancer, self.escrow = people
        self.source = write_plan(tmp_path / "plan.toml", self.client.address)
        self.proposal = one(PLAN_TEXT, self.freelancer.run("--escrow", self.escrow, "plan", "propose",
                                                           str(self.source)).stdout)
        self.accepted = one(PLAN_TEXT, self.client.run("plan", "accept", self.proposal, "--yes").stdout)
        self.hash = "0x" + parse_plan(self.accepted).hash.hex()
        assert self.freelancer.run("plan", "receive", self.accepted).stdout == (
            "plan 'Brand refresh' version 1 stored: in force\n")

    def open(self, *args: str) -> str:
        return self.client.json("open", "--plan", self.accepted, *args)["channel"]

    def paid(self, channel: str, task: str, *args: str) -> str:
        """The client pays ``task`` and the freelancer receives it: the freelancer's line."""
        payment = one(PAYMENT, self.client.run("pay", channel, *args, task).stdout)
        return self.freelancer.run("receive", payment).stdout


@pytest.fixture
def agreed(people, tmp_path) -> Agreed:
    return Agreed(people, tmp_path)


# --- propose ---------------------------------------------------------------------------------------

def test_propose_prints_the_proposal_and_what_it_says(people, tmp_path):
    client, freelancer, escrow = people
    source = write_plan(tmp_path / "plan.toml", client.address)
    result = freelancer.run("--escrow", escrow, "plan", "propose", str(source))
    signed = parse_plan(one(PLAN_TEXT, result.stdout))
    plan = signed.plan
    assert (plan.payer, plan.payee, plan.escrow, plan.version) == (client.address, freelancer.address, escrow, 1)
    assert [(t.id, t.price) for t in plan.tasks] == [("logo", 5 * MILLI), ("palette", 3 * MILLI), ("cards", 6 * MILLI)]
    assert signed.signature("payee") and not signed.signature("payer") and not signed.in_force
    for line in ("- logo: 'Logo draft', 0.005 ETH", "- palette: 'Colour palette', 0.003 ETH",
                 "- cards: 'Business cards', 0.006 ETH", "total 0.014 ETH", "send the text above to the client"):
        assert line in result.stderr
    assert stored_versions(freelancer) == [(1, False)]


def test_propose_writes_the_json_to_out_and_may_take_the_escrow_from_the_file(people, tmp_path):
    client, freelancer, escrow = people
    source = write_plan(tmp_path / "plan.toml", client.address, escrow=escrow)  # no --escrow needed
    out = tmp_path / "proposal.json"
    result = freelancer.run("plan", "propose", str(source), "--out", str(out))
    assert result.stdout == "" and f"send the file {out} to the client" in result.stderr
    document = json.loads(out.read_text())
    assert document["micropay"] == "plan" and document["signatures"]["payer"] == ""
    assert parse_plan(out.read_text()).plan.escrow == escrow
    accepted = client.run("plan", "accept", str(out), "--yes").stdout  # a file is read like its text
    assert parse_plan(one(PLAN_TEXT, accepted)).in_force


def test_propose_without_an_escrow_says_how_to_name_one(people, tmp_path):
    client, freelancer, _ = people
    source = write_plan(tmp_path / "plan.toml", client.address)
    assert_clean_error(freelancer.run("plan", "propose", str(source), ok=False), "which escrow?", "--escrow")
    assert stored_versions(freelancer) == []


def test_propose_refuses_a_mistaken_file_in_one_line_naming_the_field(people, tmp_path):
    client, freelancer, escrow = people
    unpriced = write_plan(tmp_path / "unpriced.toml", client.address, tasks=(("logo", "Logo", "5"),))
    assert_clean_error(freelancer.run("--escrow", escrow, "plan", "propose", str(unpriced), ok=False),
                       "task 1 (logo)", "has no unit", '"5 ETH"')
    broken = tmp_path / "broken.toml"
    broken.write_text('title = "Brand refresh\n')
    assert_clean_error(freelancer.run("--escrow", escrow, "plan", "propose", str(broken), ok=False),
                       "not valid TOML")
    assert stored_versions(freelancer) == []


def _limit_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


@pytest.mark.skipif(not Path("/dev/zero").exists() or sys.platform != "linux", reason="needs Linux's /dev/zero")
def test_propose_reads_no_more_of_a_file_than_the_limit(tmp_path):
    # An endless file is refused, not read forever. In a process of its own with bounded memory:
    # a command that read the whole file would fail here, not take the machine's memory with it.
    result = subprocess.run([sys.executable, "-m", "micropay", "--home", str(tmp_path), "plan", "propose",
                             "/dev/zero"], capture_output=True, text=True, timeout=120, check=False,
                            preexec_fn=_limit_memory, stdin=subprocess.DEVNULL)
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr == (f"error: the plan file is {MAX_SOURCE_BYTES + 1:,} bytes, above the limit of "
                             f"{MAX_SOURCE_BYTES:,}\n")


# --- accept ----------------------------------------------------------------------------------------

def test_declining_shows_every_task_and_price_and_signs_nothing(people, tmp_path):
    client, freelancer, escrow = people
    dated = (("logo", "Logo draft", "0.005 ETH", "due = 2026-12-01", 'criteria = "Three options, SVG"'), *TASKS[1:])
    source = write_plan(tmp_path / "plan.toml", client.address, tasks=dated)
    proposal = one(PLAN_TEXT, freelancer.run("--escrow", escrow, "plan", "propose", str(source)).stdout)
    declined = client.run("plan", "accept", proposal, input="n\n", ok=False)
    assert declined.exit_code == 1 and "sign this plan?" in declined.stderr
    for shown in ("logo: 'Logo draft', 0.005 ETH, due 2026-12-01 23:59 UTC\n      accepted when: Three options, SVG",
                  "palette: 'Colour palette', 0.003 ETH",
                  "cards: 'Business cards', 0.006 ETH", "total 0.014 ETH",
                  f"{client.address} pays {freelancer.address}"):
        assert shown in declined.stderr
    assert not PLAN_TEXT.search(declined.stdout)
    assert stored_versions(client) == []  # no in-force plan: nothing at all
    assert_clean_error(client.run("open", "--plan", proposal, ok=False), "not signed by both sides")
    assert (1, True) not in stored_versions(client)
    answered = client.run("plan", "accept", proposal, input="y\n")
    assert parse_plan(one(PLAN_TEXT, answered.stdout)).in_force
    assert stored_versions(client) == [(1, True)]


def test_accept_signs_as_the_client_and_the_freelancer_receives_it(people, tmp_path):
    client, freelancer, escrow = people
    source = write_plan(tmp_path / "plan.toml", client.address)
    proposal = one(PLAN_TEXT, freelancer.run("--escrow", escrow, "plan", "propose", str(source)).stdout)
    out = tmp_path / "accepted.json"
    result = client.run("plan", "accept", proposal, "--yes", "--out", str(out))
    assert result.stdout == "" and "is in force" in result.stderr and f"open --plan {out}" in result.stderr
    accepted = parse_plan(out.read_text())
    assert accepted.in_force and accepted.hash == parse_plan(proposal).hash
    assert stored_versions(client) == [(1, True)] and stored_versions(freelancer) == [(1, False)]
    assert freelancer.run("plan", "receive", str(out)).stdout == "plan 'Brand refresh' version 1 stored: in force\n"
    assert stored_versions(freelancer) == [(1, True)]
    again = freelancer.run("plan", "receive", accepted.encode()).stdout  # the text form too; twice is harmless
    assert again == "plan 'Brand refresh' version 1 already held: in force\n"
    assert stored_versions(freelancer) == [(1, True)]


def test_a_proposal_received_instead_of_accepted_waits_for_accept(people, tmp_path):
    client, freelancer, escrow = people
    source = write_plan(tmp_path / "plan.toml", client.address)
    proposal = one(PLAN_TEXT, freelancer.run("--escrow", escrow, "plan", "propose", str(source)).stdout)
    assert "proposed, waiting for your `micropay plan accept`" in client.run("plan", "receive", proposal).stdout
    assert stored_versions(client) == [(1, False)]


def test_who_cannot_accept_is_refused_before_being_asked(agreed, w3, tmp_path):
    stranger = Person(w3, tmp_path, "stranger")
    result = stranger.run("--escrow", agreed.escrow, "plan", "accept", agreed.proposal, input="y\n", ok=False)
    assert "sign this plan?" not in result.output
    assert_clean_error(result, "the plan is between", stranger.address)
    own = agreed.freelancer.run("plan", "accept", agreed.proposal, input="y\n", ok=False)
    assert "sign this plan?" not in own.output
    assert_clean_error(own, "this is your own proposal", "send it to the other side")
    assert stored_versions(stranger) == []


def test_a_plan_for_another_escrow_is_refused(people, tmp_path, w3):
    client, freelancer, escrow = people
    other = Person(w3, tmp_path, "other").run("deploy").stdout.strip()
    assert other != escrow
    source = write_plan(tmp_path / "plan.toml", client.address)
    proposal = one(PLAN_TEXT, freelancer.run("--escrow", escrow, "plan", "propose", str(source)).stdout)
    refused = assert_clean_error(client.run("--escrow", other, "plan", "accept", proposal, "--yes", ok=False),
                                 f"the plan is for escrow {escrow}", f"not --escrow {other}")
    assert "sign" not in refused
    assert_clean_error(client.run("--escrow", other, "open", "--plan", proposal, ok=False), f"--escrow {other}")
    assert stored_versions(client) == []
    assert_clean_error(freelancer.run("--escrow", other, "plan", "propose",
                                      str(write_plan(tmp_path / "named.toml", client.address, escrow=escrow)),
                                      ok=False), escrow, f"--escrow {other}")


# --- open --plan -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "deposit", "left"), [
    ((), 14 * MILLI, None),
    (("--cover", "2"), 8 * MILLI, "top up 0.006 ETH later"),
    (("--deposit", "0.004 ETH"), 4 * MILLI, "top up 0.01 ETH later"),
])
def test_open_under_the_plan_locks_its_total_or_what_is_asked(agreed, args, deposit, left):
    human = agreed.client.run("open", "--plan", agreed.accepted, *args).stdout
    channel = re.match(r"channel (0x[0-9a-f]{64})\n", human)[1]
    assert f"for freelancer {agreed.freelancer.address} under plan 'Brand refresh'" in human
    assert (left in human) if left else ("top up" not in human)
    with VoucherStore(agreed.client.home / "micropay.db") as store:
        (record,) = store.channels()
    assert ("0x" + record.id.hex(), record.deposit) == (channel, deposit)
    assert "0x" + record.terms.hex() == agreed.hash  # the plan's hash is the channel's terms
    assert record.key.payee == agreed.freelancer.address


def test_open_under_the_plan_prints_json_and_refuses_what_does_not_fit(agreed, tmp_path):
    opened = agreed.client.json("open", "--plan", agreed.accepted, "--cover", "1")
    assert (opened["deposit"], opened["plan"]) == (str(5 * MILLI), agreed.hash)
    both = agreed.client.run("open", "--plan", agreed.accepted, "--cover", "1", "--deposit", "0.01 ETH", ok=False)
    assert both.exit_code == 2 and "not both" in both.output
    assert_clean_error(agreed.client.run("open", "--plan", agreed.accepted, "--cover", "4", ok=False),
                       "cover 1 to 3 tasks")
    usage = agreed.client.run("open", agreed.freelancer.address, "0.01 ETH", "--plan", agreed.accepted, ok=False)
    assert usage.exit_code == 2 and "drop PAYEE" in usage.output
    assert_clean_error(agreed.freelancer.run("open", "--plan", agreed.accepted, ok=False),
                       f"the plan is paid by {agreed.client.address}, not by this account")
    assert len(agreed.client.json("status")) == 1  # only the first open made a channel


# --- pay CHANNEL TASK ------------------------------------------------------------------------------

def test_pay_a_task_at_the_plans_price_and_the_freelancer_sees_its_plan(agreed):
    channel = agreed.open()
    result = agreed.client.run("pay", channel[:12], "logo")
    payment = one(PAYMENT, result.stdout)
    assert result.stderr == (f"paid 0.005 ETH to freelancer {agreed.freelancer.address} for 'logo'; 0.005 ETH paid "
                             "of 0.014 ETH, 0.009 ETH left. Send the line above to the freelancer.\n")
    received = agreed.freelancer.run("receive", payment).stdout
    assert received.startswith(f"+0.005 ETH from {agreed.client.address} for 'logo'; 0.005 ETH so far on channel ")
    assert f"the channel was opened under your plan 'Brand refresh' ({agreed.hash[:14]}…)" in received
    second = agreed.paid(channel, "palette")
    assert second.startswith("+0.003 ETH") and "plan" not in second  # said once, on the first payment
    assert ledger(agreed.freelancer) == [("logo", 5 * MILLI, bytes(32)), ("palette", 3 * MILLI, bytes(32))]


def test_a_freelancer_who_never_signed_the_plan_is_told_so(agreed, tmp_path):
    channel = agreed.open()
    payment = one(PAYMENT, agreed.client.run("pay", channel, "logo").stdout)
    elsewhere = agreed.freelancer.run("--store", str(tmp_path / "fresh.db"), "receive", payment).stdout
    assert elsewhere.startswith("+0.005 ETH") and "are not a plan you signed" in elsewhere


def test_pay_refuses_what_the_plan_does_not_say_unless_unplanned(agreed):
    channel = agreed.open("--deposit", "0.02 ETH")
    agreed.paid(channel, "logo")
    client = agreed.client

    refusals = {
        ("poster",): ("no task 'poster'", "logo, palette, cards", "add --unplanned and an AMOUNT"),
        ("logo",): ("task 'logo' is already paid under this plan", "add --unplanned to pay it again"),
        ("0.004 ETH", "palette"): ("task 'palette' is priced 0.003 ETH in the plan, not 0.004 ETH",
                                   "add --unplanned to pay another price"),
        ("--unplanned", "poster"): ("'poster' is not in the plan", "needs an amount"),
    }
    for args, fragments in refusals.items():
        result = client.run("pay", channel, *args, ok=False)
        message = assert_clean_error(result, *fragments)
        assert result.stdout == "" and result.stderr == message + "\n"  # one line, no payment
        assert "wei" not in message and "pay it as unplanned" not in message
    (row,) = client.json("status")
    assert row["paid"] == str(5 * MILLI)  # nothing was signed

    assert agreed.paid(channel, "palette", "0.003 ETH").startswith("+0.003 ETH")  # the plan's own price: fine
    assert agreed.paid(channel, "cards", "--unplanned", "0.004 ETH").startswith("+0.004 ETH")
    assert agreed.paid(channel, "poster", "--unplanned", "0.001 ETH").startswith("+0.001 ETH")
    assert agreed.paid(channel, "logo", "--unplanned").startswith("+0.005 ETH")  # again, at its price
    assert [(t, a) for t, a, _ in ledger(agreed.freelancer)] == [
        ("logo", 5 * MILLI), ("palette", 3 * MILLI), ("cards", 4 * MILLI), ("poster", MILLI), ("logo", 5 * MILLI)]


def test_pay_needs_an_amount_on_a_channel_without_a_plan(people):
    client, freelancer, _ = people
    channel = client.open(freelancer.address)
    usage = client.run("pay", channel, "logo", ok=False)
    assert usage.exit_code == 2 and "was not opened under a plan: give AMOUNT TASK" in usage.output
    assert client.pay(channel, "0.001 ETH", "logo").startswith("mpp1")


# --- feedback --------------------------------------------------------------------------------------

def test_delivered_changes_requested_and_approved_travel_both_ways(agreed, tmp_path):
    client, freelancer = agreed.client, agreed.freelancer
    channel = agreed.open()
    agreed.paid(channel, "logo")  # the freelancer now holds the channel
    drawing = tmp_path / "cards.pdf"
    drawing.write_bytes(b"%PDF business cards, first draft" * 1000)

    result = freelancer.run("plan", "delivered", channel[:12], "cards", "--file", str(drawing), "--note", "v1")
    delivered = one(FEEDBACK_TEXT, result.stdout)
    assert "task 'cards' marked delivered" in result.stderr
    feedback = parse_feedback(delivered).feedback
    assert feedback.deliverable == hashlib.sha256(drawing.read_bytes()).digest()
    assert (feedback.task_id, feedback.status, feedback.note) == ("cards", "delivered", "v1")
    assert "0x" + feedback.plan.hex() == agreed.hash
    taken = client.run("receive", delivered).stdout  # where payments go: it is recognised
    assert re.fullmatch(r"feedback stored: task 'cards' delivered \(\d{4}-\d\d-\d\d \d\d:\d\d UTC\): 'v1'\n", taken)

    changes = one(FEEDBACK_TEXT, client.run("plan", "request-changes", channel, "cards", "--note",
                                            "a bolder font").stdout)
    assert parse_feedback(changes).feedback.status == "changes requested"
    assert "task 'cards' changes requested" in freelancer.run("plan", "receive", changes).stdout
    assert "'a bolder font'" in freelancer.run("plan", "receive", changes).stdout

    second = "0x" + "22" * 32
    again = one(FEEDBACK_TEXT, freelancer.run("plan", "delivered", channel, "cards", "--hash", second).stdout)
    assert "task 'cards' delivered" in client.run("plan", "receive", again).stdout
    approved = one(FEEDBACK_TEXT, client.run("plan", "approve", channel, "cards").stdout)
    assert "task 'cards' approved" in freelancer.run("receive", approved).stdout

    agreed.paid(channel, "cards")  # the payment names the latest delivery
    assert ledger(agreed.freelancer)[-1] == ("cards", 6 * MILLI, bytes.fromhex("22" * 32))


def test_feedback_is_refused_from_the_wrong_side_or_before_delivery(agreed, tmp_path):
    client, freelancer = agreed.client, agreed.freelancer
    channel = agreed.open()
    agreed.paid(channel, "logo")
    assert_clean_error(client.run("plan", "delivered", channel, "cards", ok=False),
                       "'delivered' is given by the plan's payee")
    assert_clean_error(freelancer.run("plan", "approve", channel, "cards", ok=False),
                       "'approved' is given by the plan's payer")
    assert_clean_error(client.run("plan", "approve", channel, "cards", ok=False), "has not been delivered")
    assert_clean_error(freelancer.run("plan", "delivered", channel, "poster", ok=False), "'poster' is not in the plan")
    both = freelancer.run("plan", "delivered", channel, "cards", "--file", str(agreed.source), "--hash",
                          "0x" + "11" * 32, ok=False)
    assert both.exit_code == 2 and "not both" in both.output
    assert_clean_error(freelancer.run("plan", "delivered", channel, "cards", "--hash", "0x1234", ok=False),
                       "--hash must be 32 bytes")
    with VoucherStore(client.home / "micropay.db") as store:
        assert store.feedback(bytes.fromhex(agreed.hash[2:])) == []


# --- amend -----------------------------------------------------------------------------------------

def test_an_amendment_adds_a_task_and_reprices_an_unpaid_one_once_the_other_side_accepts(agreed, tmp_path):
    client, freelancer = agreed.client, agreed.freelancer
    channel = agreed.open("--deposit", "0.02 ETH")
    agreed.paid(channel, "logo")
    changed = (*TASKS[:2], ("cards", "Business cards", "0.007 ETH"), ("social", "Social media kit", "0.002 ETH"))
    source = write_plan(tmp_path / "plan-v2.toml", client.address.lower(), tasks=changed)  # any case of the client
    result = freelancer.run("plan", "amend", channel[:12], str(source))
    amendment = parse_plan(one(PLAN_TEXT, result.stdout))
    assert (amendment.plan.version, amendment.plan.proposer, amendment.in_force) == (2, freelancer.address, False)
    assert "- social: 'Social media kit', 0.002 ETH" in result.stderr and "total 0.017 ETH" in result.stderr
    assert_clean_error(client.run("pay", channel, "social", ok=False), "no task 'social'")  # not in force yet

    accepted = client.run("plan", "accept", amendment.encode(), "--yes")
    assert "version 2" in accepted.stderr and "cards: 'Business cards', 0.007 ETH" in accepted.stderr
    assert "open --plan" not in accepted.stderr  # the channel is open already
    assert freelancer.run("plan", "receive", one(PLAN_TEXT, accepted.stdout)).stdout == (
        "plan 'Brand refresh' version 2 stored: in force\n")
    assert stored_versions(client) == stored_versions(freelancer) == [(1, True), (2, True)]

    assert_clean_error(client.run("pay", channel, "0.006 ETH", "cards", ok=False), "priced 0.007 ETH in the plan")
    assert agreed.paid(channel, "cards").startswith("+0.007 ETH")
    assert agreed.paid(channel, "social").startswith("+0.002 ETH")


def test_the_client_may_amend_by_the_plans_hash(agreed, tmp_path):
    changed = (*TASKS, ("social", "Social media kit", "0.002 ETH"))
    source = write_plan(tmp_path / "plan-v2.toml", agreed.client.address, tasks=changed)
    amendment = one(PLAN_TEXT, agreed.client.run("plan", "amend", agreed.hash, str(source)).stdout)
    assert parse_plan(amendment).plan.proposer == agreed.client.address
    accepted = one(PLAN_TEXT, agreed.freelancer.run("plan", "accept", amendment, "--yes").stdout)
    assert "version 2 stored: in force" in agreed.client.run("receive", accepted).stdout
    assert stored_versions(agreed.client) == [(1, True), (2, True)]


@pytest.mark.parametrize(("tasks", "refusal"), [
    ((("logo", "Logo draft", "0.004 ETH"), *TASKS[1:]), "task 'logo' is paid: an amendment cannot re-price it"),
    (TASKS[1:], "task 'logo' is paid: an amendment cannot remove it"),
])
def test_an_amendment_that_changes_a_paid_task_changes_nothing(agreed, tmp_path, tasks, refusal):
    channel = agreed.open()
    agreed.paid(channel, "logo")
    source = write_plan(tmp_path / "plan-v2.toml", agreed.client.address, tasks=tasks)
    for person in (agreed.freelancer, agreed.client):
        result = person.run("plan", "amend", channel, str(source), ok=False)
        assert_clean_error(result, refusal)
        assert result.stdout == ""
        assert stored_versions(person) == [(1, True)]
    assert agreed.paid(channel, "palette").startswith("+0.003 ETH")  # the plan in force is still version 1


def test_an_amendment_must_keep_the_client(agreed, tmp_path, w3):
    someone = Person(w3, tmp_path, "someone", fund=0).address
    source = write_plan(tmp_path / "plan-v2.toml", someone)
    assert_clean_error(agreed.freelancer.run("plan", "amend", agreed.hash, str(source), ok=False),
                       f"the file names client {someone}", agreed.client.address)
    assert stored_versions(agreed.freelancer) == [(1, True)]


# --- show ------------------------------------------------------------------------------------------

def test_show_says_who_signed_and_signs_nothing(agreed, tmp_path):
    proposal = agreed.client.run("plan", "show", agreed.proposal).stdout
    assert "- logo: 'Logo draft', 0.005 ETH" in proposal and "total 0.014 ETH" in proposal
    assert "signed by: payee; not in force yet" in proposal
    shown = agreed.client.run("plan", "show", agreed.accepted).stdout
    assert "signed by: payer, payee; in force" in shown and f"hash {agreed.hash}" in shown
    document = agreed.client.json("plan", "show", agreed.accepted)
    assert (document["hash"], document["inForce"], document["plan"]["version"]) == (agreed.hash, True, 1)
    assert [t["price"] for t in document["plan"]["tasks"]] == [str(5 * MILLI), str(3 * MILLI), str(6 * MILLI)]

    tampered = json.loads(parse_plan(agreed.accepted).to_json())
    tampered["plan"]["tasks"][0]["price"] = str(MILLI)  # the client's copy says the logo is cheaper
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(tampered))
    assert_clean_error(agreed.client.run("plan", "show", str(forged), ok=False))
    assert_clean_error(agreed.freelancer.run("plan", "receive", str(forged), ok=False))
    assert_clean_error(agreed.client.run("open", "--plan", str(forged), ok=False))
    assert agreed.client.json("status") == []
    assert_clean_error(agreed.client.run("plan", "show", "mpl1notaplan", ok=False))


def test_an_amendment_from_a_file_without_an_inbox_keeps_the_plans(people, tmp_path):
    client, freelancer, escrow = people
    source = write_plan(tmp_path / "plan.toml", client.address)
    first = parse_plan(one(PLAN_TEXT, freelancer.run("--escrow", escrow, "plan", "propose", str(source), "--inbox",
                                                     "https://pay.freelancer.example").stdout))
    accepted = client.run("plan", "accept", first.encode(), "--yes", "--no-deliver")
    freelancer.run("plan", "receive", one(PLAN_TEXT, accepted.stdout))
    amendment = parse_plan(one(PLAN_TEXT, freelancer.run("plan", "amend", "0x" + first.hash.hex(),
                                                         str(source)).stdout))
    assert amendment.plan.version == 2 and amendment.plan.inbox == "https://pay.freelancer.example"
