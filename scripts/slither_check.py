#!/usr/bin/env python3
"""Run slither on contracts/MicropayEscrow.sol without a native solc.

Slither reads Hardhat-style build-info (REFERENCE §6): this script compiles through
scripts/compile_contracts.py, lays out a throwaway Hardhat-shaped folder, runs slither there,
and fails if any finding, of any impact (High, Medium, Low, Informational, Optimization), is
not explained in contracts/SLITHER_TRIAGE.md: a row naming its detector and function. Rows
that no longer match a finding are reported as stale (they do not fail the run), so the file
can be kept current.

slither-analyzer pins an older web3 than micropay, so it lives in its own virtualenv:
    python -m venv .venv-slither && .venv-slither/bin/pip install 'slither-analyzer>=0.11,<0.12'
    SLITHER=.venv-slither/bin/slither python scripts/slither_check.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compile_contracts

ROOT = compile_contracts.ROOT
TRIAGE = ROOT / "contracts" / "SLITHER_TRIAGE.md"


def triaged() -> set[tuple[str, str]]:
    """(check, function) pairs from the table rows of the triage file. Raises OSError if it cannot be read."""
    pairs = set()
    for line in TRIAGE.read_text().splitlines():
        cells = [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 3 and cells[0] not in ("check", "") and not cells[0].startswith("-"):
            pairs.add((cells[0], cells[1]))
    return pairs


def function_of(result: dict) -> str:
    """The function a slither finding is in, or "" if none. Raises KeyError for a malformed finding."""
    for element in result.get("elements", []):
        if element.get("type") == "function":
            return element["name"]
        parent = element.get("type_specific_fields", {}).get("parent", {})
        if parent.get("type") == "function":
            return parent["name"]
    return ""


def run_slither() -> list[dict]:
    """Slither's detector results for the escrow.

    Raises SystemExit if slither is missing, produces no report or reports failure, and
    CompileError (compile_contracts) if the contracts do not compile."""
    slither = os.environ.get("SLITHER") or shutil.which("slither")
    if slither:
        slither = os.path.abspath(slither)  # slither runs from a temporary folder
    if not slither:
        raise SystemExit("slither not found: set SLITHER or install slither-analyzer (see this script's docstring)")
    output = compile_contracts.compile_files([ROOT / compile_contracts.ESCROW_SOURCE])
    build_info = compile_contracts.write_build_info(output)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "contracts").symlink_to(ROOT / "contracts")
        (work / "node_modules").symlink_to(ROOT / "node_modules")
        (work / "artifacts" / "build-info").mkdir(parents=True)
        shutil.copy(build_info, work / "artifacts" / "build-info" / build_info.name)
        (work / "hardhat.config.js").write_text("module.exports = {};\n")  # marks a Hardhat layout
        report = work / "slither.json"
        subprocess.run(
            [slither, ".", "--hardhat-ignore-compile", "--npx-disable", "--filter-paths", "node_modules",
             "--json", str(report)],
            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False,
        )
        if not report.exists():
            raise SystemExit("slither produced no report")
        data = json.loads(report.read_text())
    if not data.get("success"):
        raise SystemExit(f"slither failed: {data.get('error')}")
    return data["results"].get("detectors", [])


def main() -> int:
    """Print every finding; returns 1 if one is not triaged, else 0. Stale triage rows are printed.

    Raises SystemExit and CompileError as :func:`run_slither` does, OSError as :func:`triaged`."""
    results = run_slither()
    accepted = triaged()
    untriaged = []
    matched: set[tuple[str, str]] = set()
    counts: dict[str, int] = {}
    for result in results:
        counts[result["impact"]] = counts.get(result["impact"], 0) + 1
        key = (result["check"], function_of(result))
        if key in accepted:
            matched.add(key)
            status = "triaged"
        else:
            untriaged.append(result)
            status = "UNTRIAGED"
        print(f"{result['impact']:<14} {result['check']:<26} {key[1]:<24} {status}")
    print("findings by impact:", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none")
    for check, function in sorted(accepted - matched):
        print(f"stale triage row (no such finding any more): {check} in {function or '(no function)'}")
    for result in untriaged:
        print(f"\nUNTRIAGED {result['impact']} {result['check']}:\n{result['description']}", file=sys.stderr)
    if untriaged:
        print(f"\n{len(untriaged)} finding(s) not explained in {TRIAGE.relative_to(ROOT)}: fix them, or add a row "
              "(check | function | why it is accepted)", file=sys.stderr)
    return 1 if untriaged else 0


if __name__ == "__main__":
    sys.exit(main())
