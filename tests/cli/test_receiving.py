"""The freelancer's side of the command: `receive` and `redeem` as a newcomer and a busy
freelancer use them (issue 12, items 9, 10, 11, 15 and 17)."""

import re

from clihelpers import PASSWORD, PAYMENT, assert_clean_error
from eth_account import Account

from micropay import keystore
from micropay.ledger import Ledger, TaskReceipt
from micropay.payment import Payment, parse_payment
from micropay.voucher import sign_voucher


def forged(chain_id, escrow, task="forged", amount=10**15):
    """A well-formed, signed payment for a channel that does not matter here (chain and escrow chosen)."""
    ledger = Ledger().append(TaskReceipt(task, amount))
    voucher = sign_voucher(Account.create(), chain_id=chain_id, escrow=escrow, channel_id=b"\x42" * 32,
                           amount=ledger.total, ledger_root=ledger.root)
    return Payment.of(voucher, tuple(ledger.receipts), 0).encode()


# --- item 9: the payment names its escrow --------------------------------------------------------

def test_receive_needs_no_escrow_and_no_deployment(people):
    client, freelancer, _ = people
    assert not (freelancer.home / "deployments.json").exists()
    channel = client.open(freelancer.address)
    out = freelancer.run("receive", client.pay(channel, "0.01 ETH", "logo")).stdout
    assert out == f"+0.01 ETH from {client.address} for 'logo'; 0.01 ETH so far on channel {channel[:12]}\n"
    # ...and so do the commands after it in the README, with no --escrow either
    assert freelancer.json("settle", "--dry-run")["gross"] == str(10**16)


def test_receive_json_names_each_payments_chain_and_escrow(people, w3):
    client, freelancer, escrow = people
    channel = client.open(freelancer.address)
    (line,) = freelancer.json("receive", client.pay(channel, "0.01 ETH", "logo"))
    assert (line["outcome"], line["chain"], line["escrow"]) == ("new", w3.eth.chain_id, escrow)


def test_receive_checks_the_node_is_on_the_payments_chain(people, w3):
    _, freelancer, escrow = people
    result = freelancer.run("receive", forged(1, escrow), ok=False)
    assert result.exit_code == 1
    assert result.stdout.startswith(f"rejected: this payment is for chain 1, but the node at None is on chain "
                                    f"{w3.eth.chain_id}")


def test_receive_checks_the_code_at_the_payments_escrow(people, token, w3):
    _, freelancer, _ = people
    not_escrow = freelancer.run("receive", forged(w3.eth.chain_id, token.address), ok=False)
    assert "rejected: the contract at" in not_escrow.stdout and "not the micropay escrow" in not_escrow.stdout
    nothing = freelancer.run("receive", forged(w3.eth.chain_id, "0x" + "77" * 20), ok=False)
    assert "rejected: no contract at" in nothing.stdout


def test_a_receiver_is_never_told_to_deploy(people):
    client, freelancer, _ = people
    hint = assert_clean_error(freelancer.run("settle", ok=False), "receive one first", "--escrow")
    assert "deploy" not in hint
    assert "deploy" not in freelancer.run("watch", "--rounds", "1", ok=False).output
    # a client may deploy: the hint says so
    (client.home / "deployments.json").unlink()
    assert_clean_error(client.run("open", freelancer.address, "1 ETH", ok=False), "`micropay deploy`")


# --- item 10: every line, each reported ----------------------------------------------------------

def test_receive_file_reports_every_line_and_fails_only_for_rejected_ones(people, tmp_path):
    client, freelancer, _ = people
    channel = client.open(freelancer.address)
    first, second, third = (client.pay(channel, "0.01 ETH", f"task {n}") for n in range(3))
    payments = tmp_path / "payments.txt"
    payments.write_text("\n".join([first, second, "", first, second, "mpp1notapayment", third]) + "\n")
    result = freelancer.run("receive", "--file", str(payments), ok=False)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["line 1", "line 2", "line 4", "line 5", "line 6", "line 7"]
    assert lines[0].startswith("line 1: +0.01 ETH") and lines[1].startswith("line 2: +0.01 ETH")
    assert lines[2] == (f"line 4: older than held: this payment is for 0.01 ETH in all, 0.02 ETH is held on "
                        f"channel {channel[:12]}; ignored")
    assert lines[3].startswith("line 5: already held")
    assert lines[4].startswith("line 6: rejected: ")
    assert lines[5].startswith("line 7: +0.01 ETH") and lines[5].endswith(f"0.03 ETH so far on channel {channel[:12]}")
    assert result.stderr.splitlines()[-1] == ("error: 1 of 6 payment(s) rejected (see above); 3 new, 1 already held, "
                                              "1 older than held")

    payments.write_text("\n".join([first, second, third]) + "\n")  # re-running on the same file: all fine
    again = freelancer.run("receive", "--file", str(payments))
    assert [line.split(": ")[1] for line in again.stdout.splitlines()] == [
        "older than held", "older than held", "already held"]


def test_receive_from_stdin_goes_on_after_a_bad_line(people):
    client, freelancer, _ = people
    channel = client.open(freelancer.address)
    first, second = (client.pay(channel, "0.01 ETH", f"task {n}") for n in range(2))
    result = freelancer.json("receive", input=f"{first}\n{first[:-3]}abc\n{second}\n", ok=False)
    assert [(r["line"], r["outcome"]) for r in result] == [(1, "new"), (2, "rejected"), (3, "new")]
    assert "checksum" in result[1]["message"]


