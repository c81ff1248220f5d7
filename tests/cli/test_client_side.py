"""The client's side of the command as people type it: amounts, addresses, chains, and messages in
the token's units and in dates (issue 12, items 13, 16, 17 and 18)."""

import json
import re

from clihelpers import Person, assert_clean_error

DATE = r"\d{4}-\d\d-\d\d \d\d:\d\d UTC"


# --- item 18: amounts and addresses ----------------------------------------------------------------

def test_a_bare_integer_is_refused_unless_wei_is_given(people, w3):
    client, freelancer, _ = people
    hint = assert_clean_error(client.run("open", freelancer.address, "1", ok=False), "no unit", "--wei")
    assert "'1 ETH'" in hint
    channel = client.json("open", freelancer.address, "1000", "--wei")
    assert channel["deposit"] == "1000"
    assert_clean_error(client.run("top-up", channel["channel"], "5", ok=False), "--wei")
    assert_clean_error(client.run("pay", channel["channel"], "5", "x", ok=False), "--wei")
    assert client.run("pay", channel["channel"], "5", "x", "--wei").stdout.startswith("mpp1")


def test_gwei_and_ether_are_units_of_eth(people):
    client, freelancer, _ = people
    opened = client.json("open", freelancer.address, "0.05 ether")
    assert opened["deposit"] == str(5 * 10**16)
    client.run("pay", opened["channel"], "2500000 gwei", "a task")
    (row,) = client.json("status")
    assert row["paid"] == str(25 * 10**14)


def mistyped(address):
    """``address`` with the case of its first letter flipped: a wrong EIP-55 checksum."""
    i = next(i for i, c in enumerate(address) if i > 1 and c.isalpha())
    return address[:i] + address[i].swapcase() + address[i + 1:]


def test_a_wrong_checksum_is_refused(people, token):
    client, freelancer, _ = people
    assert_clean_error(client.run("open", mistyped(freelancer.address), "0.01 ETH", "--yes", ok=False),
                       "wrong EIP-55 checksum")
    assert_clean_error(client.run("open", freelancer.address, "1 ETH", "--token", mistyped(token.address), ok=False),
                       "the token", "wrong EIP-55 checksum")
    assert client.json("status") == []


def test_a_lowercase_payee_needs_confirmation(people):
    client, freelancer, _ = people
    lower = freelancer.address.lower()
    declined = client.run("open", lower, "0.01 ETH", input="n\n", ok=False)
    assert declined.exit_code == 1 and "carries no checksum" in declined.output
    assert freelancer.address in declined.output and client.json("status") == []
    accepted = client.run("open", lower, "0.01 ETH", input="y\n")
    assert f"locked 0.01 ETH for freelancer {freelancer.address}" in accepted.stdout
    assert client.run("open", lower, "0.01 ETH", "--yes").stdout.startswith("channel 0x")
    assert len(client.json("status")) == 2


# --- item 13: --chain-id offline -------------------------------------------------------------------

def test_offline_commands_refuse_another_chain_id(people, w3):
    client, freelancer, _ = people
    channel = client.open(freelancer.address)
    client.pay(channel, "0.001 ETH", "first")
    chain = w3.eth.chain_id
    for args in (("pay", channel, "0.001 ETH", "x"), ("resend", channel), ("tasks", channel), ("export",)):
        message = assert_clean_error(client.run("--chain-id", "8453", *args, ok=False), "8453")
        assert f"chain {chain}" in message
    (row,) = client.json("status")
    assert row["paid"] == str(10**15)  # nothing more was signed
    assert client.run("--chain-id", str(chain), "pay", channel, "0.001 ETH", "y").stdout.startswith("mpp1")


# --- item 17: one human line, units and dates -------------------------------------------------------

def test_pay_prints_the_payment_on_stdout_and_one_sentence_on_stderr(people):
    client, freelancer, _ = people
    channel = client.open(freelancer.address)
    client.pay(channel, "0.01 ETH", "logo")
    result = client.run("pay", channel, "0.005 ETH", "palette")
    assert re.fullmatch(r"mpp1[a-z2-7]+\n", result.stdout)
    assert result.stderr == (f"paid 0.005 ETH to freelancer {freelancer.address} for 'palette'; 0.015 ETH paid of "
                             "0.05 ETH, 0.035 ETH left. Send the line above to the freelancer.\n")


def test_paying_past_the_deposit_says_how_much_to_top_up_in_eth(people):
    client, freelancer, _ = people
    channel = client.open(freelancer.address, "0.01 ETH")
    client.pay(channel, "0.007 ETH", "one")
    message = assert_clean_error(client.run("pay", channel, "0.006 ETH", "two", ok=False),
                                 "top up at least 0.003 ETH")
    assert "0.013 ETH, above its deposit 0.01 ETH" in message and "wei" not in message


def test_request_close_twice_says_it_is_already_closing(people, w3):
    client, freelancer, _ = people
    channel = client.open(freelancer.address)
    freelancer.run("receive", client.pay(channel, "0.01 ETH", "logo"))
    first = client.run("request-close", channel).stdout
    assert re.fullmatch(rf"closing started: the freelancer may claim until {DATE}; reclaim after that\n", first)
    block = w3.eth.block_number
    again = client.run("request-close", channel).stdout
    assert "is already closing" in again and "(nothing sent)" in again
    assert w3.eth.block_number == block  # no second transaction
    (row,) = client.json("status")
    assert row["closing"] is True
    for person in (client, freelancer):
        assert re.search(rf"closing until {DATE}", person.run("status").stdout)


