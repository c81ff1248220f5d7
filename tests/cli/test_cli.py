"""The micropay command: every command through click's CliRunner on the in-process chain."""

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from eth_account import Account

from micropay import keystore
from micropay.cli import context, main

PASSWORD = "correct horse battery staple"
# The in-process chain (conftest.py) mines only when asked: no later block would confirm a transaction.
ENV = {"MICROPAY_PASSWORD": PASSWORD, "MICROPAY_CONFIRMATIONS": "0"}


class Person:
    """One user of the command: a data directory with one key file."""

    def __init__(self, w3, tmp_path, name):
        self.home = tmp_path / name
        self.runner = CliRunner()
        # A low scrypt work factor keeps each command fast; `account new` itself is tested below.
        account = Account.create()
        keystore.save_account(account, self.home / "keystores", PASSWORD, iterations=2**4)
        self.address = account.address
        w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(
            {"from": w3.eth.accounts[0], "to": self.address, "value": 10**19}))

    def run(self, *args, input=None, ok=True, env=None):
        result = self.runner.invoke(main, ["--home", str(self.home), *args], input=input, env={**ENV, **(env or {})})
        if ok:
            assert result.exit_code == 0, result.output + repr(result.exception)
        return result

    def json(self, *args):
        return json.loads(self.run(*args, "--json").stdout)  # progress lines go to stderr


@pytest.fixture
def people(w3, tmp_path):
    client, freelancer = Person(w3, tmp_path, "client"), Person(w3, tmp_path, "freelancer")
    escrow = client.run("deploy").stdout.strip()
    return client, freelancer, escrow


def test_client_and_freelancer_story(w3, tester, people):
    client, freelancer, escrow = people
    opened = client.json("open", freelancer.address, "0.05 ETH", "--days", "7")
    channel = opened["channel"]
    assert int(opened["deposit"]) == 5 * 10**16
    texts = [client.run("pay", channel[:12], price, task).stdout.strip()
             for price, task in (("0.01 ETH", "logo"), ("0.005 ETH", "palette"), ("2500000000000000", "cards"))]
    assert all(re.fullmatch(r"mpp1[a-z2-7]+", t) for t in texts)

    received = freelancer.run("--escrow", escrow, "receive", input="\n".join(texts) + "\n")
    assert received.stdout.splitlines() == [
        "+0.01 ETH for 'logo'; 0.01 ETH so far",
        "+0.005 ETH for 'palette'; 0.015 ETH so far",
        "+0.0025 ETH for 'cards'; 0.0175 ETH so far",
    ]
    again = freelancer.json("--escrow", escrow, "receive", texts[-1])  # the latest again: a no-op
    assert again[0]["duplicate"] is True

    (row,) = freelancer.json("--escrow", escrow, "status")
    assert (row["role"], row["paid"], row["unclaimed"], row["tasks"]) == ("payee", str(175 * 10**14),
                                                                           str(175 * 10**14), 3)
    table = freelancer.run("--escrow", escrow, "status").output
    assert "0.0175 ETH" in table and client.address in table
    assert [t["settled"] for t in freelancer.json("--escrow", escrow, "tasks", channel)] == [False] * 3

    preview = freelancer.json("--escrow", escrow, "settle", "--dry-run")
    assert preview["tx"] is None and preview["gross"] == str(175 * 10**14) and preview["gas"] > 0
    before = w3.eth.get_balance(freelancer.address)
    settled = freelancer.json("--escrow", escrow, "settle")
    assert w3.eth.get_balance(freelancer.address) - before == 175 * 10**14 - int(settled["fee"])
    assert int(settled["net"]) == 175 * 10**14 - int(settled["fee"])
    assert [t["settled"] for t in freelancer.json("--escrow", escrow, "tasks", channel)] == [True] * 3

    assert "deposit now 0.06 ETH" in client.run("top-up", channel, "0.01 ETH").output
    last = client.run("pay", channel, "0.001 ETH", "final fixes").stdout.strip()
    freelancer.run("--escrow", escrow, "receive", last)
    assert "may claim until" in client.run("request-close", channel).output
    tester.mine_blocks(3)
    watched = freelancer.run("--escrow", escrow, "watch", "--rounds", "1", "--confirmations", "2")
    assert "claimed 1 channel(s)" in watched.output
    assert "closed" in freelancer.run("--escrow", escrow, "close", channel).output

    bundle = freelancer.run("--escrow", escrow, "export").stdout
    restored = freelancer.home / "restored.db"
    (freelancer.home / "bundle.json").write_text(bundle)
    imported = freelancer.run("--store", str(restored), "import", str(freelancer.home / "bundle.json"))
    assert "1 channel(s) updated" in imported.output


