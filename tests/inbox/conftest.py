"""The inbox tests' world: one anvil and one escrow for the folder, a freelancer with a key file,
real `micropay serve` processes, and clients (library payers) in this test process that post over
HTTP (helpers: inboxhelpers.py)."""

from __future__ import annotations

import pytest
from eth_account import Account
from inboxhelpers import Freelancer, World
from web3 import Web3

from chains import Anvil
from micropay import Escrow, Payer


@pytest.fixture(scope="session")
def world():
    node = Anvil()
    w3 = Web3(Web3.HTTPProvider(node.url))
    deployer = Account.create()
    w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(
        {"from": w3.eth.accounts[0], "to": deployer.address, "value": 10**20}))
    yield World(node, w3, Escrow.deploy(w3, deployer))
    node.stop()


@pytest.fixture(scope="module")
def freelancer(world, tmp_path_factory):
    return Freelancer(world, tmp_path_factory.mktemp("freelancer"))


@pytest.fixture(scope="module")
def make_client(world, tmp_path_factory):
    """A funded client with its own store, as a library Payer."""
    folder = tmp_path_factory.mktemp("clients")

    def make(name: str = "client") -> Payer:
        account = world.fund()
        return Payer(world.escrow, account, folder / f"{name}-{account.address}.db")

    return make
