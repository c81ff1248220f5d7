"""Fixtures for the library API tests: funded LocalAccounts and an escrow deployed by the library."""

from __future__ import annotations

import pytest
from eth_account import Account

from helpers import transact
from micropay import Escrow, Payee, Payer


@pytest.fixture(scope="session")
def fund(w3, accounts):
    def _fund(account, wei=10**20):
        w3.eth.wait_for_transaction_receipt(
            w3.eth.send_transaction({"from": accounts[0], "to": account.address, "value": wei}))
        return account

    return _fund


@pytest.fixture(scope="session")
def lib_escrow(w3, fund):
    deployer = fund(Account.from_key(b"\x01" * 32))
    return Escrow.deploy(w3, deployer)


@pytest.fixture(scope="session")
def clients(fund):
    return [fund(Account.from_key(bytes([0x10 + i]) * 32)) for i in range(3)]


@pytest.fixture(scope="session")
def freelancer(fund):
    return fund(Account.from_key(b"\x20" * 32))


@pytest.fixture(scope="session")
def api_token(token, lib_escrow, clients, accounts):
    for client in clients:
        transact(token.functions.mint(client.address, 10**18), accounts[0])
    return token


@pytest.fixture
def make_payer(lib_escrow, store_at):
    """A Payer with a store of its own (``store_at(name)``, by default the account's address)."""
    def _make(account, name=None):
        return Payer(lib_escrow, account, store_at(name or account.address))

    return _make


@pytest.fixture
def payee(lib_escrow, freelancer, store_at):
    """The freelancer's Payee; its store is ``store_at("freelancer")``."""
    return Payee(lib_escrow, freelancer, store_at("freelancer"))
