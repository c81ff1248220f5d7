"""`settle --via-relay` and `relay`: a freelancer with no ETH is paid by whoever submits its request."""

import re

import pytest
from clihelpers import Person, assert_clean_error
from eth_account import Account

from micropay import Escrow, Payer, RelayRequest

TX = r"0x[0-9a-f]{64}"
REQUEST = re.compile(r"mpr1[a-z2-7]+")


@pytest.fixture
def broke(w3, tmp_path):
    """A freelancer whose account never held any ETH."""
    return Person(w3, tmp_path, "broke", fund=0)


@pytest.fixture
def relayer(w3, tmp_path):
    return Person(w3, tmp_path, "relayer")


@pytest.fixture
def client(people, w3, tmp_path):
    """The client, through the library: what is tested here is the freelancer's and relayer's side."""
    account = Account.create()
    w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(
        {"from": w3.eth.accounts[0], "to": account.address, "value": 10**19}))
    return Payer(Escrow(w3, people[2]), account, tmp_path / "client.db")


def paid(client, freelancer, *amounts, deposit=5 * 10**16, token=None):
    channels = []
    for n, amount in enumerate(amounts):
        channel = client.open_channel(freelancer.address, deposit, token=token)
        freelancer.run("receive", client.pay(channel.id, amount, task=f"task {n}").encode())
        channels.append(channel)
    return channels


def test_settle_via_relay_prints_a_request_and_relay_submits_it(client, broke, relayer, w3):
    paid(client, broke, 10**16, 2 * 10**16)
    result = broke.run("settle", "--via-relay", "--max-fee", "0.001 ETH")
    assert REQUEST.fullmatch(result.stdout.strip()), result.stdout
    assert re.search(r"relay request for 2 channel\(s\) on escrow 0x[0-9a-fA-F]{4}…[0-9a-fA-F]{4}: pays 0.03 ETH, "
                     r"of which a relayer keeps at most 0.001 ETH; valid until \d{4}-\d\d-\d\d \d\d:\d\d UTC",
                     result.stderr), result.stderr
    request = RelayRequest.decode(result.stdout)
    assert request.payee == broke.address and request.max_fee == 10**15
    assert w3.eth.get_balance(broke.address) == 0
    before = w3.eth.get_balance(relayer.address)
    out = relayer.run("relay", result.stdout.strip()).stdout
    match = re.fullmatch(rf"relayed 2 channel\(s\) for {broke.address}: 0.03 ETH claimed, 0.029 ETH to the "
                         rf"freelancer; fee earned 0.001 ETH, gas cost ~?0\.\d+ ETH; transaction ({TX})\n", out)
    assert match, out
    receipt = w3.eth.get_transaction_receipt(match[1])
    assert w3.eth.get_balance(broke.address) == 3 * 10**16 - 10**15
    gas_cost = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert w3.eth.get_balance(relayer.address) - before == 10**15 - gas_cost
    assert broke.run("settle").stdout.startswith("nothing to claim")  # the freelancer's store reads it back


def test_relay_reads_stdin_or_a_file_and_dry_run_asks_no_password(client, broke, relayer, w3, tmp_path):
    paid(client, broke, 10**16)
    data = broke.json("settle", "--via-relay", "--max-fee", "0.0005 ETH", "--deadline", "2h")
    (item,) = data
    assert item["total"] == str(10**16) and item["maxFee"] == str(5 * 10**14) and len(item["channels"]) == 1
    text = item["request"]
    nonce = w3.eth.get_transaction_count(relayer.address)
    dry = relayer.json("relay", "-", "--dry-run", input=text + "\n",
                       env={"MICROPAY_PASSWORD": "wrong, and never asked for"})
    assert (dry["tx"], dry["total"], dry["fee"], dry["channels"]) == (None, str(10**16), str(5 * 10**14), 1)
    assert dry["gas"] > 50_000
    assert w3.eth.get_transaction_count(relayer.address) == nonce
    lowered = relayer.run("relay", "-", "--dry-run", "--fee", "0.0001 ETH", input=text).stdout
    assert "fee 0.0001 ETH (at most 0.0005 ETH)" in lowered
    path = tmp_path / "request.txt"
    path.write_text("\n".join(text[i : i + 70] for i in range(0, len(text), 70)) + "\n")  # as a mail wraps it
    done = relayer.json("relay", str(path))
    assert (done["total"], done["fee"]) == (str(10**16), str(5 * 10**14)) and done["tx"].startswith("0x")
    assert w3.eth.get_balance(broke.address) == 10**16 - 5 * 10**14