def test_the_clients_status_shows_what_is_left_to_spend(people):
    client, freelancer, _ = people
    channel = client.open(freelancer.address, "0.05 ETH")
    client.pay(channel, "0.012 ETH", "one")
    (row,) = client.json("status")
    assert (row["role"], row["left"], row["status"], row["closing"]) == ("payer", str(38 * 10**15), "open", False)
    table = client.run("status").stdout.splitlines()
    assert "left" in table[0] and "0.038 ETH" in table[2]


def test_messages_are_in_eth_never_wei(people, tmp_path, w3):
    _, freelancer, escrow = people
    broke = Person(w3, tmp_path, "broke", fund=10**15)
    message = assert_clean_error(broke.run("--escrow", escrow, "open", freelancer.address, "0.01 ETH", ok=False),
                                 f"{broke.address} holds 0.001 ETH, not more than the deposit 0.01 ETH")
    assert "wei" not in message
    assert broke.run("--escrow", escrow, "open", freelancer.address, "0.01 ETH", ok=False).stderr.count("\n") == 1
    nothing = Person(w3, tmp_path, "nothing", fund=0)
    result = nothing.run("deploy", ok=False)
    assert result.stderr == (f"error: {nothing.address} holds 0 ETH: deploying the escrow costs gas; send it some "
                             "ETH first\n")


# --- item 16: a token address without code ----------------------------------------------------------

def test_open_with_a_token_without_code_is_one_clear_line(people, token):
    client, freelancer, _ = people
    nowhere = "0x" + "12" * 20
    assert_clean_error(client.run("open", freelancer.address, "5 USDC", "--token", nowhere, ok=False),
                       f"there is no contract at {nowhere}")
    assert json.loads(client.run("status", "--json").stdout) == []


# --- token channels: the token's own units -----------------------------------------------------------

def test_token_channels_speak_the_tokens_units(people, token):
    client, freelancer, _ = people
    short = assert_clean_error(client.run("open", freelancer.address, "5 TUSD", "--token", token.address, ok=False),
                               "holds 0 TUSD, less than 5 TUSD: get more TUSD first")
    assert "needed" not in short
    tx = token.functions.mint(client.address, 10 * 10**6).transact({"from": client.w3.eth.accounts[0]})
    client.w3.eth.wait_for_transaction_receipt(tx)
    channel = client.open(freelancer.address, "5 TUSD", "--token", token.address)
    assert_clean_error(client.run("pay", channel, "20 gwei", "x", ok=False), "gwei is a unit of ETH", "TUSD")
    out = freelancer.run("receive", client.pay(channel, "1.5 TUSD", "translation")).stdout
    assert out.startswith(f"+1.5 TUSD from {client.address} for 'translation'; 1.5 TUSD so far")
    (row,) = client.json("status")
    assert (row["token"], row["left"]) == (token.address, str(35 * 10**5))
    assert "3.5 TUSD" in client.run("status").stdout


# --- extend, and close after expiry ------------------------------------------------------------------

def test_extend_moves_the_expiry_a_freelancer_asked_for(people, tester):
    client, freelancer, _ = people
    channel = client.open(freelancer.address, "0.05 ETH", "--days", "5")
    assert_clean_error(client.run("extend", channel, "--days", "4", ok=False), "already runs until", "UTC")
    out = client.run("extend", channel, "--days", "10").stdout
    assert re.fullmatch(rf"channel {channel[:12]} now runs until {DATE}\n", out)
    (row,) = client.json("status")
    assert row["expiry"] > tester.get_block_by_number("latest")["timestamp"] + 9 * 86400


def test_closing_an_expired_channel_says_so_in_a_date(people, tester):
    client, freelancer, _ = people
    channel = client.open(freelancer.address, "0.05 ETH", "--days", "1")
    freelancer.run("receive", client.pay(channel, "0.01 ETH", "logo"))
    (row,) = client.json("status")
    tester.time_travel(row["expiry"] + 60)
    message = assert_clean_error(freelancer.run("close", channel, ok=False), "expired on", "the client may reclaim")
    assert str(row["expiry"]) not in message


def test_deploy_twice_keeps_the_recorded_escrow_unless_new_is_asked_for(people):
    client, _, escrow = people
    again = client.run("deploy", ok=False)
    assert again.exit_code == 1 and f"already has the escrow {escrow}" in again.stderr
    other = client.run("deploy", "--new").stdout.strip()
    assert other != escrow


def interrupt_after_sending(monkeypatch):
    """Ctrl-C while the command waits for the receipt of a transaction it has sent."""
    from micropay.transactions import TransactionPipeline

    def sent_then_interrupted(self, tx_hash, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(TransactionPipeline, "wait", sent_then_interrupted)


def test_ctrl_c_during_open_names_the_transaction_sent_and_sync_finds_the_channel(people, monkeypatch, w3):
    client, freelancer, _ = people
    with monkeypatch.context() as patch:
        interrupt_after_sending(patch)
        result = client.run("open", freelancer.address, "0.01 ETH", ok=False)
    assert result.exit_code == 130
    (sent,) = re.findall(r"transaction (0x[0-9a-f]{64}) was sent and may still be mined", result.stderr)
    assert w3.eth.get_transaction_receipt(sent)["status"] == 1  # it was: the deposit is locked
    client.run("sync")
    (row,) = client.json("status")
    assert row["deposit"] == str(10**16)


def test_ctrl_c_during_top_up_names_the_transaction_sent(people, monkeypatch):
    client, freelancer, _ = people
    channel = client.json("open", freelancer.address, "0.01 ETH")["channel"]
    interrupt_after_sending(monkeypatch)
    result = client.run("top-up", channel, "0.01 ETH", ok=False)
    assert result.exit_code == 130 and re.search(r"transaction 0x[0-9a-f]{64} was sent", result.stderr)
