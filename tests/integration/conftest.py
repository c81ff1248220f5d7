"""A parametrized `node`: every integration test runs on eth-tester and on a real anvil."""

from __future__ import annotations

import pytest

from chains import Anvil, AnvilChain, EthTesterChain
from micropay import Escrow
from micropay._utils.reverts import ErrorDecoder
from micropay.transactions import TransactionPipeline


@pytest.fixture(scope="session")
def anvil():
    node = Anvil()
    yield node
    node.stop()


@pytest.fixture(scope="module", params=["eth-tester", "anvil"])
def node(request, w3, tester):
    if request.param == "eth-tester":
        return EthTesterChain(w3, tester)
    return AnvilChain(request.getfixturevalue("anvil").url)


@pytest.fixture(autouse=True)
def _isolated_node(request):
    """Roll anvil back after each test (eth-tester has its own snapshot fixture)."""
    if "node" not in request.fixturenames:
        yield
        return
    node = request.getfixturevalue("node")
    snapshot = node.snapshot() if node.name == "anvil" else None
    yield
    if snapshot is not None:
        node.revert(snapshot)


@pytest.fixture(scope="module")
def deployed(node, helper_contracts):
    """An escrow and a 6-decimals permit token, deployed by the library on this node."""
    deployer = node.fund()
    escrow = Escrow.deploy(node.w3, deployer)
    data = helper_contracts["TestToken"]
    factory = node.w3.eth.contract(abi=data["abi"], bytecode=data["bytecode"])
    receipt = TransactionPipeline(node.w3, ErrorDecoder(data["abi"])).send(deployer, factory.constructor())
    token = node.w3.eth.contract(address=receipt.contract_address, abi=data["abi"])
    return escrow, token, deployer