def test_reclaim_after_expiry(tester, people, tmp_path):
    client, freelancer, escrow = people
    channel = client.json("open", freelancer.address, "0.01 ETH", "--days", "1")["channel"]
    text = client.run("pay", channel, "0.004 ETH", "half done").stdout
    (tmp_path / "in.txt").write_text(text)
    assert "+0.004 ETH for 'half done'" in freelancer.run("--escrow", escrow, "receive", "--file",
                                                          str(tmp_path / "in.txt")).stdout
    assert "reclaim after that" in client.run("request-close", channel).stdout
    tester.time_travel(client.json("status")[0]["expiry"] + 10)  # the freelancer never claimed
    assert client.run("reclaim", channel).stdout.strip() == "reclaimed 0.01 ETH"
    assert client.json("status")[0]["status"] == "closed"


def test_account_commands_never_print_secrets(w3, tmp_path):
    person = Person(w3, tmp_path, "someone")
    created = person.run("account", "new")
    key = "0x" + "4f" * 32
    imported = person.run("account", "import", input=f"{key}\n")
    listed = person.json("account", "list")
    assert {entry["address"] for entry in listed} == {person.address, created.stdout.split()[0],
                                                     imported.stdout.split()[0]}
    assert imported.stdout.split()[0] == Account.from_key(key).address
    for output in (imported.output, person.run("account", "list").output):
        assert PASSWORD not in output and "4f4f4f4f" not in output
    for entry in listed:  # the key files are encrypted and private
        text = Path(entry["path"]).read_text()
        assert "4f4f4f4f" not in text and '"crypto"' in text


def test_demo_statement_adds_up():
    result = CliRunner().invoke(main, ["demo", "--json"])
    assert result.exit_code == 0, result.output
    s = json.loads(result.stdout)
    paid = sum(price for _, price in s["tasks"])
    assert len(s["tasks"]) == 5 and paid == 25 * 10**15
    fees = {who: sum(fee for party, _, _, fee in s["steps"] if party == who) for who in ("client", "freelancer")}
    _, client_before, client_after = s["client"]
    _, freelancer_before, freelancer_after = s["freelancer"]
    assert client_before - client_after == paid + fees["client"]
    assert freelancer_after - freelancer_before == paid - fees["freelancer"]
    assert s["refund"] == s["deposit"] - paid
    assert [what for _, what, _, _ in s["steps"]] == ["open channel", "settle (one claimMany)", "close channel"]
    assert all(40_000 < gas < 60_000 for _, _, gas, _ in s["steps"])
    text = CliRunner().invoke(main, ["demo"]).output
    assert "CLOSING STATEMENT" in text and "total paid                    0.025 ETH" in text


# --- errors: one clean line, exit code 1, no traceback ------------------------------------------

def assert_clean_error(result, *fragments):
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error: ") and "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]


def test_wrong_password(people):
    client, _, _ = people
    assert_clean_error(client.run("deploy", ok=False, env={"MICROPAY_PASSWORD": "nope"}), "wrong password")


def test_missing_and_malformed_keystore(people, tmp_path):
    client, _, _ = people
    assert_clean_error(client.run("--keystore", str(tmp_path / "absent.json"), "deploy", ok=False), "no key file")
    broken = tmp_path / "broken.json"
    broken.write_text('{"address": "00", "crypto": {"cipher": "nonsense"}}')
    assert_clean_error(client.run("--keystore", str(broken), "deploy", ok=False), "malformed key file")


