"""The shipped MicropayEscrow artifact (ABI, bytecode, compiler settings) and its loader.

Users need no compiler: the artifact is package data. ``scripts/compile_contracts.py --check``
and ``tests/test_artifact.py`` hold it equal to what ``contracts/`` compiles to.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any, TypedDict

from micropay.errors import ArtifactError

ARTIFACT_NAME = "MicropayEscrow.json"


class CompilerInfo(TypedDict):
    """The compiler the shipped escrow was built with: its solc version and standard-JSON settings."""

    version: str
    settings: dict[str, Any]


class EscrowArtifact(TypedDict):
    """The artifact file's contents: the escrow's source hash, compiler, ABI, bytecode and immutables."""

    contractName: str
    sourceName: str
    sourceSha256: str
    compiler: CompilerInfo
    abi: list[dict[str, Any]]
    bytecode: str
    deployedBytecode: str
    immutableReferences: list[list[int]]


@functools.cache
def _artifact_text() -> str:
    try:
        return (resources.files("micropay") / "artifacts" / ARTIFACT_NAME).read_text(encoding="utf-8")
    except OSError as exc:
        raise ArtifactError(f"contract artifact {ARTIFACT_NAME} is missing from the micropay package") from exc


def load_artifact() -> EscrowArtifact:
    """ABI, bytecode and compiler settings of the shipped escrow (a fresh copy each call).

    Raises :class:`ArtifactError` if the file is missing, corrupt or incomplete.
    """
    try:
        artifact: EscrowArtifact = json.loads(_artifact_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"contract artifact {ARTIFACT_NAME} is corrupt: {exc}") from exc
    missing = {"abi", "bytecode", "deployedBytecode", "immutableReferences"} - artifact.keys()
    if missing:
        raise ArtifactError(f"contract artifact {ARTIFACT_NAME} lacks {sorted(missing)}")
    return artifact


def matches_artifact(deployed_code: bytes) -> bool:
    """True if on-chain runtime code is the shipped escrow, ignoring the immutable values
    (this deployment's address, chain id and domain separator) that the constructor fills in."""
    artifact = load_artifact()
    expected = bytearray.fromhex(artifact["deployedBytecode"].removeprefix("0x"))
    actual = bytearray(deployed_code)
    if len(actual) != len(expected):
        return False
    for start, length in artifact["immutableReferences"]:
        actual[start : start + length] = expected[start : start + length] = bytes(length)
    return actual == expected


#: OpenZeppelin ERC-20 custom errors, so token reverts during open/topUp decode too.
ERC20_ERRORS: list[dict[str, Any]] = [
    {"type": "error", "name": "ERC20InsufficientBalance", "inputs": [
        {"name": "sender", "type": "address"}, {"name": "balance", "type": "uint256"},
        {"name": "needed", "type": "uint256"}]},
    {"type": "error", "name": "ERC20InsufficientAllowance", "inputs": [
        {"name": "spender", "type": "address"}, {"name": "allowance", "type": "uint256"},
        {"name": "needed", "type": "uint256"}]},
]
