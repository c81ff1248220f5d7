"""Client and freelancer as separate processes on anvil: the freelancer runs `micropay serve`, the
client opens with --inbox and pays; the payment is held with no manual step. The server stops,
the client pays twice, the server comes back on the same port, `micropay deliver` delivers both,
once each and in order."""

from __future__ import annotations

import os
import subprocess
import sys

from eth_account import Account
from web3 import Web3

from chains import free_port
from micropay import keystore
from micropay.acknowledgment import Acknowledgment
from micropay.store import VoucherStore

PASSWORD = "outbox serve"


class User:
    """A data directory with a key file; the store is the directory's own (``micropay.db``) or,
    given ``locations``, where they put it (a PostgreSQL schema: every command gets ``--store``)."""

    def __init__(self, anvil, home, w3, locations=None):
        account = Account.create()
        keystore.save_account(account, home / "keystores", PASSWORD, iterations=2**4)
        w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(
            {"from": w3.eth.accounts[0], "to": account.address, "value": 10**19}))
        self.address, self.home, self.rpc = account.address, home, anvil.url
        default = str(home / "micropay.db")
        self.store_path = locations.make(home, "micropay") if locations else default
        self.store_args = () if self.store_path == default else ("--store", self.store_path)

    def argv(self, *args):
        return [sys.executable, "-m", "micropay", "--rpc", self.rpc, "--home", str(self.home), *self.store_args,
                "--confirmations", "0", *args]

    def run(self, *args, code=0):
        result = subprocess.run(self.argv(*args), check=False, capture_output=True, text=True, timeout=120,
                                env={**os.environ, "MICROPAY_PASSWORD": PASSWORD})
        assert result.returncode == code, result.stdout + result.stderr
        return result

    @property
    def store(self):
        """This user's rows, as the CLI and `micropay serve` open them (a file is one account's)."""
        return VoucherStore.open(self.store_path, account=self.address)


class Serve:
    """`micropay serve` for ``user`` on ``port``, in its own process."""

    def __init__(self, user, escrow, port):
        self.process = subprocess.Popen(user.argv("serve", "--escrow", escrow, "--port", str(port)),
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                        env={**os.environ, "MICROPAY_PASSWORD": PASSWORD})
        self.listening = self.process.stdout.readline()  # printed once it listens
        assert f"127.0.0.1:{port}/v1/" in self.listening, self.listening

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=60)


def test_payments_arrive_by_themselves_and_after_an_outage_in_order(anvil_node, tmp_path, store_locations):
    w3 = Web3(Web3.HTTPProvider(anvil_node.url))
    client = User(anvil_node, tmp_path / "client", w3, store_locations)
    freelancer = User(anvil_node, tmp_path / "freelancer", w3, store_locations)
    escrow = client.run("deploy").stdout.strip()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = Serve(freelancer, escrow, port)
    try:
        channel = client.run("open", freelancer.address, "0.05 ETH", "--inbox", url + "/v1/").stdout.split()[1]
        paid = client.run("pay", channel, "0.001 ETH", "logo")
        assert paid.stderr.strip().splitlines()[-1].startswith("delivered: the freelancer's inbox holds it")
    finally:
        server.stop()
    with client.store as store:
        (record,) = store.channels()
        (row,) = store.deliveries()
        ack = Acknowledgment(record.chain_id, record.escrow, record.id, row.ack_amount, row.ack_root,
                             row.ack_signature)
    ack.verify(freelancer.address, chain_id=record.chain_id, escrow=record.escrow, channel_id=record.id)

    for task in ("palette", "cards"):
        queued = client.run("pay", channel, "0.002 ETH", task)
        assert "`micropay deliver` retries" in queued.stderr.strip().splitlines()[-1]
    assert "2 payment(s) of 0.004 ETH not delivered" in client.run("status").stdout
    server = Serve(freelancer, escrow, port)
    try:
        delivered = client.run("deliver").stdout.strip()
        assert delivered == (f"channel {channel[:12]}: 2 payment(s) delivered; the freelancer holds 0.005 ETH "
                             "(acknowledgment verified)")
        assert client.run("deliver").stdout.strip() == "nothing to deliver: no payment is queued"
    finally:
        server.stop()
    with freelancer.store as store:
        (held,) = store.channels()
        assert [e.receipt.task_id for e in store.ledger(held.ref)] == ["logo", "palette", "cards"]
        # The first alone; the two queued in one request (the latest voucher with both receipts).
        assert store.voucher_count(held.ref) == 2
