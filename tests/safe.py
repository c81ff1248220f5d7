"""A real Safe smart account for tests: Safe 1.4.1's audited contracts, from the pinned npm package.

The contracts (the Safe singleton, SafeProxyFactory, CompatibilityFallbackHandler and
MultiSendCallOnly) are compiled from ``node_modules/@safe-global/safe-contracts`` by the project's
own pipeline (``scripts/compile_contracts.py``, solc 0.8.30), once per source hash, and deployed
like any helper contract. A :class:`Safe` is then driven the way Safe{Wallet} drives one:

* :meth:`Safe.exec` has the owners sign the EIP-712 SafeTx hash and calls ``execTransaction``;
* :meth:`Safe.exec_batch` is a Transaction Builder batch: a DELEGATECALL to MultiSendCallOnly;
* :meth:`Safe.sign_message` produces owner signatures over the SafeMessage hash, which the Safe
  accepts through EIP-1271 ``isValidSignature(bytes32,bytes)`` (served by its fallback handler).

    stack = deploy_safe_stack(w3, deployer)
    safe = stack.create_safe([alice, bob, carol], threshold=2)
    safe.exec(recipient, 10**18, b"", signers=[alice, bob], sender=deployer)
    signature = safe.sign_message(digest, [carol, alice])
    assert safe.is_valid_signature(digest, signature) == EIP1271_MAGIC_VALUE

Senders are what :class:`micropay.transactions.TransactionPipeline` takes: the address of a
node-managed account (eth-tester's, anvil's) or a funded ``LocalAccount``. Owners sign with
``LocalAccount`` keys.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypedDict, cast

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_tester.exceptions import TransactionFailed
from eth_typing import ChecksumAddress, Hash32
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD

# scripts/ is on pytest's pythonpath, not on mypy's: unchecked here, and typed Any.
import compile_contracts  # type: ignore[import-not-found, unused-ignore]
from compile_cache import cached_json  # type: ignore[import-not-found, unused-ignore]
from micropay._utils.reverts import ErrorDecoder, revert_data
from micropay.errors import MicropayError
from micropay.transactions import Receipt, Sender, TransactionPipeline

SAFE_VERSION: Final = "1.4.1"
SAFE_PACKAGE: Final = Path(compile_contracts.ROOT) / "node_modules" / "@safe-global" / "safe-contracts"
#: Contract name -> source file under the package's contracts/ directory.
SAFE_SOURCES: Final = {
    "Safe": "Safe.sol",
    "SafeL2": "SafeL2.sol",
    "SafeProxyFactory": "proxies/SafeProxyFactory.sol",
    "CompatibilityFallbackHandler": "handler/CompatibilityFallbackHandler.sol",
    "MultiSendCallOnly": "libraries/MultiSendCallOnly.sol",
}
#: The project's settings minus the IR pipeline: Safe 1.4.1 predates it, and ``execTransaction``
#: fails under viaIR with "stack too deep". 200 optimizer runs: the Safe singleton is 12 KB of code.
SAFE_SETTINGS: Final[dict[str, Any]] = {
    **compile_contracts.SETTINGS,
    "viaIR": False,
    "optimizer": {"enabled": True, "runs": 200},
}

ZERO_ADDRESS: Final = to_checksum_address("0x" + "00" * 20)
#: ``Enum.Operation`` of Safe transactions.
CALL: Final = 0
DELEGATE_CALL: Final = 1
#: What ``isValidSignature(bytes32,bytes)`` returns for a valid signature (EIP-1271).
EIP1271_MAGIC_VALUE: Final = bytes.fromhex("1626ba7e")

# keccak256 of the EIP-712 type strings, as Safe.sol and CompatibilityFallbackHandler.sol hard-code them.
DOMAIN_TYPEHASH: Final = keccak(text="EIP712Domain(uint256 chainId,address verifyingContract)")
SAFE_TX_TYPEHASH: Final = keccak(
    text="SafeTx(address to,uint256 value,bytes data,uint8 operation,uint256 safeTxGas,uint256 baseGas,"
    "uint256 gasPrice,address gasToken,address refundReceiver,uint256 nonce)"
)
SAFE_MSG_TYPEHASH: Final = keccak(text="SafeMessage(bytes message)")

_ERROR_SELECTOR: Final = keccak(text="Error(string)")[:4]

#: One call of a batch: (to, value in wei, calldata).
BatchCall = tuple[str, int, bytes]


class ContractArtifact(TypedDict):
    """What a deployment needs: the ABI and the creation bytecode (0x-hex)."""

    abi: list[dict[str, Any]]
    bytecode: str


class SafeTxFailed(RuntimeError):
    """A Safe transaction did not do its work: execTransaction reverted (``reason`` is the Safe's
    code, e.g. GS013 for a failed inner call, GS020/GS026 for missing or bad signatures), or it
    succeeded but its inner call failed (ExecutionFailure, possible when safeTxGas is set)."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


