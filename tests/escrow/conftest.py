"""Fixtures of the escrow contract tests: keys that hold no ETH, contract wallets, a real Safe."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from escrow_kit import local_account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from helpers import transact
from safe import Safe, SafeStack, deploy_safe_stack

ETHER = 10**18


@pytest.fixture(scope="session")
def hot_key() -> LocalAccount:
    """A per-task signing key a payer delegates to; it never holds ETH."""
    return local_account("hot key")


@pytest.fixture(scope="session")
def other_hot_key() -> LocalAccount:
    return local_account("other hot key")


@pytest.fixture(scope="session")
def key_of(key_of: Callable[[str], bytes], hot_key: LocalAccount, other_hot_key: LocalAccount
           ) -> Callable[[str], bytes]:
    """The session's key_of, knowing the hot keys too (so ``channels`` signs with them)."""
    extra = {account.address: bytes(account.key) for account in (hot_key, other_hot_key)}
    return lambda address: extra[address] if address in extra else key_of(address)


@pytest.fixture(scope="session")
def wallet_owner(accounts: list[str]) -> str:
    """The node account that owns the OwnerWallet."""
    return accounts[5]


@pytest.fixture(scope="session")
def owner_wallet(deploy_helper: Callable[..., Any], wallet_owner: str) -> Any:
    """An EIP-1271 wallet whose owner's ECDSA signature over a digest is its signature."""
    return deploy_helper("OwnerWallet", wallet_owner)


@pytest.fixture(scope="session")
def yes_wallet(deploy_helper: Callable[..., Any]) -> Any:
    """An EIP-1271 wallet that accepts every signature over every digest."""
    return deploy_helper("YesWallet")


@pytest.fixture(scope="session")
def safe_owners() -> list[LocalAccount]:
    return [local_account(f"safe owner {i}") for i in range(3)]


@pytest.fixture(scope="session")
def safe_stack(w3: Web3, deployer: str) -> SafeStack:
    return deploy_safe_stack(w3, deployer)


@pytest.fixture(scope="session")
def safe(safe_stack: SafeStack, safe_owners: list[LocalAccount], w3: Web3, deployer: str) -> Safe:
    """A real Safe 1.4.1, 2-of-3, holding 10 ETH (changes are rolled back after each test)."""
    created = safe_stack.create_safe(safe_owners, threshold=2)
    w3.eth.wait_for_transaction_receipt(
        w3.eth.send_transaction({"from": deployer, "to": created.address, "value": 10 * ETHER}))
    return created


@pytest.fixture
def open_as(escrow: Any, chain: Any) -> Callable[..., Any]:
    """Open an ETH channel from a contract wallet with an ``execute(target, value, data)``."""

    def _open(wallet: Any, sender: str, payee: str, deposit: int, *, salt: int, signer: str = "0x" + "00" * 20,
              expiry: int | None = None) -> Any:
        expiry = expiry if expiry is not None else chain.now() + 30 * 86_400
        data = escrow.functions.open(payee, signer, salt, expiry, 3_600, b"\x00" * 32)._encode_transaction_data()
        return transact(wallet.functions.execute(escrow.address, deposit, data), sender, deposit)

    return _open
