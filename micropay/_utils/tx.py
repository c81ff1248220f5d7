"""Sending contract transactions: estimate, sign locally, send raw, await the receipt.

A transaction from an eth-account ``LocalAccount`` is signed here and sent with
``eth_sendRawTransaction``, so it works on any JSON-RPC node; an address string means a
node-managed account (eth-tester's, a dev node's) and goes through ``eth_sendTransaction``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Union

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import TimeExhausted

from micropay._utils.reverts import ErrorDecoder, revert_data
from micropay.errors import InsufficientFunds, MicropayError, TransactionError

Sender = Union[LocalAccount, str]
#: Extra gas over the estimate: state can move between estimating and mining.
GAS_MARGIN = 1.25

# One writer per key: concurrent sends from one account in this process take turns, so each
# reads the pending nonce after the previous one was handed to the node.
_send_locks: dict[str, threading.Lock] = {}
_send_locks_guard = threading.Lock()


def sender_address(sender: Sender) -> str:
    return sender if isinstance(sender, str) else sender.address


def _lock_for(address: str) -> threading.Lock:
    with _send_locks_guard:
        return _send_locks.setdefault(address, threading.Lock())


def classify(exc: BaseException, decoder: ErrorDecoder, map_revert: Callable[[Any], MicropayError]) -> MicropayError:
    """Turn whatever web3 or the node raised into one micropay error."""
    revert = decoder.from_exception(exc)
    if revert is not None:
        return map_revert(revert)
    text = str(exc).lower()
    # geth/anvil: "insufficient funds"; eth-tester: "cannot afford txn gas"
    if any(phrase in text for phrase in ("insufficient funds", "doesn't have enough funds", "cannot afford")):
        return InsufficientFunds(f"not enough ETH for the value plus gas: {exc}")
    if revert_data(exc) is not None or "revert" in text:
        return TransactionError(f"the transaction would revert: {exc}")
    return TransactionError(f"{type(exc).__name__}: {exc}")


def estimate(fn: Any, sender: Sender, value: int, decoder: ErrorDecoder,
             map_revert: Callable[[Any], MicropayError]) -> int:
    """Gas for the call, or the micropay error its revert means."""
    try:
        return fn.estimate_gas({"from": sender_address(sender), "value": value})
    except MicropayError:
        raise
    except Exception as exc:  # noqa: BLE001 - web3 and nodes raise many kinds; classify them all
        raise classify(exc, decoder, map_revert) from exc


def sign(w3: Web3, account: LocalAccount, fn: Any, *, value: int, gas: int) -> tuple[bytes, bytes]:
    """(raw transaction, its hash), signed locally with the pending nonce. Callers hold
    :func:`nonce_lock` until the transaction is broadcast."""
    params = {"from": account.address, "value": value, "gas": gas,
              "nonce": w3.eth.get_transaction_count(account.address, "pending")}
    signed = account.sign_transaction(fn.build_transaction(params))
    return bytes(signed.raw_transaction), bytes(signed.hash)


def nonce_lock(sender: Sender) -> threading.Lock:
    return _lock_for(sender_address(sender))


def wait(w3: Web3, tx_hash: bytes, timeout: float) -> Any:
    try:
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout)
    except TimeExhausted as exc:
        raise TransactionError(f"transaction 0x{bytes(tx_hash).hex()} was not mined within {timeout:.0f}s") from exc
    if receipt.status != 1:
        raise TransactionError(f"transaction 0x{bytes(tx_hash).hex()} failed on chain (gas used {receipt.gasUsed})")
    return receipt


def send(
    w3: Web3,
    sender: Sender,
    fn: Any,
    *,
    value: int = 0,
    decoder: ErrorDecoder,
    map_revert: Callable[[Any], MicropayError],
    timeout: float = 120.0,
) -> Any:
    """Estimate gas (decoding a revert into a micropay error), send, and return the receipt."""
    gas = int(estimate(fn, sender, value, decoder, map_revert) * GAS_MARGIN)
    with nonce_lock(sender):
        try:
            if isinstance(sender, str):
                nonce = w3.eth.get_transaction_count(sender, "pending")
                tx_hash = w3.eth.send_transaction(
                    fn.build_transaction({"from": sender, "value": value, "gas": gas, "nonce": nonce}))
            else:
                raw, _ = sign(w3, sender, fn, value=value, gas=gas)
                tx_hash = w3.eth.send_raw_transaction(raw)
        except Exception as exc:  # noqa: BLE001
            raise classify(exc, decoder, map_revert) from exc
    return wait(w3, tx_hash, timeout)
