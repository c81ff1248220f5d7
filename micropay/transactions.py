"""The transaction pipeline: the one way micropay sends a transaction to a node.

Every write goes through :meth:`TransactionPipeline.send`: estimate gas (a revert becomes the
matching micropay error), sign locally with the pending nonce and EIP-1559 fees (capped by
:class:`TxOptions`), hand the signed bytes to an optional ``before_broadcast`` hook (so a caller
can record the transaction durably before the node sees it), broadcast, and wait for the
receipt ``confirmations`` blocks deep, surviving a reorg of the blocks in between.

A "nonce too low" from the node means another transaction took the nonce: the pipeline signs
again with a fresh one (``on_dropped`` tells the caller the first signed transaction will never
be mined). A transaction from an eth-account ``LocalAccount`` is sent raw, so it works on any
JSON-RPC node; an address string means a node-managed account (eth-tester's, a dev node's),
signed by the node, whose hash is known only once the node has it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import TransactionNotFound
from web3.types import TxParams, TxReceipt, Wei

from micropay._utils.reverts import ErrorDecoder, revert_data
from micropay.errors import ContractRevert, InsufficientFunds, MicropayError, TransactionError, TransactionPending

#: Who sends: a local key (signed here) or the address of a node-managed account.
Sender = LocalAccount | str
#: Extra gas over the estimate: state can move between estimating and mining.
GAS_MARGIN = 1.25
#: Seconds a development node's head may stand still before a wait stops asking for confirmations.
DEV_STALL = 3.0
_DEV_NODES = ("anvil", "hardhat", "ganache", "ethereumtester")
_ATTEMPTS = 3


def as_checksum(address: str) -> ChecksumAddress:
    """Type an address micropay already checksummed as web3 wants it (no work at run time)."""
    return cast(ChecksumAddress, address)


def sender_address(sender: Sender) -> str:
    """The checksummed address of a sender."""
    return sender if isinstance(sender, str) else sender.address


class TxJournal:
    """Every transaction a pipeline handed (or was about to hand) to the node, in order: what a
    program interrupted mid-send (Ctrl-C) must tell its user may still be mined."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def record(self, tx_hash: bytes) -> None:
        self.sent.append(tx_hash)


@dataclass(frozen=True)
class TxOptions:
    """How transactions are sent: fee cap (wei per gas, EIP-1559), confirmations, timeout, and a
    journal that records every transaction sent with these options."""

    max_fee_per_gas: int | None = None
    confirmations: int = 0
    timeout: float = 120.0
    poll_interval: float = 0.1
    journal: TxJournal | None = field(default=None, compare=False)


@dataclass(frozen=True)
class SignedTx:
    """A transaction as handed to the node: its hash, and its raw bytes when signed locally."""

    tx_hash: bytes
    raw: bytes | None


@dataclass(frozen=True)
class Receipt:
    """A mined transaction, typed. ``web3_receipt`` is kept for decoding its events."""

    tx_hash: bytes
    block_number: int
    block_hash: bytes
    status: int
    gas_used: int
    effective_gas_price: int
    contract_address: str | None
    web3_receipt: TxReceipt

    @property
    def fee(self) -> int:
        """What the transaction cost its sender, in wei."""
        return self.gas_used * self.effective_gas_price

    @classmethod
    def of(cls, receipt: TxReceipt) -> Receipt:
        """The typed form of a receipt as web3 returns it."""
        address = receipt.get("contractAddress")
        return cls(bytes(receipt["transactionHash"]), int(receipt["blockNumber"]), bytes(receipt["blockHash"]),
                   int(receipt["status"]), int(receipt["gasUsed"]), int(receipt.get("effectiveGasPrice", 0)),
                   None if address is None else str(address), receipt)


Hook = Callable[[SignedTx], None]