def test_without_rpc_there_is_no_node(monkeypatch, tmp_path):
    monkeypatch.undo()  # the real connect: no --rpc, no MICROPAY_RPC
    result = CliRunner().invoke(main, ["--home", str(tmp_path), "settle"], env={**ENV, "MICROPAY_RPC": None})
    assert_clean_error(result, "no Ethereum node", "--rpc")


def test_offline_commands_never_connect(people, monkeypatch):
    client, freelancer, _ = people
    channel = client.json("open", freelancer.address, "0.01 ETH")["channel"]

    def no_node(rpc):
        raise AssertionError("an offline command asked for the node")

    monkeypatch.setattr(context, "connect", no_node)
    assert client.run("pay", channel, "0.001 ETH", "offline").stdout.startswith("mpp1")
    assert client.json("account", "list")[0]["address"] == client.address
    assert json.loads(client.run("export").stdout)["channels"]
    assert freelancer.run("status").stdout.strip() == "no channels yet"


def test_unreachable_rpc_and_wrong_chain(w3, tmp_path, people):
    result = CliRunner().invoke(main, ["--home", str(tmp_path), "--rpc", "http://127.0.0.1:9", "settle"],
                                env={"MICROPAY_PASSWORD": PASSWORD})
    assert_clean_error(result, "cannot reach the node")
    client, _, _ = people
    assert_clean_error(client.run("--chain-id", "1", "deploy", ok=False), "not 1")
    assert_clean_error(client.run("open", client.address, "1", ok=False), "payee")  # paying oneself


def test_unknown_escrow(people, token):
    _, freelancer, _ = people
    assert_clean_error(freelancer.run("--escrow", "0x" + "77" * 20, "settle", ok=False), "no contract")
    assert_clean_error(freelancer.run("--escrow", token.address, "settle", ok=False), "not the micropay escrow")


def test_corrupt_voucher(people):
    client, freelancer, escrow = people
    channel = client.json("open", freelancer.address, "0.01 ETH")["channel"]
    text = client.run("pay", channel, "0.001 ETH", "x").stdout.strip()
    corrupt = text[:40] + ("a" if text[40] != "a" else "b") + text[41:]
    assert_clean_error(freelancer.run("--escrow", escrow, "receive", corrupt, ok=False), "checksum")


def test_insufficient_funds_for_gas(tmp_path, people):
    _, _, escrow = people
    broke = CliRunner()
    home = tmp_path / "broke"
    broke.invoke(main, ["--home", str(home), "account", "new"], env=ENV)
    result = broke.invoke(main, ["--home", str(home), "--escrow", escrow, "open", "0x" + "12" * 20, "0.01 ETH"],
                          env=ENV)
    assert_clean_error(result, "wei")


def test_bad_amounts_and_channels(people):
    client, freelancer, _ = people
    assert_clean_error(client.run("open", freelancer.address, "0.05 USDC", ok=False), "pays in ETH")
    assert_clean_error(client.run("open", freelancer.address, "0.0000000000000000001 ETH", ok=False), "decimals")
    assert_clean_error(client.run("pay", "0xdeadbeef00", "1", "x", ok=False), "no channel")


def test_debug_shows_the_traceback(people):
    client, _, _ = people
    result = client.run("--debug", "deploy", ok=False, env={"MICROPAY_PASSWORD": "nope"})
    assert isinstance(result.exception, keystore.KeystoreError)


def test_redeem_receives_a_file_and_settles_once(w3, people, tmp_path):
    client, freelancer, escrow = people
    channel = client.json("open", freelancer.address, "0.05 ETH")["channel"]
    texts = [client.run("pay", channel, "0.002 ETH", f"page {n}").stdout.strip() for n in range(4)]
    payments = tmp_path / "payments.txt"
    payments.write_text("\n".join(texts) + "\n")
    before = w3.eth.get_balance(freelancer.address)
    result = freelancer.run("--escrow", escrow, "redeem", str(payments))
    assert "4 task(s) settled" in result.stdout and "received 0.008 ETH" in result.stdout
    settlement = w3.eth.get_transaction_receipt(re.search(r"transaction (0x[0-9a-f]{64})", result.stdout).group(1))
    fee = settlement.gasUsed * settlement.effectiveGasPrice
    assert w3.eth.get_balance(freelancer.address) - before == 8 * 10**15 - fee
