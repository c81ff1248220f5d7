"""Safe{Wallet} Transaction Builder batch files: how a company wallet (a Safe) opens a channel.

A Safe cannot sign a transaction with a key of ours: its owners approve and execute it in the
Safe app. So micropay writes the transactions that open a channel into a batch file the Safe
app's Transaction Builder imports (Safe apps > Transaction Builder > drag the file in), where
the owners see every call decoded, sign and execute it as one atomic MultiSend:

* an ERC-20 channel: ``approve(escrow, deposit)`` on the token (after ``approve(escrow, 0)`` when
  the Safe already has an allowance, as USDT-style tokens demand), then ``openToken(...)``;
* an ETH channel: ``open(...)`` with the deposit as the transaction's value.

The file is the Transaction Builder's own format (its ``BatchFile``): version "1.0", the chain id
as a decimal string, values as wei strings, each call with its raw ``data`` and its decoded
``contractMethod`` / ``contractInputsValues`` (every value a string), and ``meta.checksum``
computed as the app computes it (:func:`tx_builder_checksum`), so the app imports it without a
"modified since it was generated" warning. Source of the format and the checksum:
safe-global/safe-wallet-monorepo, apps/tx-builder/src/lib/checksum.ts (and its test vectors in
checksum.test.ts, which tests/cli/test_safe_batch.py reproduces) and src/typings/models.ts, at
commit 0aa27aff847301ee5248431cedff9c659dd01add.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from web3.contract.contract import ContractFunction

from micropay._utils.crypto import keccak
from micropay.chain import Chain
from micropay.channel import ChannelKey, checked_address
from micropay.errors import MicropayValueError
from micropay.escrow import Escrow
from micropay.transactions import as_checksum

__all__ = [
    "BATCH_VERSION",
    "TX_BUILDER_VERSION",
    "BatchCall",
    "SafeInfo",
    "batch_file",
    "call_of",
    "open_calls",
    "safe_info",
    "tx_builder_checksum",
    "write_batch",
]

#: The batch file format version the Transaction Builder writes and reads.
BATCH_VERSION = "1.0"
#: The Transaction Builder version whose format these files follow (its ``meta.txBuilderVersion``).
TX_BUILDER_VERSION = "2.0.1"


@dataclass(frozen=True)
class BatchCall:
    """One transaction of a batch: the raw call, and the same call decoded for the Safe app.

    ``inputs`` are the method's ABI inputs as (name, type, internalType); ``values`` the arguments
    as the Transaction Builder spells them (decimal integers, checksummed addresses, 0x-hex bytes,
    "true"/"false"), one per input."""

    to: str
    value: int
    data: bytes
    method: str
    payable: bool
    inputs: tuple[tuple[str, str, str], ...]
    values: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The call as a ``BatchTransaction``: all five keys, as the app writes them. Never raises."""
        return {
            "to": self.to,
            "value": str(self.value),
            "data": "0x" + self.data.hex(),
            "contractMethod": {
                "inputs": [{"internalType": internal, "name": name, "type": kind}
                           for name, kind, internal in self.inputs],
                "name": self.method,
                "payable": self.payable,
            },
            "contractInputsValues": {name: value for (name, _, _), value in zip(self.inputs, self.values,
                                                                                  strict=True)},
        }


def _input_text(kind: str, value: object) -> str:
    """An argument as the Transaction Builder takes it in ``contractInputsValues``."""
    if kind == "address" and isinstance(value, str):
        return checked_address(value, "address argument")
    if kind == "bool" and isinstance(value, bool):
        return "true" if value else "false"
    if kind.startswith(("uint", "int")) and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if kind.startswith("bytes") and isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    raise MicropayValueError(f"a batch call cannot spell a {kind} argument {value!r:.40}")


def call_of(function: ContractFunction, value: int = 0) -> BatchCall:
    """The batch transaction that makes ``function`` (a web3 contract call with its arguments) with
    ``value`` wei. Raises :class:`MicropayValueError` for a call without a contract address, or an
    argument type the Transaction Builder is not given here (tuples, arrays)."""
    if function.address is None:
        raise MicropayValueError("a batch call needs the contract's address")
    abi = function.abi
    inputs = tuple((str(item["name"]), str(item["type"]), str(item.get("internalType", item["type"])))
                   for item in abi.get("inputs", []))
    if any(not name for name, _, _ in inputs):
        raise MicropayValueError(f"{function.fn_name} has an unnamed argument: the Safe app could not show it")
    values = tuple(_input_text(kind, arg) for (_, kind, _), arg in zip(inputs, function.args, strict=True))
    data = function.w3.eth.contract(abi=[abi]).encode_abi(function.fn_name, args=list(function.args))
    return BatchCall(checked_address(function.address, "contract address"), value, bytes.fromhex(data[2:]),
                     function.fn_name, abi.get("stateMutability") == "payable", inputs, values)


