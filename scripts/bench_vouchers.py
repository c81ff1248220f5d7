#!/usr/bin/env python3
"""Voucher signing and verification speed: micropay against eth-account and the raw floor.

    python scripts/bench_vouchers.py          # a table with ratios and the targets
    python scripts/bench_vouchers.py --json   # {"sign_us", "verify_us", "eth_account_sign_us", ...}

Runs on one core. Each figure is the median, over repeated batches, of µs per operation; the
batches of all six operations alternate, so drift in the machine's speed hits them alike:
- micropay sign: ``sign_voucher`` (validation, EIP-712 digest, libsecp256k1 signature, Voucher);
- micropay verify: a fresh ``Voucher`` (validation) + ``verify(payer)`` (digest, recovery, compare);
- eth-account: ``encode_typed_data`` + ``Account.sign_message`` / ``Account.recover_message``;
- floor: raw coincurve sign / recover of a digest plus one keccak256 of the digest's input.
Targets: micropay within 1.5x of the floor, and at least 5x faster than eth-account.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable

from coincurve import PrivateKey, PublicKey
from eth_account import Account
from eth_account.messages import encode_typed_data

from micropay._utils.crypto import keccak
from micropay.voucher import Voucher, sign_voucher, voucher_typed_data

CHAIN_ID = 8453
ESCROW = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def interleaved_medians(operations: dict[str, Callable[[int], object]], batch: int, batches: int
                        ) -> dict[str, float]:
    """Median µs per call of each operation. Batches of the operations alternate, so every one is
    measured under the same machine conditions (a shared VM's speed drifts over seconds).
    Raises whatever an operation raises (a failed eth-account recovery is an AssertionError)."""
    for operation in operations.values():
        operation(0)  # warm caches (domain separator, imports)
    per_call: dict[str, list[float]] = {name: [] for name in operations}
    for b in range(batches):
        for name, operation in operations.items():
            start = time.perf_counter()
            for i in range(b * batch, (b + 1) * batch):
                operation(i)
            per_call[name].append((time.perf_counter() - start) / batch * 1e6)
    return {name: statistics.median(values) for name, values in per_call.items()}


def measure(batch: int, batches: int) -> dict[str, float]:
    """µs per sign and verify for micropay, eth-account and the raw floor (keys as in ``--json``).

    Raises AssertionError if eth-account recovers another signer (it never should)."""
    account = Account.from_key(b"\x11" * 32)
    channel_id, root = b"\x22" * 32, b"\x33" * 32
    n = batch * batches + 1

    vouchers = [sign_voucher(account, chain_id=CHAIN_ID, escrow=ESCROW, channel_id=channel_id, amount=i + 1,
                             ledger_root=root) for i in range(n)]
    fields = [(v.chain_id, v.escrow, v.channel_id, v.amount, v.ledger_root, v.signature) for v in vouchers]
    typed = [voucher_typed_data(CHAIN_ID, ESCROW, channel_id, i + 1, root) for i in range(n)]
    signatures = [v.signature for v in vouchers]
    digests = [v.digest() for v in vouchers]
    digest_inputs = [b"\x19\x01" + b"\x44" * 32 + keccak(v.channel_id) for v in vouchers]  # 66 bytes
    raw_key = PrivateKey(bytes(account.key))
    recoverable = [s[:64] + bytes([s[64] - 27]) for s in signatures]

    def micropay_sign(i: int) -> object:
        return sign_voucher(account, chain_id=CHAIN_ID, escrow=ESCROW, channel_id=channel_id, amount=i + 1,
                            ledger_root=root)

    def micropay_verify(i: int) -> object:
        return Voucher(*fields[i]).verify(account.address)

    def eth_account_sign(i: int) -> object:
        return Account.sign_message(encode_typed_data(full_message=typed[i]), account.key)

    def eth_account_verify(i: int) -> object:
        signer = Account.recover_message(encode_typed_data(full_message=typed[i]), signature=signatures[i])
        assert signer == account.address
        return signer

    def floor_sign(i: int) -> object:
        keccak(digest_inputs[i])
        return raw_key.sign_recoverable(digests[i], hasher=None)

    def floor_verify(i: int) -> object:
        keccak(digest_inputs[i])
        return PublicKey.from_signature_and_message(recoverable[i], digests[i], hasher=None)

    return interleaved_medians({
        "sign_us": micropay_sign,
        "floor_sign_us": floor_sign,
        "eth_account_sign_us": eth_account_sign,
        "verify_us": micropay_verify,
        "floor_verify_us": floor_verify,
        "eth_account_verify_us": eth_account_verify,
    }, batch, batches)


def table(r: dict[str, float]) -> str:
    """The results as a text table with ratios and targets. Raises KeyError if a figure is missing."""
    rows = [(f"{'operation':<8} {'micropay µs':>12} {'floor µs':>9} {'/floor':>7} {'eth-account µs':>15} "
             f"{'speedup':>8}  targets: /floor <= 1.5, speedup >= 5")]
    for op in ("sign", "verify"):
        ours, floor, theirs = r[f"{op}_us"], r[f"floor_{op}_us"], r[f"eth_account_{op}_us"]
        ok = "ok" if ours / floor <= 1.5 and theirs / ours >= 5 else "MISSED"
        rows.append(f"{op:<8} {ours:>12.1f} {floor:>9.1f} {ours / floor:>7.2f} {theirs:>15.1f} "
                    f"{theirs / ours:>7.1f}x  {ok}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """Run on one core, print a table or JSON; returns the exit status (0).

    Raises SystemExit for bad arguments (argparse)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--batch", type=int, default=200, help="operations per batch (default 200)")
    parser.add_argument("--batches", type=int, default=21, help="batches per operation (default 21)")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    results = measure(args.batch, args.batches)
    print(json.dumps({k: round(v, 2) for k, v in results.items()}) if args.json else table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