class _Transfer:
    """A plain ETH transfer, shaped like a contract call so it takes the pipeline's one path."""

    def __init__(self, w3: Web3, to: ChecksumAddress) -> None:
        self.w3, self.to = w3, to

    def estimate_gas(self, params: TxParams) -> int:
        return 21_000

    def build_transaction(self, params: TxParams) -> TxParams:
        tx: TxParams = {**params, "to": self.to, "chainId": self.w3.eth.chain_id}
        if "maxFeePerGas" not in tx and "gasPrice" not in tx:
            tip = self.w3.eth.max_priority_fee
            tx["maxPriorityFeePerGas"] = tip
            tx["maxFeePerGas"] = Wei(2 * int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0)) + tip)
        return tx


#: Anything the pipeline can send: a contract function call, a deployment, or a plain transfer.
Call = ContractFunction | ContractConstructor | _Transfer

# One writer per key: concurrent sends from one account in this process take turns, so each
# reads the pending nonce after the previous one was handed to the node.
_send_locks: dict[str, threading.Lock] = {}
_send_locks_guard = threading.Lock()


def _nonce_lock(address: str) -> threading.Lock:
    with _send_locks_guard:
        return _send_locks.setdefault(address, threading.Lock())


class _StaleNonce(Exception):
    """The nonce was used by another transaction: sign again with a fresh one."""


class _OutcomeUnknown(Exception):
    """The connection failed while broadcasting: the node may or may not have the transaction."""


def _identity(revert: ContractRevert) -> MicropayError:
    return revert