def open_calls(escrow: Escrow, key: ChannelKey, deposit: int, opening: tuple[ContractFunction, int]
               ) -> list[BatchCall]:
    """What the channel's payer (a Safe) executes to open ``key``'s channel with ``deposit``, given
    the ``opening`` (call, value) of :meth:`Escrow.open_call`: for a token, its approvals first;
    for ETH, the call alone, with the deposit as value.

    Reads the payer's current allowance for a token channel (one chain call). Raises
    :class:`MicropayValueError` for a token address without a contract."""
    call, value = opening
    if key.is_eth:
        return [call_of(call, value)]
    token = escrow.token(key.token)
    approvals = []
    if token.allowance(key.payer, escrow.address) != 0:  # USDT-style tokens refuse a nonzero-to-nonzero change
        approvals.append(call_of(token.contract.functions.approve(escrow.address, 0)))
    approvals.append(call_of(token.contract.functions.approve(escrow.address, deposit)))
    return [*approvals, call_of(call, value)]


# -- the file -------------------------------------------------------------------------------------


def _js(value: object) -> str:
    """``JSON.stringify`` of a primitive or of a list of key names."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _serialize(value: object) -> str:
    """The Transaction Builder's ``serializeJSONObject``: objects as their sorted key names followed
    by each value and a comma, arrays as their elements joined by commas."""
    if isinstance(value, list):
        return "[" + ",".join(_serialize(item) for item in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: str(k).encode("utf-16-be"))  # JS sort: by UTF-16 code units
        return "{" + _js(keys) + "".join(_serialize(value[k]) + "," for k in keys) + "}"
    return _js(value)


def tx_builder_checksum(batch: Mapping[str, Any]) -> str:
    """``meta.checksum`` of a batch file as the Transaction Builder computes it: keccak-256 of its
    serialization with ``meta.checksum`` removed and ``meta.name`` set to null (so renaming a batch
    keeps its checksum), as ``0x`` and 64 lowercase hex digits. Raises :class:`MicropayValueError`
    if ``batch`` has no ``meta`` object."""
    meta = batch.get("meta")
    if not isinstance(meta, Mapping):
        raise MicropayValueError("a batch file has a meta object")
    bare = {key: value for key, value in meta.items() if key != "checksum"}
    bare["name"] = None
    return "0x" + keccak(_serialize({**batch, "meta": bare}).encode("utf-8")).hex()


def batch_file(chain_id: int, safe: str, calls: Sequence[BatchCall], *, name: str, description: str = "",
               created_at_ms: int | None = None) -> dict[str, Any]:
    """A Transaction Builder batch file of ``calls`` for the Safe ``safe`` on ``chain_id``, with its
    checksum. ``created_at_ms`` defaults to now, in milliseconds as the app writes it. Raises
    :class:`MicropayValueError` for no calls or a malformed Safe address."""
    if not calls:
        raise MicropayValueError("a batch holds at least one transaction")
    batch: dict[str, Any] = {
        "version": BATCH_VERSION,
        "chainId": str(int(chain_id)),
        "createdAt": int(time.time() * 1000) if created_at_ms is None else int(created_at_ms),
        "meta": {
            "name": name,
            "description": description,
            "txBuilderVersion": TX_BUILDER_VERSION,
            "createdFromSafeAddress": checked_address(safe, "Safe address"),
            "createdFromOwnerAddress": "",
        },
        "transactions": [call.to_json() for call in calls],
    }
    batch["meta"]["checksum"] = tx_builder_checksum(batch)
    return batch


def write_batch(path: Path, batch: Mapping[str, Any]) -> None:
    """Write ``batch`` to a new file at ``path``. Raises :class:`MicropayValueError` if the file
    exists already (a batch may have been imported: it is never overwritten), and OSError if it
    cannot be written."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise MicropayValueError(f"{path} already exists: choose another file (--out FILE)") from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(json.dumps(batch, indent=2, ensure_ascii=False) + "\n")


# -- the Safe ---------------------------------------------------------------------------------------

SAFE_ABI: list[dict[str, Any]] = [
    {"type": "function", "name": "getOwners", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "address[]"}]},
    {"type": "function", "name": "getThreshold", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "uint256"}]},
]


@dataclass(frozen=True)
class SafeInfo:
    """A Safe as its contract describes itself: its owners and how many of them must sign."""

    address: str
    owners: tuple[str, ...]
    threshold: int


def safe_info(chain: Chain, address: str) -> SafeInfo:
    """The owners and threshold of the Safe at ``address`` (two chain calls). Raises
    :class:`MicropayValueError` if there is no contract there, or one that does not answer
    ``getOwners()`` and ``getThreshold()`` as a Safe does."""
    address = checked_address(address, "Safe address")
    if not chain.w3.eth.get_code(as_checksum(address)):
        raise MicropayValueError(f"there is no contract at {address} on chain {chain.chain_id}: is it the Safe's "
                                 "address on this network?")
    contract = chain.w3.eth.contract(address=as_checksum(address), abi=SAFE_ABI)
    try:
        owners = [checked_address(owner, "owner") for owner in contract.functions.getOwners().call()]
        threshold = int(contract.functions.getThreshold().call())
    except Exception:  # noqa: BLE001 - web3 raises several kinds for a call that does not decode
        raise MicropayValueError(f"the contract at {address} is not a Safe (it does not answer getOwners() and "
                                 "getThreshold())") from None
    if not owners or not 0 < threshold <= len(owners):
        raise MicropayValueError(f"the Safe at {address} reports {len(owners)} owner(s) and threshold {threshold}: "
                                 "it is not set up")
    return SafeInfo(address, tuple(owners), threshold)
