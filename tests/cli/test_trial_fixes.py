"""What a new user's first trial of the command found: a watch that waited silently, a mistyped
--store taken for a new store, status across chains, what a closed channel has left, an --rpc
without scheme, zero amounts, a token amount without --token, and sync's missing escrow."""

import dataclasses
import re

from click.testing import CliRunner
from clihelpers import ENV, assert_clean_error

from micropay.cli import main
from micropay.store import VoucherStore
from micropay.transactions import TransactionPipeline


def paid(client, freelancer, amount="0.01 ETH"):
    channel = client.open(freelancer.address)
    freelancer.run("receive", client.pay(channel, amount, "a task"))
    return channel


# --- 1: watch says why a close request waits -----------------------------------------------------

def test_on_a_node_that_mines_on_demand_watch_claims_a_close_request_at_once(people):
    client, freelancer, _ = people
    channel = paid(client, freelancer)
    client.run("request-close", channel)
    result = freelancer.run("--confirmations", "3", "watch", "--rounds", "1")  # no block would ever come
    assert "acting on blocks 0 deep (this node mines only when a transaction arrives)" in result.stderr
    assert "claimed 0.01 ETH" in result.stdout and "started closing" not in result.stderr


def test_on_a_real_chain_watch_says_a_close_request_waits_until_it_is_deep_enough(people, monkeypatch):
    client, freelancer, _ = people
    channel = paid(client, freelancer)
    client.run("request-close", channel)
    monkeypatch.setattr(TransactionPipeline, "mines_on_demand", lambda self: False)
    result = freelancer.run("--confirmations", "3", "watch", "--rounds", "1")
    assert "claimed" not in result.stdout
    assert (f"client {client.address} started closing channel {channel[:12]}: claiming once that is 3 blocks deep "
            "(now 0)") in result.stderr


def test_watch_names_no_dev_node_hint_on_a_real_chain_nor_channels_worth_nothing(people, monkeypatch):
    client, freelancer, _ = people
    worth = paid(client, freelancer)
    nothing = client.open(freelancer.address)  # nothing paid on it: not ours to claim
    client.run("request-close", nothing)
    client.run("request-close", worth)
    monkeypatch.setattr(TransactionPipeline, "mines_on_demand", lambda self: False)
    waiting = [line for line in freelancer.run("--confirmations", "2", "watch", "--rounds", "1").stderr.splitlines()
               if "started closing" in line]
    assert waiting == [(f"client {client.address} started closing channel {worth[:12]}: claiming once that is 2 "
                        "blocks deep (now 0)")]


# --- 2: read-only commands start no store ----------------------------------------------------------

def test_read_only_commands_refuse_a_mistyped_store(people, tmp_path):
    client, freelancer, _ = people
    channel = client.open(freelancer.address)
    mistyped = tmp_path / "micropay.dbb"
    for args in (("status",), ("tasks", channel), ("settlements",), ("export",), ("settle", "--dry-run"),
                 ("pay", channel, "0.01 ETH", "x")):
        result = client.run("--store", str(mistyped), *args, ok=False)
        assert_clean_error(result, f"no store at {mistyped} (a mistyped --store?)")
        assert not mistyped.exists(), args


def test_read_only_commands_refuse_a_mistyped_home(tmp_path):
    home = tmp_path / "no-such-home"
    for args in (("status",), ("export",)):
        result = CliRunner().invoke(main, ["--home", str(home), *args], env=ENV)
        assert_clean_error(result, f"no store at {home / 'micropay.db'} (a mistyped --home?)")
    assert not home.exists()


def test_commands_that_start_a_store_still_do(people, tmp_path):
    client, freelancer, escrow = people
    channel = client.json("--store", str(tmp_path / "client.db"), "open", freelancer.address, "0.05 ETH")["channel"]
    payment = client.run("--store", str(tmp_path / "client.db"), "pay", channel, "0.01 ETH", "x").stdout.strip()
    assert "+0.01 ETH" in freelancer.run("--store", str(tmp_path / "received.db"), "receive", payment).stdout
    assert "1 channel(s) added" in freelancer.run("--store", str(tmp_path / "synced.db"), "--escrow", escrow,
                                                  "sync").stdout
    assert client.run("status").stdout == "no channels yet\n"  # a home with a key file: just no channels


