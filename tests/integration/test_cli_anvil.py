"""The command end to end against anvil: client and freelancer in separate processes, each
with its own data directory, key file and store."""

import json
import os
import subprocess
import sys

from eth_account import Account

from micropay import keystore

PASSWORD = "anvil-e2e"


class User:
    def __init__(self, anvil, home, w3):
        account = Account.create()
        keystore.save_account(account, home / "keystores", PASSWORD, iterations=2**4)  # fast to open in tests
        w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(
            {"from": w3.eth.accounts[0], "to": account.address, "value": 10**19}))
        self.address, self.home, self.rpc = account.address, home, anvil.url

    def run(self, *args, input=None):
        result = subprocess.run(
            # anvil automines one block per transaction: no later blocks would ever confirm one
            [sys.executable, "-m", "micropay", "--rpc", self.rpc, "--home", str(self.home), "--confirmations", "0",
             *args],
            check=False, input=input, capture_output=True, text=True, timeout=120,
            env={**os.environ, "MICROPAY_PASSWORD": PASSWORD})
        assert result.returncode == 0, result.stderr
        return result.stdout


def test_client_and_freelancer_processes_on_anvil(anvil, tmp_path):
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(anvil.url))
    client, freelancer = User(anvil, tmp_path / "client", w3), User(anvil, tmp_path / "freelancer", w3)
    escrow = client.run("deploy").strip()
    channel = json.loads(client.run("open", freelancer.address, "0.05 ETH", "--json"))["channel"]
    texts = [client.run("pay", channel, "0.01 ETH", f"task {n}").strip() for n in range(3)]
    received = freelancer.run("--escrow", escrow, "receive", input="\n".join(texts) + "\n")
    assert received.splitlines()[-1] == "+0.01 ETH for 'task 2'; 0.03 ETH so far"
    (row,) = json.loads(freelancer.run("--escrow", escrow, "status", "--json"))  # one batched read over HTTP
    assert (row["role"], row["unclaimed"], row["tasks"]) == ("payee", str(3 * 10**16), 3)
    planned = json.loads(freelancer.run("--escrow", escrow, "settle", "--dry-run", "--json"))
    assert (planned["tx"], planned["channels"], planned["gross"]) == (None, 1, str(3 * 10**16))
    before = w3.eth.get_balance(freelancer.address)
    settled = json.loads(freelancer.run("--escrow", escrow, "settle", "--json"))
    assert int(settled["gross"]) == 3 * 10**16
    assert w3.eth.get_balance(freelancer.address) - before == 3 * 10**16 - int(settled["fee"])
    tasks = json.loads(freelancer.run("--escrow", escrow, "tasks", channel, "--json"))
    assert [t["settled"] for t in tasks] == [True, True, True]
    (status,) = json.loads(client.run("status", "--json"))
    assert (status["role"], status["claimed"], status["status"]) == ("payer", str(3 * 10**16), "open")
    assert "closed" in freelancer.run("--escrow", escrow, "close", channel)
    backup = tmp_path / "backup.json"
    backup.write_text(freelancer.run("export"))
    restored = tmp_path / "restored.db"
    assert "1 channel(s) updated" in freelancer.run("--store", str(restored), "import", str(backup))
