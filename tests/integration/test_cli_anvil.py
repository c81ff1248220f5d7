"""The command end to end against anvil: client and freelancer in separate processes, each
with its own data directory, key file and store, following the README's walkthroughs."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from eth_account import Account
from web3 import Web3

from micropay import keystore
from micropay.store import VoucherStore

PASSWORD = "anvil-e2e"
ROOT = Path(__file__).resolve().parents[2]


class User:
    def __init__(self, anvil, home, w3, fund=10**19):
        account = Account.create()
        keystore.save_account(account, home / "keystores", PASSWORD, iterations=2**4)  # fast to open in tests
        if fund:
            w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(
                {"from": w3.eth.accounts[0], "to": account.address, "value": fund}))
        self.address, self.home, self.rpc = account.address, home, anvil.url

    def argv(self, *args, confirmations=0):
        # anvil automines one block per transaction: no later blocks would ever confirm one
        return [sys.executable, "-m", "micropay", "--rpc", self.rpc, "--home", str(self.home),
                "--confirmations", str(confirmations), *args]

    def run(self, *args, input=None, ok=True):
        result = subprocess.run(self.argv(*args), check=False, input=input, capture_output=True, text=True,
                                timeout=120, env={**os.environ, "MICROPAY_PASSWORD": PASSWORD})
        if ok:
            assert result.returncode == 0, result.stderr
            return result.stdout
        return result


def people(anvil, tmp_path):
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    return w3, User(anvil, tmp_path / "client", w3), User(anvil, tmp_path / "freelancer", w3)


def test_client_and_freelancer_processes_on_anvil(anvil, tmp_path):
    w3, client, freelancer = people(anvil, tmp_path)
    client.run("deploy")
    channel = json.loads(client.run("open", freelancer.address, "0.05 ETH", "--json"))["channel"]
    texts = [client.run("pay", channel, "0.01 ETH", f"task {n}").strip() for n in range(3)]
    # The freelancer as the README has it: no --escrow, no deploy; each payment names its escrow.
    received = freelancer.run("receive", input="\n".join(texts) + "\n")
    assert received.splitlines()[-1] == (f"line 3: +0.01 ETH from {client.address} for 'task 2'; 0.03 ETH so far on "
                                         f"channel {channel[:12]}")
    (row,) = json.loads(freelancer.run("status", "--json"))  # one batched read over HTTP
    assert (row["role"], row["unclaimed"], row["tasks"]) == ("payee", str(3 * 10**16), 3)
    planned = json.loads(freelancer.run("settle", "--dry-run", "--json"))
    assert (planned["tx"], planned["channels"], planned["gross"]) == (None, 1, str(3 * 10**16))
    before = w3.eth.get_balance(freelancer.address)
    settled = json.loads(freelancer.run("settle", "--json"))
    assert int(settled["gross"]) == 3 * 10**16
    assert w3.eth.get_balance(freelancer.address) - before == 3 * 10**16 - int(settled["fee"])
    tasks = json.loads(freelancer.run("tasks", channel, "--json"))
    assert [t["settled"] for t in tasks] == [True, True, True]
    (status,) = json.loads(client.run("status", "--json"))
    assert (status["role"], status["claimed"], status["status"], status["left"]) == (
        "payer", str(3 * 10**16), "open", str(2 * 10**16))
    assert "closed channel" in freelancer.run("close", channel)
    backup = tmp_path / "backup.json"
    freelancer.run("export", str(backup))
    restored = tmp_path / "restored.db"
    assert "1 channel(s) imported or updated" in freelancer.run("--store", str(restored), "import", str(backup))


def test_redeem_script_as_documented_reports_every_line(anvil, tmp_path):
    w3, client, freelancer = people(anvil, tmp_path)
    client.run("deploy")
    channel = json.loads(client.run("open", freelancer.address, "0.05 ETH", "--json"))["channel"]
    texts = [client.run("pay", channel, "0.01 ETH", f"task {n}").strip() for n in range(3)]
    payments = tmp_path / "payments.txt"
    payments.write_text("\n".join([texts[0], texts[1], texts[0], "not a payment", texts[2], texts[2]]) + "\n")
    # Run as its docstring says: the script itself (its run bit), options first, then the file.
    script = [str(ROOT / "scripts" / "redeem_vouchers.py"), "--rpc", anvil.url, "--home", str(freelancer.home),
              "--confirmations", "0", "--min-net", "0.001 ETH", str(payments)]
    env = {**os.environ, "MICROPAY_PASSWORD": PASSWORD,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    before = w3.eth.get_balance(freelancer.address)
    result = subprocess.run(script, check=False, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 1, result.stderr  # line 4 was rejected
    outcomes = [re.match(r"line (\d): (\S+)", line).groups() for line in result.stdout.splitlines()[:6]]
    assert outcomes == [("1", "+0.01"), ("2", "+0.01"), ("3", "older"), ("4", "rejected:"), ("5", "+0.01"),
                        ("6", "already")]
    (tx,) = re.findall(r"transaction (0x[0-9a-f]{64})", result.stdout)
    receipt = w3.eth.get_transaction_receipt(tx)
    assert w3.eth.get_balance(freelancer.address) - before == 3 * 10**16 - receipt.gasUsed * receipt.effectiveGasPrice

    payments.write_text("\n".join(texts) + "\n")  # the same file again, grown by nothing: fine
    again = subprocess.run(script, check=False, capture_output=True, text=True, timeout=120, env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1].startswith("nothing to claim")


def test_ctrl_c_during_settle_prints_the_transaction_sent(anvil, tmp_path):
    w3, client, freelancer = people(anvil, tmp_path)
    client.run("deploy")
    channel = json.loads(client.run("open", freelancer.address, "0.05 ETH", "--json"))["channel"]
    freelancer.run("receive", client.run("pay", channel, "0.01 ETH", "logo"))
    # The node stops mining: settle sends its transaction and waits for a receipt that does not
    # come until the test mines again, so the interrupt always lands while it waits.
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        # Ctrl-C at a terminal: the command gets Python's own SIGINT handler even when this test
        # runs as a background job, whose children inherit SIGINT ignored.
        as_at_a_terminal = [sys.executable, "-c", ("import runpy, signal, sys; "
                            "signal.signal(signal.SIGINT, signal.default_int_handler); "
                            "sys.argv[0] = 'micropay'; runpy.run_module('micropay', run_name='__main__')")]
        settling = subprocess.Popen(as_at_a_terminal + freelancer.argv("settle")[3:], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True,
                                    env={**os.environ, "MICROPAY_PASSWORD": PASSWORD})
        store = VoucherStore(freelancer.home / "micropay.db")
        deadline = time.monotonic() + 60
        while not store.settlements("pending") and time.monotonic() < deadline:
            time.sleep(0.1)
        (pending,) = store.settlements("pending")
        while not w3.provider.make_request("eth_getTransactionByHash", ["0x" + pending.tx_hash.hex()]).get("result"):
            assert time.monotonic() < deadline, "the settlement never reached the node"
            time.sleep(0.1)  # broadcast: now waiting for its receipt
        settling.send_signal(signal.SIGINT)
        out, err = settling.communicate(timeout=30)
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
        w3.provider.make_request("evm_mine", [])  # what waited in the pool is mined now
    assert settling.returncode == 130, err
    assert f"transaction 0x{pending.tx_hash.hex()} (pending) may have been sent: it may still be mined" in err
    assert "Aborted!" not in err + out and "Traceback" not in err
    assert w3.eth.wait_for_transaction_receipt(pending.tx_hash, timeout=30).status == 1


def test_chain_errors_are_one_human_line_on_anvil(anvil, tmp_path):
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    broke = User(anvil, tmp_path / "broke", w3, fund=0)
    result = broke.run("deploy", ok=False)
    assert result.returncode == 1
    assert result.stderr == (f"error: {broke.address} holds 0 ETH: deploying the escrow costs gas; send it some "
                             "ETH first\n")
    poor = User(anvil, tmp_path / "poor", w3, fund=10**9)  # some ETH, not enough for the gas: the node says so
    result = poor.run("deploy", ok=False)
    assert result.returncode == 1 and result.stderr.splitlines()[-1] == (
        "error: the account does not hold enough ETH for this transaction and its gas (it holds 0.000000001 ETH): "
        "send it some ETH first")
    assert "Traceback" not in result.stderr and "{" not in result.stderr
    client = User(anvil, tmp_path / "client", w3)
    escrow = client.run("deploy").strip()
    nowhere = "0x" + "12" * 20
    no_token = client.run("--escrow", escrow, "open", Account.create().address, "5 USDC", "--token", nowhere,
                          ok=False)
    assert no_token.returncode == 1 and no_token.stderr.startswith(f"error: there is no contract at {nowhere}")
    assert len(no_token.stderr.splitlines()) == 1