class TransactionPipeline:
    """Sends transactions to one node; reverts decode with ``decoder`` and map through ``map_revert``."""

    def __init__(self, w3: Web3, decoder: ErrorDecoder, map_revert: Callable[[ContractRevert], MicropayError]
                 = _identity, options: TxOptions | None = None) -> None:
        self.w3 = w3
        self.decoder = decoder
        self.map_revert = map_revert
        self.options = options or TxOptions()
        self._dev_node: bool | None = None

    # -- errors ------------------------------------------------------------------------------

    def classify(self, exc: BaseException) -> MicropayError:
        """Turn whatever web3 or the node raised into one micropay error."""
        if isinstance(exc, MicropayError):
            return exc
        revert = self.decoder.from_exception(exc)
        if revert is not None:
            return self.map_revert(revert)
        text = str(exc).lower()
        # geth/anvil: "insufficient funds"; eth-tester: "cannot afford txn gas"
        if any(phrase in text for phrase in ("insufficient funds", "doesn't have enough funds", "cannot afford")):
            return InsufficientFunds(f"not enough ETH for the value plus gas: {exc}")
        if revert_data(exc) is not None or "revert" in text:
            return TransactionError(f"the transaction would revert: {exc}")
        return TransactionError(f"{type(exc).__name__}: {exc}")

    # -- the steps ---------------------------------------------------------------------------

    def estimate(self, sender: Sender, call: Call, value: int = 0) -> int:
        """Gas for the call with :data:`GAS_MARGIN` added; raises the micropay error its revert means."""
        try:
            params: TxParams = {"from": as_checksum(sender_address(sender)), "value": Wei(value)}
            gas = call.estimate_gas(params)
        except Exception as exc:
            raise self.classify(exc) from exc
        return int(gas * GAS_MARGIN)

    def send(self, sender: Sender, call: Call, *, value: int = 0, gas: int | None = None,
             before_broadcast: Hook | None = None, on_dropped: Hook | None = None,
             on_mined: Callable[[Receipt], None] | None = None) -> Receipt:
        """Estimate (unless ``gas`` is given), sign, broadcast and wait for the receipt.

        ``before_broadcast`` sees every locally signed transaction before the node does (for a
        node-managed sender, right after the node has it); ``on_dropped`` sees one that will never
        be mined (its nonce went to another transaction, or the node refused it outright).
        Raises the micropay error a revert maps to, :class:`InsufficientFunds`, or
        :class:`TransactionError` (not mined in time, failed on chain, nonce kept moving).
        """
        gas = self.estimate(sender, call, value) if gas is None else gas
        signed = self._submit(sender, call, value, gas, before_broadcast, on_dropped)
        return self.wait(signed.tx_hash, on_mined=on_mined)

    def transfer(self, sender: Sender, to: str, value: int) -> Receipt:
        """Send ``value`` wei of ETH to ``to`` (a plain transfer, 21,000 gas), through the same steps."""
        return self.send(sender, _Transfer(self.w3, as_checksum(to)), value=value, gas=21_000)

    def _submit(self, sender: Sender, call: Call, value: int, gas: int, before_broadcast: Hook | None,
                on_dropped: Hook | None) -> SignedTx:
        address = sender_address(sender)
        for _ in range(_ATTEMPTS):
            with _nonce_lock(address):
                if isinstance(sender, str):
                    return self._send_from_node(sender, call, value, gas, before_broadcast)
                signed = self._sign(sender, call, value, gas)
                if self.options.journal is not None:
                    self.options.journal.record(signed.tx_hash)
                if before_broadcast is not None:
                    before_broadcast(signed)
                try:
                    self._broadcast(signed)
                except _StaleNonce:
                    if on_dropped is not None:
                        on_dropped(signed)
                    continue
                except _OutcomeUnknown as exc:
                    raise TransactionPending(f"the connection failed while sending transaction "
                                             f"0x{signed.tx_hash.hex()} ({exc.__cause__!r}): it may still be mined",
                                             tx_hash=signed.tx_hash) from exc.__cause__
                except (TransactionError, InsufficientFunds) as exc:
                    if on_dropped is not None:  # the node answered, and refused it
                        on_dropped(signed)
                    raise exc
                return signed
        raise TransactionError("the account's nonce kept moving: is another program sending from this key?")

    def _params(self, address: str, value: int, gas: int) -> TxParams:
        checksummed = as_checksum(address)
        return {"from": checksummed, "value": Wei(value), "gas": gas,
                "nonce": self.w3.eth.get_transaction_count(checksummed, "pending")}

    def _send_from_node(self, address: str, call: Call, value: int, gas: int, hook: Hook | None) -> SignedTx:
        try:
            tx_hash = bytes(self.w3.eth.send_transaction(call.build_transaction(self._params(address, value, gas))))
        except Exception as exc:
            raise self.classify(exc) from exc
        signed = SignedTx(tx_hash, None)
        if self.options.journal is not None:
            self.options.journal.record(tx_hash)
        if hook is not None:
            hook(signed)
        return signed

    def _sign(self, account: LocalAccount, call: Call, value: int, gas: int) -> SignedTx:
        try:
            tx = call.build_transaction(self._params(account.address, value, gas))
            self._apply_fee_cap(tx)
        except MicropayError:
            raise
        except Exception as exc:
            raise self.classify(exc) from exc
        signed = account.sign_transaction(tx)  # type: ignore[arg-type]  # TxParams is the dict it takes
        return SignedTx(bytes(signed.hash), bytes(signed.raw_transaction))

    def _apply_fee_cap(self, tx: TxParams) -> None:
        cap = self.options.max_fee_per_gas
        if cap is None or "maxFeePerGas" not in tx:
            return
        base_fee = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0))
        if base_fee >= cap:
            raise TransactionError(f"the network's base fee ({base_fee} wei/gas) is at or above your cap ({cap}): "
                                   "wait, or raise the cap")
        tx["maxFeePerGas"] = Wei(min(int(tx["maxFeePerGas"]), cap))
        tx["maxPriorityFeePerGas"] = Wei(min(int(tx["maxPriorityFeePerGas"]), cap - base_fee))

    def _broadcast(self, signed: SignedTx) -> None:
        """Send a signed transaction, treating what nodes say about duplicates for what it means."""
        assert signed.raw is not None  # only locally signed transactions are broadcast raw
        try:
            self.w3.eth.send_raw_transaction(signed.raw)
        except Exception as exc:
            text = str(exc).lower()
            if "already known" in text or "already imported" in text:
                return  # this very transaction is already in the pool: wait for it
            if "nonce too low" in text or "invalid transaction nonce" in text:  # geth/anvil; eth-tester
                if self.find_receipt(signed.tx_hash) is not None:
                    return  # it was ours, and it is mined
                raise _StaleNonce from exc
            if "replacement transaction underpriced" in text:
                raise TransactionError("another transaction from this account with the same nonce is pending at "
                                       "a higher fee: wait for it to be mined, or raise the fee cap") from exc
            if isinstance(exc, OSError):  # connection errors (requests' too): no answer from the node
                raise _OutcomeUnknown from exc
            raise self.classify(exc) from exc

    def rebroadcast(self, raw: bytes) -> None:
        """Hand a transaction signed earlier to the node again; "already known" and "nonce too
        low" (it is, or was, in) are not errors. Raises :class:`TransactionError` otherwise."""
        try:
            self.w3.eth.send_raw_transaction(raw)
        except Exception as exc:
            text = str(exc).lower()
            if not any(s in text for s in ("already known", "already imported", "nonce too low")):
                raise self.classify(exc) from exc

    # -- receipts ----------------------------------------------------------------------------

    def mines_on_demand(self) -> bool:
        """Whether the node is a development node that mines a block only when a transaction
        arrives (asked once: ``web3_clientVersion``)."""
        if self._dev_node is None:
            try:
                version = str(self.w3.client_version).lower()
            except Exception:  # noqa: BLE001 - a node that does not answer this is no dev node we know
                version = ""
            self._dev_node = any(name in version for name in _DEV_NODES)
        return self._dev_node

    def _not_confirmed(self, tx_hash: bytes, receipt: Receipt | None, head: int) -> str:
        options = self.options
        if receipt is None:
            return f"transaction 0x{tx_hash.hex()} was not mined within {options.timeout:.0f}s: it may still be"
        depth = head - receipt.block_number
        return (f"transaction 0x{tx_hash.hex()} was mined in block {receipt.block_number}, but only {depth} of the "
                f"{options.confirmations} confirmations came within {options.timeout:.0f}s: no new block was mined. "
                "A node that mines only when a transaction arrives needs --confirmations 0")

    def find_receipt(self, tx_hash: bytes) -> Receipt | None:
        """The receipt if the transaction is mined now, else None (never raises for "not found")."""
        try:
            return Receipt.of(self.w3.eth.get_transaction_receipt(HexBytes(tx_hash)))
        except TransactionNotFound:
            return None
        except Exception:  # noqa: BLE001 - some nodes error instead of answering null
            return None

    def wait(self, tx_hash: bytes, *, require_success: bool = True, on_mined: Callable[[Receipt], None] | None
             = None) -> Receipt:
        """The receipt once the transaction is ``confirmations`` blocks deep. A receipt that
        vanishes in a reorg is waited for again; the deadline is ``timeout`` seconds in all.
        ``on_mined`` sees the receipt as soon as it exists, before any confirmation.

        A development node that mines only when a transaction arrives (anvil, Hardhat, ganache,
        eth-tester) would never bring the confirmations: once its head has not moved for
        :data:`DEV_STALL` seconds, the receipt is taken as it is (such a chain has no reorgs).

        Raises :class:`TransactionPending` if it is not mined (or confirmed) in time, saying which,
        and :class:`TransactionError` if (with ``require_success``) it failed on chain."""
        options = self.options
        start = time.monotonic()
        deadline, head, moved, announced = start + options.timeout, -1, start, False
        while True:
            receipt = self.find_receipt(tx_hash)
            now, latest = time.monotonic(), self.w3.eth.block_number
            if latest != head:
                head, moved = latest, now
            if receipt is not None:
                if on_mined is not None and not announced:
                    on_mined(receipt)
                    announced = True
                deep = latest >= receipt.block_number + options.confirmations
                if deep or (now - moved > DEV_STALL and self.mines_on_demand()):
                    again = self.find_receipt(tx_hash)  # still there, in the same block?
                    if again is not None and again.block_hash == receipt.block_hash:
                        break
            if now > deadline:
                raise TransactionPending(self._not_confirmed(tx_hash, receipt, latest), tx_hash=tx_hash)
            time.sleep(options.poll_interval)
        if require_success and receipt.status != 1:
            raise TransactionError(f"transaction 0x{tx_hash.hex()} failed on chain (gas used {receipt.gas_used})")
        return receipt