def test_a_replayed_expired_or_corrupt_request_is_one_clean_line(client, broke, relayer, tester, w3):
    paid(client, broke, 10**16)
    text = broke.run("settle", "--via-relay", "--max-fee", "0.001 ETH", "--deadline", "10m").stdout.strip()
    corrupt = text[:-3] + ("aaa" if not text.endswith("aaa") else "bbb")
    assert_clean_error(relayer.run("relay", corrupt, ok=False), "checksum does not match")
    assert_clean_error(relayer.run("relay", "nothing like a request", ok=False), "must start with 'mpr1'")
    assert_clean_error(relayer.run("relay", "x" * 5000, ok=False), "must start with 'mpr1'")  # no such file either
    assert_clean_error(relayer.run("relay", "--fee", "0.002 ETH", text, ok=False), "max fee")
    relayer.run("relay", text)
    assert_clean_error(relayer.run("relay", text, ok=False), "submitted already", "nothing left to relay")
    paid(client, broke, 2 * 10**16)
    late = broke.run("settle", "--via-relay", "--max-fee", "0.001 ETH", "--deadline", "10m").stdout.strip()
    tester.time_travel(w3.eth.get_block("latest")["timestamp"] + 3600)
    tester.mine_blocks(1)
    nonce = w3.eth.get_transaction_count(relayer.address)
    assert_clean_error(relayer.run("relay", late, ok=False), "expired", "ask the payee for a new one")
    assert w3.eth.get_transaction_count(relayer.address) == nonce


def test_via_relay_usage_and_nothing_to_relay(client, broke):
    result = broke.run("settle", "--via-relay", ok=False)
    assert result.exit_code == 2 and "--via-relay needs --max-fee" in result.output
    result = broke.run("settle", "--via-relay", "--max-fee", "1 ETH", "--deadline", "soon", ok=False)
    assert result.exit_code == 2 and "not a duration" in result.output
    paid(client, broke, 10**16)
    assert_clean_error(broke.run("relay", "-", input="", ok=False), "must start with 'mpr1'")  # an empty stdin
    assert_clean_error(broke.run("settle", "--via-relay", "--max-fee", "1 TUSD", ok=False), "this channel pays in ETH")


def test_a_token_request_takes_its_fee_in_the_token(client, broke, relayer, token, w3):
    w3.eth.wait_for_transaction_receipt(
        token.functions.mint(client.address, 10 * 10**6).transact({"from": w3.eth.accounts[0]}))
    paid(client, broke, 2 * 10**6, deposit=5 * 10**6, token=token.address)
    text = broke.run("settle", "--via-relay", "--max-fee", "0.50 TUSD", "--token", token.address).stdout.strip()
    out = relayer.run("relay", text).stdout
    assert "2 TUSD claimed, 1.5 TUSD to the freelancer; fee earned 0.5 TUSD" in out
    assert token.functions.balanceOf(broke.address).call() == 1_500_000
    assert token.functions.balanceOf(relayer.address).call() == 500_000


def test_settle_without_eth_points_to_the_relay_and_records_nothing(client, broke):
    # Refused before anything is signed: no settlement row claims a transaction that never went out.
    paid(client, broke, 10**16)
    result = broke.run("settle", ok=False)
    assert_clean_error(result, "0 ETH", "settle --via-relay --max-fee")
    assert broke.run("settlements").stdout.startswith("no settlements")
    assert "mpr1" in broke.run("settle", "--via-relay", "--max-fee", "0.001 ETH").stdout  # the way out works
