#!/usr/bin/env python3
"""Compile contracts/MicropayEscrow.sol into the artifact shipped inside the package.

Compilation goes through py-solc-x at the pinned compiler version. Where py-solc-x cannot
install a native solc (no download access), it runs the pinned npm `solc` package through
scripts/solc-adapter.js, which answers py-solc-x's `--version` and `--standard-json` calls.

    python scripts/compile_contracts.py               # write micropay/artifacts/MicropayEscrow.json
    python scripts/compile_contracts.py --check       # exit 1 if the shipped artifact is stale
    python scripts/compile_contracts.py --build-info  # also write Hardhat-style build-info (slither)
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import solcx

ROOT = Path(__file__).resolve().parent.parent
SOLC_VERSION = "0.8.30"
EVM_VERSION = "cancun"
ESCROW_SOURCE = "contracts/MicropayEscrow.sol"
ESCROW_CONTRACT = "MicropayEscrow"
ARTIFACT_PATH = ROOT / "micropay" / "artifacts" / "MicropayEscrow.json"
ADAPTER = ROOT / "scripts" / "solc-adapter.js"

SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 10_000},
    "viaIR": True,
    "evmVersion": EVM_VERSION,
    "remappings": ["@openzeppelin/=node_modules/@openzeppelin/"],
    "metadata": {"bytecodeHash": "ipfs"},
}
OUTPUT_SELECTION = {
    "*": {
        "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object",
              "evm.deployedBytecode.immutableReferences", "evm.methodIdentifiers",
              "evm.bytecode.sourceMap", "evm.deployedBytecode.sourceMap"],
        "": ["ast"],
    }
}


class CompileError(RuntimeError):
    """The compiler is missing or rejected the sources."""


@functools.cache
def solc_binary() -> Path:
    """A solc for SOLC_VERSION: native through py-solc-x if it can be had, else the npm adapter.

    Raises CompileError if neither is available or the npm package is another version."""
    try:
        return Path(solcx.install_solc(SOLC_VERSION))
    except Exception:  # noqa: BLE001 - any install failure means: fall back to solcjs
        pass
    if not (ROOT / "node_modules" / "solc").is_dir() or shutil.which("node") is None:
        raise CompileError(
            f"no solc {SOLC_VERSION}: py-solc-x could not install it and the npm package is missing "
            "(run `npm ci` in the project root)"
        )
    version = solcx.wrapper.get_solc_version(ADAPTER)
    if str(version) != SOLC_VERSION:
        raise CompileError(f"npm solc is {version}, expected {SOLC_VERSION}; run `npm ci`")
    return ADAPTER


def compile_sources(sources: dict[str, str], settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Compile {source unit name: text} with the project settings; returns solc's standard-json output.

    ``settings`` replaces SETTINGS (the output selection stays), for third-party sources built
    for other settings: e.g. Safe's contracts, which hit "stack too deep" under viaIR.
    Raises CompileError if no compiler is available or solc rejects the sources."""
    input_json = {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": {**(SETTINGS if settings is None else settings), "outputSelection": OUTPUT_SELECTION},
    }
    try:
        output = solcx.compile_standard(input_json, solc_binary=solc_binary(), base_path=str(ROOT))
    except solcx.exceptions.SolcError as exc:
        raise CompileError(str(exc)) from exc
    output["_input"] = input_json
    return output


def compile_files(paths: list[Path], settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """:func:`compile_sources` of files inside the project, named by their path from the root.

    Raises CompileError as :func:`compile_sources` does, OSError if a file cannot be read, and
    ValueError if a path is outside the project."""
    return compile_sources(
        {path.resolve().relative_to(ROOT).as_posix(): path.read_text() for path in paths}, settings
    )


def escrow_artifact(output: dict[str, Any] | None = None) -> dict[str, Any]:
    """The artifact users load: ABI, bytecode, compiler version and settings.

    Raises CompileError when it has to compile and cannot, and KeyError if ``output`` lacks the
    escrow contract."""
    if output is None:
        output = compile_files([ROOT / ESCROW_SOURCE])
    contract = output["contracts"][ESCROW_SOURCE][ESCROW_CONTRACT]
    source_text = (ROOT / ESCROW_SOURCE).read_bytes()
    return {
        "contractName": ESCROW_CONTRACT,
        "sourceName": ESCROW_SOURCE,
        "sourceSha256": hashlib.sha256(source_text).hexdigest(),
        "compiler": {"version": SOLC_VERSION, "settings": SETTINGS},
        "abi": contract["abi"],
        "bytecode": "0x" + contract["evm"]["bytecode"]["object"],
        "deployedBytecode": "0x" + contract["evm"]["deployedBytecode"]["object"],
        # Byte ranges of the runtime code that the constructor fills in (EIP-712 domain caches).
        "immutableReferences": sorted(
            [ref["start"], ref["length"]]
            for refs in contract["evm"]["deployedBytecode"].get("immutableReferences", {}).values()
            for ref in refs
        ),
    }


def render(artifact: dict[str, Any]) -> str:
    """The artifact as the stable JSON text that is committed. Raises TypeError for non-JSON values."""
    return json.dumps(artifact, indent=1, sort_keys=True) + "\n"


def write_build_info(output: dict[str, Any]) -> Path:
    """Hardhat-style build-info, which slither reads with --hardhat-ignore-compile.

    Raises KeyError if ``output`` does not come from :func:`compile_sources`, CompileError if the
    compiler is gone, and OSError if the file cannot be written."""
    input_json = output["_input"]
    body = {k: v for k, v in output.items() if k != "_input"}
    build_info = {
        "_format": "hh-sol-build-info-1",
        "solcVersion": SOLC_VERSION,
        "solcLongVersion": str(solcx.wrapper.get_solc_version(solc_binary(), with_commit_hash=True)),
        "input": input_json,
        "output": body,
    }
    digest = hashlib.sha256(json.dumps(input_json, sort_keys=True).encode()).hexdigest()[:32]
    target = ROOT / "artifacts" / "build-info" / f"{digest}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(build_info))
    return target


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, compare) the shipped artifact; returns the exit status.

    Raises CompileError if the contracts do not compile, and SystemExit for bad arguments."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if the shipped artifact is stale")
    parser.add_argument("--build-info", action="store_true", help="write artifacts/build-info for slither")
    args = parser.parse_args(argv)

    output = compile_files([ROOT / ESCROW_SOURCE])
    rendered = render(escrow_artifact(output))
    if args.build_info:
        print(f"build-info: {write_build_info(output).relative_to(ROOT)}")
    if args.check:
        if not ARTIFACT_PATH.exists() or ARTIFACT_PATH.read_text() != rendered:
            print(f"{ARTIFACT_PATH.relative_to(ROOT)} is stale: run scripts/compile_contracts.py", file=sys.stderr)
            return 1
        print(f"{ARTIFACT_PATH.relative_to(ROOT)} matches {ESCROW_SOURCE}")
        return 0
    ARTIFACT_PATH.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT_PATH.write_text(rendered)
    print(f"wrote {ARTIFACT_PATH.relative_to(ROOT)} (solc {SOLC_VERSION}, evm {EVM_VERSION})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
