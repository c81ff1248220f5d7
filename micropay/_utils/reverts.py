"""Turn a failed call's revert data back into the contract's custom error."""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_typing import ABIError
from eth_utils.abi import abi_to_signature
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from micropay.errors import ContractRevert

_ETH_TESTER_PREFIX = "execution reverted: "


def revert_data(exc: BaseException) -> bytes | None:
    """The raw revert bytes carried by an exception from web3, if it has any.

    JSON-RPC nodes give them as hex in ``exc.data`` (web3's ContractCustomError and
    ContractLogicError). web3's in-process eth-tester provider instead folds them into the
    message as a bytes literal, which web3 itself reads back with ``ast.literal_eval``.
    Never raises: data it cannot read gives None.
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
    """Decodes revert data using the custom errors of an ABI (JSON as solc writes it).

    Raises KeyError if an error entry of the ABI has no ``name``."""

    def __init__(self, abi: Sequence[Mapping[str, Any]]) -> None:
        self._errors: dict[bytes, ABIError] = {}
        for entry in abi:
            if entry.get("type") == "error":
                error: ABIError = {"type": "error", "name": entry["name"], "inputs": entry.get("inputs", [])}
                self._errors[keccak(text=abi_to_signature(error))[:4]] = error

    def decode(self, data: bytes) -> ContractRevert | None:
        """The custom error ``data`` encodes, or None if it is not one of this ABI's errors or
        its arguments do not decode (eth-abi's DecodingError is caught, not raised)."""
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
            for item, value in zip(entry["inputs"], values, strict=True)
        }
        return ContractRevert(entry["name"], args)

    def from_exception(self, exc: BaseException) -> ContractRevert | None:
        """The custom error behind a failed call's exception, or None. Never raises."""
        data = revert_data(exc)
        return None if data is None else self.decode(data)

    def name_of(self, selector: bytes) -> str | None:
        """The name of the custom error with this 4-byte selector, or None. Never raises."""
        entry = self._errors.get(bytes(selector)[:4])
        return None if entry is None else entry["name"]