# -- compilation ---------------------------------------------------------------------------------


def _source_digest() -> str:
    """Hash of everything the compilation depends on: every .sol of the package, the settings
    and the compiler version."""
    digest = hashlib.sha256(f"{compile_contracts.SOLC_VERSION}\n{SAFE_SETTINGS!r}\n".encode())
    for path in sorted((SAFE_PACKAGE / "contracts").rglob("*.sol")):
        digest.update(path.relative_to(SAFE_PACKAGE).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _compile() -> dict[str, ContractArtifact]:
    paths = [SAFE_PACKAGE / "contracts" / source for source in SAFE_SOURCES.values()]
    output: dict[str, Any] = compile_contracts.compile_files(paths, settings=SAFE_SETTINGS)
    units = {path.resolve().relative_to(Path(compile_contracts.ROOT)).as_posix() for path in paths}
    return {
        name: {"abi": data["abi"], "bytecode": "0x" + data["evm"]["bytecode"]["object"]}
        for unit, contracts in output["contracts"].items()
        if unit in units
        for name, data in contracts.items()
        if name in SAFE_SOURCES
    }


@functools.cache
def safe_contracts() -> dict[str, ContractArtifact]:
    """ABI and bytecode of the contracts in :data:`SAFE_SOURCES`, by name.

    Compiled once per source hash and kept in a file under the system temp directory (as
    tests/conftest.py keeps the helper contracts when pytest's cache is off), then in memory.
    Raises RuntimeError if the npm package is missing, and compile_contracts.CompileError if
    the sources do not compile."""
    package_json = SAFE_PACKAGE / "package.json"
    if not package_json.exists():
        raise RuntimeError(f"{SAFE_PACKAGE} is missing: run `npm ci` in the project root")
    version = json.loads(package_json.read_text())["version"]
    if version != SAFE_VERSION:
        raise RuntimeError(f"@safe-global/safe-contracts is {version}, expected {SAFE_VERSION}: run `npm ci`")
    return cast(dict[str, ContractArtifact], cached_json("micropay-test-safe", _source_digest(), _compile))


# -- hashing and signing, in Python ----------------------------------------------------------------


@dataclass(frozen=True)
class SafeTx:
    """The fields of a Safe transaction, as ``getTransactionHash`` and ``execTransaction`` take them."""

    to: str
    value: int
    data: bytes
    nonce: int
    operation: int = CALL
    safe_tx_gas: int = 0
    base_gas: int = 0
    gas_price: int = 0
    gas_token: str = ZERO_ADDRESS
    refund_receiver: str = ZERO_ADDRESS

    def fields(self) -> tuple[ChecksumAddress, int, bytes, int, int, int, int, ChecksumAddress, ChecksumAddress]:
        """Every field but the nonce, in the contract's argument order."""
        return (to_checksum_address(self.to), self.value, self.data, self.operation, self.safe_tx_gas,
                self.base_gas, self.gas_price, to_checksum_address(self.gas_token),
                to_checksum_address(self.refund_receiver))

    def eip712_hash(self, chain_id: int, safe: str) -> bytes:
        """The hash owners sign, computed here (Safe.getTransactionHash computes the same)."""
        to, value, data, *rest = self.fields()
        struct = abi_encode(
            ["bytes32", "address", "uint256", "bytes32", "uint8", "uint256", "uint256", "uint256", "address",
             "address", "uint256"],
            [SAFE_TX_TYPEHASH, to, value, keccak(data), *rest, self.nonce],
        )
        return keccak(b"\x19\x01" + domain_separator(chain_id, safe) + keccak(struct))


def domain_separator(chain_id: int, safe: str) -> bytes:
    """A Safe's EIP-712 domain separator: ``EIP712Domain(uint256 chainId,address verifyingContract)``."""
    return keccak(abi_encode(["bytes32", "uint256", "address"], [DOMAIN_TYPEHASH, chain_id, safe]))


def safe_message_hash(chain_id: int, safe: str, digest: bytes) -> bytes:
    """The SafeMessage hash owners sign for EIP-1271 over the 32-byte ``digest``: the EIP-712 hash
    of ``SafeMessage(bytes message)`` with message = abi.encode(digest), in the Safe's domain."""
    message = abi_encode(["bytes32"], [digest])
    struct = keccak(abi_encode(["bytes32", "bytes32"], [SAFE_MSG_TYPEHASH, keccak(message)]))
    return keccak(b"\x19\x01" + domain_separator(chain_id, safe) + struct)


def sign_hash(digest: bytes, signers: Sequence[LocalAccount]) -> bytes:
    """The owners' signatures of a 32-byte hash as a Safe checks them: each 65 bytes r, s, v
    (v 27/28, a plain ECDSA signature of the hash itself), ordered by owner address, ascending."""
    ordered = sorted(signers, key=lambda account: int(account.address, 16))
    return b"".join(bytes(account.unsafe_sign_hash(Hash32(digest)).signature) for account in ordered)


def encode_multisend(calls: Sequence[BatchCall]) -> bytes:
    """MultiSend's packed encoding of calls: for each, operation (uint8, 0 = CALL), to (20 bytes),
    value (uint256), data length (uint256), data."""
    return b"".join(
        CALL.to_bytes(1, "big") + bytes.fromhex(to_checksum_address(to)[2:]) + value.to_bytes(32, "big")
        + len(data).to_bytes(32, "big") + data
        for to, value, data in calls
    )


# -- deployment and execution ----------------------------------------------------------------------


def _address(owner: LocalAccount | str) -> ChecksumAddress:
    return to_checksum_address(owner if isinstance(owner, str) else owner.address)


def _reason(exc: BaseException) -> str | None:
    """The Error(string) reason (a Safe GSxxx code) behind a failed call or transaction, if any."""
    current: BaseException | None = exc
    while current is not None:
        data = revert_data(current)
        if data is not None and data[:4] == _ERROR_SELECTOR:
            try:
                return str(abi_decode(["string"], data[4:])[0])
            except Exception:  # noqa: BLE001 - malformed revert data is no reason at all
                return None
        code = re.search(r"\bGS\d{3}\b", str(current))  # eth-tester puts only the decoded reason in its message
        if code is not None:
            return code.group()
        current = current.__cause__
    return None


def _send(w3: Web3, sender: Sender, call: ContractFunction | ContractConstructor, value: int = 0) -> Receipt:
    """Send through the project's pipeline; a revert raises :class:`SafeTxFailed` with its reason."""
    try:
        return TransactionPipeline(w3, ErrorDecoder([])).send(sender, call, value=value)
    except MicropayError as exc:
        reason = _reason(exc)
        raise SafeTxFailed(f"transaction reverted ({reason or exc})", reason) from exc


def _contract(w3: Web3, name: str, address: str) -> Contract:
    return w3.eth.contract(address=to_checksum_address(address), abi=safe_contracts()[name]["abi"])


def _deploy(w3: Web3, name: str, deployer: Sender) -> Contract:
    artifact = safe_contracts()[name]
    receipt = _send(w3, deployer, w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"]).constructor())
    assert receipt.contract_address is not None
    return _contract(w3, name, receipt.contract_address)


@dataclass
class SafeStack:
    """The contracts every Safe on a chain shares; :meth:`create_safe` makes Safes from them."""

    w3: Web3
    deployer: Sender
    singleton: Contract
    factory: Contract
    handler: Contract
    multisend: Contract
    singleton_name: str = "Safe"
    _salts: Iterator[int] = field(default_factory=itertools.count, repr=False)

    def create_safe(self, owners: Sequence[LocalAccount | str], threshold: int, *, salt_nonce: int | None = None,
                    sender: Sender | None = None) -> Safe:
        """A new Safe proxy (``createProxyWithNonce``) set up with these owners and threshold, the
        CompatibilityFallbackHandler as fallback handler, no modules and no setup payment.
        Raises SafeTxFailed if setup reverts (a bad threshold or owner; the factory re-reverts
        with no data, so ``reason`` is None)."""
        addresses = [_address(owner) for owner in owners]
        initializer = self.singleton.encode_abi(
            "setup", args=[addresses, threshold, ZERO_ADDRESS, b"", self.handler.address, ZERO_ADDRESS, 0,
                           ZERO_ADDRESS])
        salt = next(self._salts) if salt_nonce is None else salt_nonce
        receipt = _send(self.w3, self.deployer if sender is None else sender,
                        self.factory.functions.createProxyWithNonce(self.singleton.address, initializer, salt))
        created = self.factory.events.ProxyCreation().process_receipt(receipt.web3_receipt, errors=DISCARD)
        assert len(created) == 1, f"expected one ProxyCreation event, got {created}"
        address = to_checksum_address(created[0]["args"]["proxy"])
        return Safe(self, address, _contract(self.w3, self.singleton_name, address),
                    _contract(self.w3, "CompatibilityFallbackHandler", address))


def deploy_safe_stack(w3: Web3, deployer: Sender, *, l2: bool = False) -> SafeStack:
    """Deploy the Safe singleton (SafeL2, which also emits events per transaction, if ``l2``), the
    proxy factory, the CompatibilityFallbackHandler and MultiSendCallOnly, sent by ``deployer``."""
    singleton_name = "SafeL2" if l2 else "Safe"
    return SafeStack(w3, deployer, _deploy(w3, singleton_name, deployer), _deploy(w3, "SafeProxyFactory", deployer),
                     _deploy(w3, "CompatibilityFallbackHandler", deployer), _deploy(w3, "MultiSendCallOnly", deployer),
                     singleton_name)


@dataclass(frozen=True)
class Safe:
    """One Safe proxy. ``contract`` is the Safe's ABI at its address; ``handler`` is the fallback
    handler's ABI at the same address (the Safe forwards those calls to its fallback handler)."""

    stack: SafeStack
    address: ChecksumAddress
    contract: Contract
    handler: Contract

    @property
    def w3(self) -> Web3:
        return self.stack.w3

    def owners(self) -> list[ChecksumAddress]:
        return [to_checksum_address(owner) for owner in self.contract.functions.getOwners().call()]

    def threshold(self) -> int:
        return int(self.contract.functions.getThreshold().call())

    def nonce(self) -> int:
        return int(self.contract.functions.nonce().call())

    def transaction(self, to: str, value: int, data: bytes, *, operation: int = CALL, safe_tx_gas: int = 0,
                    nonce: int | None = None) -> SafeTx:
        """A Safe transaction with the next nonce (unless given), no refund and no gas payment."""
        return SafeTx(to, value, data, self.nonce() if nonce is None else nonce, operation, safe_tx_gas)

    def transaction_hash(self, tx: SafeTx) -> bytes:
        """The hash owners sign, as the Safe computes it (``getTransactionHash``)."""
        return bytes(self.contract.functions.getTransactionHash(*tx.fields(), tx.nonce).call())

    def exec(self, to: str, value: int, data: bytes, signers: Sequence[LocalAccount], sender: Sender, *,
             operation: int = CALL, safe_tx_gas: int = 0) -> Receipt:
        """Have ``signers`` sign a Safe transaction and send ``execTransaction`` from ``sender``.

        Returns the receipt of a transaction whose inner call succeeded (ExecutionSuccess).
        Raises SafeTxFailed if execTransaction reverts (GS013: the inner call failed, with
        safe_tx_gas 0; GS020, GS026: too few or bad signatures) or the inner call failed
        (ExecutionFailure, with safe_tx_gas set)."""
        tx = self.transaction(to, value, data, operation=operation, safe_tx_gas=safe_tx_gas)
        tx_hash = self.transaction_hash(tx)
        call = self.contract.functions.execTransaction(*tx.fields(), sign_hash(tx_hash, signers))
        receipt = _send(self.w3, sender, call)
        logs = receipt.web3_receipt
        if self.contract.events.ExecutionFailure().process_receipt(logs, errors=DISCARD):
            raise SafeTxFailed(f"Safe transaction 0x{tx_hash.hex()} executed, but its call failed (ExecutionFailure)")
        succeeded = self.contract.events.ExecutionSuccess().process_receipt(logs, errors=DISCARD)
        assert [bytes(event["args"]["txHash"]) for event in succeeded] == [tx_hash], "no ExecutionSuccess"
        return receipt

    def exec_batch(self, calls: Sequence[BatchCall], signers: Sequence[LocalAccount], sender: Sender) -> Receipt:
        """Run ``calls`` atomically as Safe{Wallet} runs a Transaction Builder batch: one Safe
        transaction that DELEGATECALLs MultiSendCallOnly.multiSend with the packed calls (their
        ETH comes from the Safe's balance). Raises SafeTxFailed as :meth:`exec` does (any call
        failing reverts the batch: GS013)."""
        data = bytes.fromhex(self.stack.multisend.encode_abi("multiSend", args=[encode_multisend(calls)])[2:])
        return self.exec(self.stack.multisend.address, 0, data, signers, sender, operation=DELEGATE_CALL)

    def message_hash(self, digest: bytes) -> bytes:
        """The SafeMessage hash for ``digest``, as the fallback handler computes it
        (``getMessageHashForSafe(safe, abi.encode(digest))``)."""
        message = abi_encode(["bytes32"], [digest])
        return bytes(self.stack.handler.functions.getMessageHashForSafe(self.address, message).call())

    def sign_message(self, digest: bytes, signers: Sequence[LocalAccount]) -> bytes:
        """The signature bytes that make this Safe's ``isValidSignature(digest, signature)``
        return :data:`EIP1271_MAGIC_VALUE`, if ``signers`` are at least ``threshold`` owners:
        their signatures of the SafeMessage hash, ordered by owner address."""
        return sign_hash(self.message_hash(digest), signers)

    def is_valid_signature(self, digest: bytes, signature: bytes) -> bytes:
        """What ``isValidSignature(bytes32,bytes)`` (EIP-1271) returns: the magic value 0x1626ba7e
        when the signature is good. Safe 1.4.1 reverts otherwise (GS020 too short, GS026 not an
        owner or out of order...): web3 raises ContractLogicError, eth-tester TransactionFailed."""
        fn = self.handler.get_function_by_signature("isValidSignature(bytes32,bytes)")
        return bytes(fn(digest, signature).call())

    def accepts_signature(self, digest: bytes, signature: bytes) -> bool:
        """Whether EIP-1271 validation of ``signature`` over ``digest`` succeeds (a revert is a no)."""
        try:
            return self.is_valid_signature(digest, signature) == EIP1271_MAGIC_VALUE
        except (ContractLogicError, TransactionFailed):
            return False
