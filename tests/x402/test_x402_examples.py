"""The README's "Charge per API call" examples run as they are: examples/paid_api.py served by a
real uvicorn process, examples/agent_client.py run as a process of its own, both against a real
anvil chain; the agent gets both answers and the freelancer's store holds what they paid, to the wei."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from chains import Anvil, free_port
from micropay import Escrow, VoucherStore, keystore

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "examples-test"
JOKE, SUMMARY = 10**15, 10**16  # the example's prices: 0.001 and 0.01 ETH


def funded(w3: Web3, wei: int = 10**20):
    account = Account.create()
    w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(
        {"from": w3.eth.accounts[0], "to": account.address, "value": wei}))
    return account


def environment(node: Anvil, escrow: Escrow, home: Path, account, store: str) -> dict[str, str]:
    """The MICROPAY_* variables the examples (and the micropay command) read, for ``account``
    with its store at ``store`` (a path, or a PostgreSQL URL)."""
    key_file = keystore.save_account(account, home / "keystores", PASSWORD, iterations=2**4)
    return {**os.environ, "MICROPAY_RPC": node.url, "MICROPAY_ESCROW": escrow.address,
            "MICROPAY_KEYSTORE": str(key_file), "MICROPAY_PASSWORD": PASSWORD, "MICROPAY_STORE": store}


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def chain():
    node = Anvil()
    w3 = Web3(Web3.HTTPProvider(node.url))
    yield node, w3, Escrow.deploy(w3, funded(w3))
    node.stop()


@pytest.fixture(scope="module")
def freelancer(chain, tmp_path_factory, store_locations):
    """examples/paid_api.py under `uvicorn examples.paid_api:app`, as its docstring says to run it."""
    node, w3, escrow = chain
    home = tmp_path_factory.mktemp("freelancer")
    account = funded(w3)
    store = store_locations.make(home, "micropay")
    env = environment(node, escrow, home, account, store)
    port = free_port()
    with (home / "uvicorn.log").open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "uvicorn", "examples.paid_api:app", "--host", "127.0.0.1",
                                    "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not listening(port):
        assert process.poll() is None and time.monotonic() < deadline, (home / "uvicorn.log").read_text()[-3000:]
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", account, store
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) in (0, -signal.SIGTERM), (home / "uvicorn.log").read_text()[-3000:]  # uvicorn re-raises it


def run_agent(env: dict[str, str], url: str) -> list[str]:
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "agent_client.py"), url], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def test_the_agent_example_pays_the_paid_api_example_and_the_freelancer_holds_every_wei(chain, freelancer,
                                                                                        tmp_path, store_at):
    node, w3, escrow = chain
    url, seller, seller_store = freelancer
    agent = funded(w3)
    env = environment(node, escrow, tmp_path, agent, store_at("micropay"))

    first = run_agent(env, url)
    assert len(first) == 2
    joke = "{'joke': 'A voucher walks into a bar. The bartender says: we settle later.'}"
    assert first[0] == f"GET /v1/joke 200 {joke} paid 0.001 ETH"
    assert first[1] == "POST /v1/summarize 200 {'summary': 'Pay per call'} paid 0.01 ETH"
    # Run again: the agent, a new process, pays on its stored channel, for these two calls only.
    assert run_agent(env, url)[1] == first[1]

    # Each store read apart, as its own account's rows (a PostgreSQL database holds many accounts').
    with VoucherStore.open(store_at("micropay"), account=agent.address) as agent_store:
        (channel,) = agent_store.channels("payer")
    assert channel.key.payer == agent.address and channel.key.payee == seller.address
    store = VoucherStore.open(seller_store, account=seller.address)
    (held,) = [c for c in store.channels("payee") if c.id == channel.id]
    gross = 2 * (JOKE + SUMMARY)
    assert store.charged(held.ref) == (gross, 4)
    best = store.best_voucher(held.ref)
    assert best is not None and best[0].amount == gross
    assert [(e.receipt.task_id, e.receipt.amount) for e in store.ledger(held.ref)] == [
        ("GET /v1/joke", JOKE), ("POST /v1/summarize", SUMMARY)] * 2
    assert escrow.channel(held.key).deposit == 10**17  # the agent's cap: 0.1 ETH per channel