def test_redeem_reports_every_line_settles_once_and_exits_1_for_a_rejected_line(w3, people, tmp_path):
    client, freelancer, _ = people
    channel = client.open(freelancer.address)
    texts = [client.pay(channel, "0.002 ETH", f"page {n}") for n in range(4)]
    payments = tmp_path / "payments.txt"
    payments.write_text("\n".join([*texts[:2], texts[0], "garbage", *texts[2:]]) + "\n")
    before = w3.eth.get_balance(freelancer.address)
    result = freelancer.run("redeem", str(payments), ok=False)
    assert result.exit_code == 1
    assert [line.split(": ")[1][:5] for line in result.stdout.splitlines()[:6]] == [
        "+0.00", "+0.00", "older", "rejec", "+0.00", "+0.00"]
    (tx,) = re.findall(r"transaction (0x[0-9a-f]{64})", result.stdout)
    assert "claimed 0.008 ETH from 1 channel(s) in 1 transaction(s)" in result.stdout
    receipt = w3.eth.get_transaction_receipt(tx)
    assert w3.eth.get_balance(freelancer.address) - before == 8 * 10**15 - receipt.gasUsed * receipt.effectiveGasPrice

    payments.write_text("\n".join(texts) + "\n")  # all held now: nothing rejected, nothing to claim
    again = freelancer.run("redeem", str(payments))
    assert again.stdout.splitlines()[-1].startswith("nothing to claim")


# --- item 11: a lost payment line -----------------------------------------------------------------

def test_a_gap_says_what_to_ask_for_and_resend_fills_it(people):
    client, freelancer, _ = people
    channel = client.open(freelancer.address)
    texts = [client.pay(channel, "0.01 ETH", name) for name in ("a", "b", "c")]
    freelancer.run("receive", texts[0])
    gap = freelancer.run("receive", texts[2], ok=False)
    command = re.search(rf"ask the client to run `(micropay resend {channel} --since 1)`", gap.stdout)
    assert gap.exit_code == 1 and command, gap.stdout
    resent = client.run(*command[1].split()[1:])
    assert PAYMENT.fullmatch(resent.stdout.strip())
    assert "with tasks #2 to #3 as `micropay tasks` numbers them" in resent.stderr
    filled = freelancer.run("receive", resent.stdout.strip()).stdout
    assert filled.startswith(f"+0.02 ETH from {client.address} for 'b', 'c'; 0.03 ETH so far")

    bare = parse_payment(client.pay(channel, "0.01 ETH", "d")).voucher.encode()  # mpv1…: no receipts
    told = freelancer.run("receive", bare, ok=False).stdout
    assert "rejected: this is a bare voucher, which does not say which tasks it pays (you hold 3 task(s)" in told
    assert f"`micropay resend {channel} --since 3`" in told


# --- item 15: text from the other side ------------------------------------------------------------

def test_task_text_is_escaped_wherever_it_is_shown(people):
    client, freelancer, _ = people
    channel = client.open(freelancer.address)
    task = "fine\rREWRITTEN \x1b[2J\u202egnp.exe\u2066"
    text = client.run("pay", channel, "0.01 ETH", task, "--note", "n\x1b]0;title\x07").stdout.strip()
    received = freelancer.run("receive", text).stdout
    tasks = freelancer.run("tasks", channel).stdout
    for shown in (received, tasks):
        assert not any(c in shown for c in "\r\x1b\u202e\u2066\x07"), repr(shown)
        assert "fine\\rREWRITTEN \\x1b[2J\\u202egnp.exe\\u2066" in shown
    assert "n\\x1b]0;title\\x07" in tasks
    (entry,) = freelancer.json("tasks", channel)
    assert entry["task"] == task  # JSON carries the exact text (escaped by JSON itself)


# --- item 17: receive signs nothing ----------------------------------------------------------------

def test_receive_never_decrypts_the_key(people, monkeypatch):
    client, freelancer, _ = people
    channel = client.open(freelancer.address)
    text = client.pay(channel, "0.01 ETH", "logo")

    def no_decrypting(*args):
        raise AssertionError("receive decrypted the key file")

    monkeypatch.setattr(keystore, "load_account", no_decrypting)
    result = freelancer.run("receive", text, env={"MICROPAY_PASSWORD": "not the password"})
    assert result.stdout.startswith("+0.01 ETH") and "password" not in result.output


# --- item 17: rejections in the token's units and in dates -----------------------------------------

def test_rejections_are_in_eth_and_dates(people, w3, tester):
    client, freelancer, escrow = people
    channel = client.open(freelancer.address, "0.05 ETH", "--days", "1")
    key = keystore.load_account(next((client.home / "keystores").glob("*.json")), PASSWORD)
    ledger = Ledger().append(TaskReceipt("too much", 6 * 10**16))
    voucher = sign_voucher(key, chain_id=w3.eth.chain_id, escrow=escrow, channel_id=bytes.fromhex(channel[2:]),
                           amount=ledger.total, ledger_root=ledger.root)
    over = freelancer.run("receive", Payment.of(voucher, tuple(ledger.receipts), 0).encode(), ok=False).stdout
    assert over == (f"rejected: this payment promises 0.06 ETH but channel {channel[:12]} holds a deposit of 0.05 ETH:"
                    " ask the client to top up at least 0.01 ETH\n")

    (row,) = client.json("status")
    tester.time_travel(row["expiry"] - 1800)  # within the freelancer's one-hour safety margin
    late = freelancer.run("receive", client.pay(channel, "0.01 ETH", "late"), ok=False).stdout
    assert re.fullmatch(rf"rejected: channel {channel[:12]} ends \d{{4}}-\d\d-\d\d \d\d:\d\d UTC, too soon to accept "
                        rf"payments safely: ask the client to extend it \(`micropay extend {channel[:12]} --days N`\), "
                        r"or settle what you hold now\n", late), late
    assert str(row["expiry"]) not in late
