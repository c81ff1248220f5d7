"""Turn a failed call's revert data back into the contract's custom error."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_utils import abi_to_signature, keccak, to_checksum_address

from micropay.errors import ContractRevert

_ETH_TESTER_PREFIX = "execution reverted: "


def revert_data(exc: BaseException) -> bytes | None:
    """The raw revert bytes carried by an exception from web3, if it has any.

    JSON-RPC nodes give them as hex in ``exc.data`` (web3's ContractCustomError and
    ContractLogicError). web3's in-process eth-tester provider instead folds them into the
    message as a bytes literal, which web3 itself reads back with ``ast.literal_eval``.
    """
    data = getattr(exc, "data", None)
    if isinstance(data, bytes):
        return data
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return None
    message = exc.args[0] if exc.args else None
    if isinstance(message, str) and message.startswith(_ETH_TESTER_PREFIX + "b"):
        try:
            value = ast.literal_eval(message[len(_ETH_TESTER_PREFIX) :])
        except (ValueError, SyntaxError):
            return None
        return value if isinstance(value, bytes) else None
    return None


class ErrorDecoder:
    """Decodes revert data using the custom errors of an ABI."""

    def __init__(self, abi: Sequence[dict[str, Any]]) -> None:
        self._errors: dict[bytes, dict[str, Any]] = {}
        for entry in abi:
            if entry.get("type") == "error":
                self._errors[keccak(text=abi_to_signature(entry))[:4]] = entry

    def decode(self, data: bytes) -> ContractRevert | None:
        entry = self._errors.get(data[:4])
        if entry is None:
            return None
        types = [item["type"] for item in entry["inputs"]]
        try:
            values = abi_decode(types, data[4:])
        except DecodingError:
            return None
        args = {
            item["name"]: to_checksum_address(value) if item["type"] == "address" else value
            for item, value in zip(entry["inputs"], values)
        }
        return ContractRevert(entry["name"], args)

    def from_exception(self, exc: BaseException) -> ContractRevert | None:
        data = revert_data(exc)
        return None if data is None else self.decode(data)

    def name_of(self, selector: bytes) -> str | None:
        entry = self._errors.get(bytes(selector)[:4])
        return None if entry is None else entry["name"]
