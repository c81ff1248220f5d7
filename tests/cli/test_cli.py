"""The micropay command: the README's walkthroughs through click's CliRunner on the in-process chain,
and the errors every command shares (one clean line, exit code 1)."""

import json
import re
from pathlib import Path

from click.testing import CliRunner
from clihelpers import ENV, PASSWORD, PAYMENT, Person, assert_clean_error
from eth_account import Account

from micropay import keystore
from micropay.cli import context, main


def test_client_and_freelancer_story(w3, tester, people):
    client, freelancer, _ = people
    opened = client.json("open", freelancer.address, "0.05 ETH", "--days", "7")
    channel = opened["channel"]
    assert int(opened["deposit"]) == 5 * 10**16
    texts = [client.pay(channel[:12], price, task, *extra)
             for price, task, *extra in (("0.01 ETH", "logo"), ("0.005 ETH", "palette"),
                                         ("2500000000000000", "cards", "--wei"))]
    assert all(PAYMENT.fullmatch(t) for t in texts)

    # The freelancer follows the README: no --escrow, the payments name it.
    received = freelancer.run("receive", input="\n".join(texts) + "\n")
    short = channel[:12]
    assert received.stdout.splitlines() == [
        f"line 1: +0.01 ETH from {client.address} for 'logo'; 0.01 ETH so far on channel {short}",
        f"line 2: +0.005 ETH from {client.address} for 'palette'; 0.015 ETH so far on channel {short}",
        f"line 3: +0.0025 ETH from {client.address} for 'cards'; 0.0175 ETH so far on channel {short}",
    ]
    again = freelancer.json("receive", texts[-1])  # the latest again: a no-op
    assert (again[0]["outcome"], again[0]["duplicate"]) == ("held", True)

    (row,) = freelancer.json("status")
    assert (row["role"], row["paid"], row["unclaimed"], row["tasks"], row["left"]) == (
        "payee", str(175 * 10**14), str(175 * 10**14), 3, None)
    table = freelancer.run("status").output
    assert "0.0175 ETH" in table and client.address in table
    assert [t["settled"] for t in freelancer.json("tasks", channel)] == [False] * 3

    preview = freelancer.json("settle", "--dry-run")
    assert preview["tx"] is None and preview["gross"] == str(175 * 10**14) and preview["gas"] > 0
    before = w3.eth.get_balance(freelancer.address)
    settled = freelancer.json("settle")
    assert w3.eth.get_balance(freelancer.address) - before == 175 * 10**14 - int(settled["fee"])
    assert int(settled["net"]) == 175 * 10**14 - int(settled["fee"])
    assert [t["settled"] for t in freelancer.json("tasks", channel)] == [True] * 3

    assert "the deposit is now 0.06 ETH" in client.run("top-up", channel, "0.01 ETH").output
    last = client.pay(channel, "0.001 ETH", "final fixes")
    freelancer.run("receive", last)
    assert "may claim until" in client.run("request-close", channel).output
    # One flag, one meaning: the global --confirmations 0 (MICROPAY_CONFIRMATIONS here, as the README
    # recommends for a dev chain) lets watch act on the request in the latest block.
    watched = freelancer.run("watch", "--rounds", "1")
    assert re.search(rf"claimed 0.001 ETH from client {client.address} on channel {short}: the client started "
                     r"closing", watched.stdout), watched.output
    closed = freelancer.run("close", channel).stdout
    assert (f"closed channel {short} with client {client.address}: 0.0185 ETH paid to you in all (0 ETH now), "
            "0.0415 ETH back to the client") in closed

    bundle = freelancer.run("export").stdout
    restored = freelancer.home / "restored.db"
    (freelancer.home / "bundle.json").write_text(bundle)
    imported = freelancer.run("--store", str(restored), "import", str(freelancer.home / "bundle.json"))
    assert "1 channel(s) imported or updated" in imported.output


def test_reclaim_after_expiry(tester, people, tmp_path):
    client, freelancer, _ = people
    channel = client.open(freelancer.address, "0.01 ETH", "--days", "1")
    text = client.pay(channel, "0.004 ETH", "half done")
    (tmp_path / "in.txt").write_text(text + "\n")
    received = freelancer.run("receive", "--file", str(tmp_path / "in.txt")).stdout
    assert received.startswith(f"line 1: +0.004 ETH from {client.address} for 'half done'")
    assert "reclaim after that" in client.run("request-close", channel).stdout
    early = client.run("reclaim", channel, ok=False)
    assert_clean_error(early, "the freelancer may claim until", " UTC; reclaim after that")
    tester.time_travel(client.json("status")[0]["expiry"] + 10)  # the freelancer never claimed
    assert client.run("reclaim", channel).stdout.strip() == f"reclaimed 0.01 ETH from channel {channel}"
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


# --- errors: one clean line, exit code 1, no traceback ------------------------------------------

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
    channel = client.open(freelancer.address, "0.01 ETH")

    def no_node(rpc):
        raise AssertionError("an offline command asked for the node")

    monkeypatch.setattr(context, "connect", no_node)
    assert client.pay(channel, "0.001 ETH", "offline").startswith("mpp1")
    assert client.run("resend", channel).stdout.startswith("mpp1")
    assert client.json("account", "list")[0]["address"] == client.address
    assert json.loads(client.run("export").stdout)["channels"]
    assert client.json("settlements") == []
    assert freelancer.run("status").stdout.strip() == "no channels yet"


def test_unreachable_rpc_and_wrong_chain(w3, tmp_path, people):
    result = CliRunner().invoke(main, ["--home", str(tmp_path), "--rpc", "http://127.0.0.1:9", "settle"],
                                env={"MICROPAY_PASSWORD": PASSWORD})
    assert_clean_error(result, "cannot reach the node")
    client, _, _ = people
    assert_clean_error(client.run("--chain-id", "1", "deploy", ok=False), "not 1")
    assert_clean_error(client.run("open", client.address, "1 ETH", ok=False), "payee")  # paying oneself


def test_unknown_escrow(people, token):
    _, freelancer, _ = people
    assert_clean_error(freelancer.run("--escrow", "0x" + "77" * 20, "settle", ok=False), "no contract")
    assert_clean_error(freelancer.run("--escrow", token.address, "settle", ok=False), "not the micropay escrow")


def test_bad_amounts_and_channels(people):
    client, freelancer, _ = people
    assert_clean_error(client.run("open", freelancer.address, "0.05 USDC", ok=False), "pays in ETH")
    assert_clean_error(client.run("open", freelancer.address, "0.0000000000000000001 ETH", ok=False), "decimals")
    assert_clean_error(client.run("pay", "0xdeadbeef00", "1 ETH", "x", ok=False), "no channel")


def test_debug_shows_the_traceback(people):
    client, _, _ = people
    result = client.run("--debug", "deploy", ok=False, env={"MICROPAY_PASSWORD": "nope"})
    assert isinstance(result.exception, keystore.KeystoreError)
