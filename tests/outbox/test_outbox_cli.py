"""The outbox as people type it: `open`/`pay --inbox`, what `pay` says about the delivery, the
undelivered payments `status` lists, `deliver`, and a plan's inbox becoming its channel's."""

from __future__ import annotations

import re

from outbox_people import last_error_line

from micropay.plan import parse_plan

PLAN_TEXT = re.compile(r"mpl1[a-z2-7]+")


def test_pay_with_an_inbox_says_the_freelancer_holds_it(people, freelancer_inbox):
    client, freelancer, _ = people
    freelancer_inbox.start()
    channel = client.json("open", freelancer.address, "0.05 ETH")["channel"]
    result = client.run("pay", channel, "0.001 ETH", "logo", "--inbox", freelancer_inbox.url)
    assert result.stdout.startswith("mpp1")  # the payment text is still printed
    paid, delivered = result.stderr.strip().splitlines()
    assert "Send the line above" not in paid
    assert delivered == (f"delivered: the freelancer's inbox holds it (its acknowledgment, signed for "
                         f"{freelancer.address} by its key or a key it delegated to, verified)")
    assert client.inbox_of(channel) == freelancer_inbox.url  # kept for the next payments
    second = client.run("pay", channel, "0.002 ETH", "palette")
    assert second.stderr.strip().splitlines()[-1].startswith("delivered: ")
    assert [e.receipt.task_id for e in freelancer_inbox.payee.ledger(bytes.fromhex(channel[2:]))] == [
        "logo", "palette"]
    assert client.run("status").stdout.count("not delivered") == 0


def test_a_payment_the_inbox_cannot_take_is_queued_listed_and_delivered_later(people, freelancer_inbox):
    client, freelancer, _ = people
    url = freelancer_inbox.url  # nothing listens there yet
    opened = client.json("open", freelancer.address, "0.05 ETH", "--inbox", url)
    channel = opened["channel"]
    assert opened["inbox"] == url
    first = client.run("pay", channel, "0.001 ETH", "logo")
    assert first.stderr.strip().splitlines()[-1] == (
        f"not delivered yet: 1 payment(s) queued for {url} (cannot reach the inbox at {url}: connection refused or "
        "the host is unreachable); `micropay deliver` retries, and so does your next pay")
    client.run("pay", channel, "0.002 ETH", "palette")

    status = client.run("status").stdout
    assert (f"channel {channel[:12]}: 2 payment(s) of 0.003 ETH not delivered to {url}: cannot reach the inbox"
            in status), status
    (row,) = client.json("status")
    assert (row["undelivered"]["count"], row["undelivered"]["amount"]) == (2, str(3 * 10**15))

    down = client.run("deliver", ok=False)
    assert down.exit_code == 1 and f"2 payment(s) still queued for {url}: cannot reach" in down.stdout
    assert last_error_line(down) == "error: 2 payment(s) still queued: run `micropay deliver` again later"

    freelancer_inbox.start()
    delivered = client.run("deliver", channel)
    assert delivered.stdout.strip() == (f"channel {channel[:12]}: 2 payment(s) delivered; the freelancer holds "
                                        "0.003 ETH (acknowledgment verified)")
    assert [e.receipt.task_id for e in freelancer_inbox.payee.ledger(bytes.fromhex(channel[2:]))] == [
        "logo", "palette"]
    assert client.run("deliver").stdout.strip() == "nothing to deliver: no payment is queued"
    assert client.json("deliver") == []
    assert "not delivered" not in client.run("status").stdout
    assert client.json("status")[0]["undelivered"] is None


def test_deliver_json_reports_each_payment(people, freelancer_inbox):
    client, freelancer, _ = people
    channel = client.json("open", freelancer.address, "0.05 ETH", "--inbox", freelancer_inbox.url)["channel"]
    client.run("pay", channel, "0.001 ETH", "logo")
    freelancer_inbox.start()
    (item,) = client.json("deliver")
    assert (item["channel"], item["amount"], item["outcome"], item["error"]) == (channel, str(10**15), "held", None)
    assert item["acknowledgment"]["signer"] == freelancer.address


def test_a_bad_inbox_url_is_refused_before_anything_is_sent(people):
    client, freelancer, _ = people
    refused = client.run("open", freelancer.address, "0.05 ETH", "--inbox", "ftp://example.org", ok=False)
    assert "http:// or https://" in last_error_line(refused)
    assert client.json("status") == []  # no channel was opened
    channel = client.json("open", freelancer.address, "0.05 ETH")["channel"]
    refused = client.run("pay", channel, "0.001 ETH", "x", "--inbox", "https://u:p@example.org", ok=False)
    assert "user name or password" in last_error_line(refused)
    assert client.json("status")[0]["paid"] == "0"


def write_plan(path, client, inbox=None):
    lines = ['title = "Brand refresh"', f'client = "{client}"']
    if inbox:
        lines.append(f'inbox = "{inbox}"')
    lines += ["", "[[tasks]]", 'id = "logo"', 'title = "Logo draft"', 'price = "0.005 ETH"']
    path.write_text("\n".join(lines) + "\n")
    return path


def agree(client, freelancer, escrow, source, *propose_args):
    proposal = freelancer.run("--escrow", escrow, "plan", "propose", str(source), *propose_args)
    accepted = client.run("plan", "accept", proposal.stdout.strip(), "--yes").stdout.strip()
    assert PLAN_TEXT.fullmatch(accepted)
    return accepted, proposal.stderr


def test_the_plan_files_inbox_becomes_the_channels_after_open_plan(people, tmp_path, freelancer_inbox):
    client, freelancer, escrow = people
    freelancer_inbox.start()
    source = write_plan(tmp_path / "plan.toml", client.address, inbox=freelancer_inbox.url + "/")
    accepted, said = agree(client, freelancer, escrow, source)
    assert parse_plan(accepted).plan.inbox == freelancer_inbox.url  # checked and tidied when proposed
    assert f"payments are delivered to {freelancer_inbox.url}" in said
    opened = client.json("open", "--plan", accepted)
    assert opened["inbox"] == freelancer_inbox.url == client.inbox_of(opened["channel"])
    result = client.run("pay", opened["channel"], "logo")  # at the plan's price, delivered by itself
    assert result.stderr.strip().splitlines()[-1].startswith("delivered: the freelancer's inbox holds it")


def test_open_plan_inbox_and_propose_inbox_override_the_file(people, tmp_path):
    client, freelancer, escrow = people
    source = write_plan(tmp_path / "plan.toml", client.address, inbox="https://old.example.org")
    accepted, _ = agree(client, freelancer, escrow, source, "--inbox", "https://new.example.org/alice")
    assert parse_plan(accepted).plan.inbox == "https://new.example.org/alice"
    opened = client.json("open", "--plan", accepted, "--inbox", "https://mine.example.org")
    assert client.inbox_of(opened["channel"]) == "https://mine.example.org"


def test_a_plan_file_with_a_bad_inbox_is_refused_naming_the_field(people, tmp_path):
    client, freelancer, escrow = people
    source = write_plan(tmp_path / "plan.toml", client.address, inbox="file:///etc/passwd")
    refused = freelancer.run("--escrow", escrow, "plan", "propose", str(source), ok=False)
    assert last_error_line(refused).startswith("error: inbox: the inbox URL must be http:// or https://")