# --- 3 and 4: status across chains, and what is left --------------------------------------------

def test_status_has_a_chain_column_and_reads_no_other_chain(people, w3):
    client, freelancer, _ = people
    channel = client.open(freelancer.address)
    store = VoucherStore(client.home / "micropay.db")
    (record,) = store.channels()
    store.add_channel(dataclasses.replace(record, chain_id=8453, observed_at=0))  # the same channel elsewhere
    store.close()
    lines = client.run("status").stdout.splitlines()
    assert lines[0].split()[:3] == ["channel", "chain", "role"]
    (here,) = [line for line in lines if re.match(rf"{channel[:12]}\s+{w3.eth.chain_id}\s", line)]
    (there,) = [line for line in lines if re.match(rf"{channel[:12]}\s+8453\s", line)]
    assert " open " in here and "on chain 8453 (not read)" in there and "sync" not in there
    rows = {row["chain"]: row for row in client.json("status")}
    assert rows[8453]["read"] is False and rows[w3.eth.chain_id]["read"] is True


def test_a_closed_or_expired_channel_has_nothing_left(people, tester):
    client, freelancer, _ = people
    channel = client.open(freelancer.address, "0.05 ETH", "--days", "1")
    client.pay(channel, "0.001 ETH", "a task")
    assert client.json("status")[0]["left"] == str(49 * 10**15)
    tester.time_travel(client.json("status")[0]["expiry"] + 10)
    (expired,) = client.json("status")
    assert (expired["status"], expired["left"]) == ("expired", "0")
    client.run("reclaim", channel)
    (closed,) = client.json("status")
    assert (closed["status"], closed["left"]) == ("closed", "0")
    row = client.run("status").stdout.splitlines()[2]
    assert "0.049 ETH" not in row and re.search(r"\s0 ETH\s+closed\s", row), row


# --- 5, 6 and 7: what is typed ---------------------------------------------------------------------

def test_an_rpc_without_scheme_says_to_add_http(people):
    client, _, _ = people
    message = assert_clean_error(client.run("--rpc", "127.0.0.1:8555", "sync", ok=False), "http://127.0.0.1:8555")
    assert "InvalidSchema" not in message
    assert_clean_error(client.run("--rpc", "ws://127.0.0.1:8555", "sync", ok=False), "http:// or https://")


def test_zero_is_no_payment_deposit_or_top_up(people):
    client, freelancer, _ = people
    channel = paid(client, freelancer)
    for args in (("pay", channel, "0 ETH", "task"), ("pay", channel, "0", "task"), ("pay", channel, "0", "t", "--wei"),
                 ("open", freelancer.address, "0 ETH"), ("top-up", channel, "0.0 ETH")):
        assert_clean_error(client.run(*args, ok=False), "the amount must be more than 0")
    assert client.json("status")[0]["paid"] == str(10**16)  # nothing more was signed
    assert "would claim 0.01 ETH" in freelancer.run("settle", "--dry-run", "--min-net", "0 ETH").stdout  # may be 0


def test_a_token_amount_without_token_says_to_pass_it(people):
    client, freelancer, _ = people
    assert_clean_error(client.run("open", freelancer.address, "0.05 USDC", ok=False),
                       "the amount is in USDC, but this channel pays in ETH",
                       "to open a token channel, pass --token ADDRESS")


# --- 9: sync and its escrows ---------------------------------------------------------------------

def test_sync_on_a_fresh_store_says_where_a_freelancer_finds_the_escrow(people, tmp_path):
    _, freelancer, _ = people
    assert_clean_error(freelancer.run("--store", str(tmp_path / "fresh.db"), "sync", ok=False),
                       "pass --escrow ADDRESS: the escrow your clients' channels are on", "status --json")


def test_sync_with_escrow_also_reads_the_escrows_the_store_holds_channels_on(people):
    client, freelancer, older = people
    paid(client, freelancer)
    unseen = client.open(freelancer.address)  # on the older escrow, never received
    newer = client.run("deploy", "--new").stdout.strip()
    assert newer != older
    synced = freelancer.run("--escrow", newer, "sync").stdout
    assert f"escrow {newer}: 0 channel(s) added" in synced
    assert f"escrow {older}: 1 channel(s) added" in synced and unseen[:12] in synced
