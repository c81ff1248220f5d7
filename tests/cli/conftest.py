"""The command runs on the in-process chain: tests put it in place of the node from outside.

The command builds its node with :func:`micropay.cli.context.connect`; here that returns the
session's eth-tester Web3 whenever no ``--rpc`` is given (a given ``--rpc`` still goes to the
real function, so the unreachable-node tests reach a real socket). The in-process chain mines a
block per transaction and no more, so the tests run with ``MICROPAY_CONFIRMATIONS=0`` themselves.
"""

from __future__ import annotations

import pytest
from clihelpers import Person
from web3 import Web3

from micropay.cli import context


@pytest.fixture(autouse=True)
def in_process_node(monkeypatch: pytest.MonkeyPatch, w3: Web3) -> None:
    real_connect = context.connect

    def connect(rpc: str | None) -> Web3:
        return w3 if rpc is None else real_connect(rpc)

    monkeypatch.setattr(context, "connect", connect)


@pytest.fixture
def people(w3: Web3, tmp_path) -> tuple[Person, Person, str]:
    """A client who deployed the escrow, and a freelancer who knows nothing of it."""
    client, freelancer = Person(w3, tmp_path, "client"), Person(w3, tmp_path, "freelancer")
    escrow = client.run("deploy").stdout.strip()
    return client, freelancer, escrow
