"""Sending contract transactions: estimate, sign locally, send raw, await the receipt.

A transaction from an eth-account ``LocalAccount`` is signed here and sent with
``eth_sendRawTransaction``, so it works on any JSON-RPC node; an address string means a
node-managed account (eth-tester's, a dev node's) and goes through ``eth_sendTransaction``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Union

from eth_account.signers.local import LocalAccount
from web3 import Web3

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


@dataclass(frozen=True)
class TxOptions:
    """How transactions are sent: fee cap (wei per gas, EIP-1559), confirmations, timeout."""

    max_fee_per_gas: int | None = None
    confirmations: int = 0
    timeout: float = 120.0
    poll_interval: float = 0.1


def _apply_fee_cap(w3: Web3, tx: dict[str, Any], cap: int | None) -> None:
    if cap is None or "maxFeePerGas" not in tx:
        return
    base_fee = w3.eth.get_block("latest").get("baseFeePerGas", 0)
    if base_fee >= cap:
        raise TransactionError(f"the network's base fee ({base_fee} wei/gas) is at or above your cap ({cap}): "
                               "wait, or raise the cap")
    tx["maxFeePerGas"] = min(tx["maxFeePerGas"], cap)
    tx["maxPriorityFeePerGas"] = min(tx["maxPriorityFeePerGas"], cap - base_fee)


def sign(w3: Web3, account: LocalAccount, fn: Any, *, value: int, gas: int,
         options: TxOptions = TxOptions()) -> tuple[bytes, bytes]:
    """(raw transaction, its hash), signed locally with the pending nonce and EIP-1559 fees
    (capped by ``options``). Callers hold :func:`nonce_lock` until the transaction is broadcast."""
    params = {"from": account.address, "value": value, "gas": gas,
              "nonce": w3.eth.get_transaction_count(account.address, "pending")}
    tx = fn.build_transaction(params)
    _apply_fee_cap(w3, tx, options.max_fee_per_gas)
    signed = account.sign_transaction(tx)
    return bytes(signed.raw_transaction), bytes(signed.hash)


class _StaleNonce(Exception):
    """The nonce was used by another transaction: sign again with a fresh one."""


def broadcast(w3: Web3, raw: bytes, tx_hash: bytes) -> None:
    """Send a signed transaction, treating what nodes say about duplicates for what it means."""
    try:
        w3.eth.send_raw_transaction(raw)
    except Exception as exc:  # noqa: BLE001 - nodes word these differently; classified below
        text = str(exc).lower()
        if "already known" in text or "already imported" in text:
            return  # this very transaction is already in the pool: wait for it
        if "nonce too low" in text:
            if _receipt(w3, tx_hash) is not None:
                return  # it was ours, and it is mined
            raise _StaleNonce from exc
        if "replacement transaction underpriced" in text:
            raise TransactionError("another transaction from this account with the same nonce is pending at a "
                                   "higher fee: wait for it to be mined, or raise the fee cap") from exc
        raise


def _receipt(w3: Web3, tx_hash: bytes) -> Any:
    try:
        return w3.eth.get_transaction_receipt(tx_hash)
    except Exception:  # noqa: BLE001 - TransactionNotFound, or a node that errors instead
        return None


def nonce_lock(sender: Sender) -> threading.Lock:
    return _lock_for(sender_address(sender))


def wait(w3: Web3, tx_hash: bytes, timeout: float = 120.0, *, confirmations: int = 0,
         poll_interval: float = 0.1) -> Any:
    """The receipt once the transaction is ``confirmations`` blocks deep. A receipt that vanishes
    in a reorg is waited for again; the deadline is ``timeout`` seconds in all."""
    deadline = time.monotonic() + timeout
    while True:
        receipt = _receipt(w3, tx_hash)
        if receipt is not None and w3.eth.block_number >= receipt.blockNumber + confirmations:
            again = _receipt(w3, tx_hash)  # still there, in the same block?
            if again is not None and again.blockHash == receipt.blockHash:
                break
        if time.monotonic() > deadline:
            raise TransactionError(f"transaction 0x{bytes(tx_hash).hex()} was not mined "
                                   f"(with {confirmations} confirmations) within {timeout:.0f}s")
        time.sleep(poll_interval)
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
    options: TxOptions = TxOptions(),
) -> Any:
    """Estimate gas (decoding a revert into a micropay error), send, and return the receipt."""
    gas = int(estimate(fn, sender, value, decoder, map_revert) * GAS_MARGIN)
    for attempt in range(3):
        with nonce_lock(sender):
            try:
                if isinstance(sender, str):
                    nonce = w3.eth.get_transaction_count(sender, "pending")
                    tx_hash = bytes(w3.eth.send_transaction(
                        fn.build_transaction({"from": sender, "value": value, "gas": gas, "nonce": nonce})))
                else:
                    raw, tx_hash = sign(w3, sender, fn, value=value, gas=gas, options=options)
                    broadcast(w3, raw, tx_hash)
            except _StaleNonce:
                if attempt == 2:
                    raise TransactionError("the account's nonce kept moving: is another program sending "
                                           "from this key?") from None
                continue
            except MicropayError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise classify(exc, decoder, map_revert) from exc
        return wait(w3, tx_hash, options.timeout, confirmations=options.confirmations,
                    poll_interval=options.poll_interval)
    raise AssertionError("unreachable")
