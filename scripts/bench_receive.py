#!/usr/bin/env python3
"""How fast a freelancer acknowledges payments, and what settling costs per channel.

    python scripts/bench_receive.py          # a table
    python scripts/bench_receive.py --json   # one JSON object

Measured in one run, on the embedded eth-tester chain and real SQLite files in one directory:
- receives/s: ``Payee.receive`` of payment text (decode, verify, ledger check, one durable
  commit with journal_mode=WAL and synchronous=FULL);
- bare commits/s: one-row INSERT transactions into a plain SQLite file with the same journal
  and sync settings in the same directory: the floor any durable receive must pay;
  the two alternate batch by batch (the disk's fsync rate drifts) and each is the median;
- their ratio (target >= 0.6, and >= 1,000 receives/s);
- settle gas per channel for 1, 10 and 50 channels (one claimMany each).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from eth_account import Account
from eth_tester import EthereumTester, PyEVMBackend
from web3 import EthereumTesterProvider, Web3

from micropay import Escrow, Payee, Payer


class BareCommits:
    """One-row INSERT transactions into a plain SQLite file: the floor of any durable write."""

    def __init__(self, directory: Path) -> None:
        self.db = sqlite3.connect(directory / "bare.db", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB NOT NULL)")
        self.row = os.urandom(300)  # about what one receive writes

    def rate(self, commits: int) -> float:
        start = time.perf_counter()
        for _ in range(commits):
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("INSERT INTO t (v) VALUES (?)", (self.row,))
            self.db.execute("COMMIT")
        return commits / (time.perf_counter() - start)


class Setup:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.w3 = Web3(EthereumTesterProvider(EthereumTester(PyEVMBackend())))
        funder = self.w3.eth.accounts[0]
        self.accounts = [Account.from_key(bytes([i + 1]) * 32) for i in range(8)]
        for account in self.accounts:
            self.w3.eth.wait_for_transaction_receipt(self.w3.eth.send_transaction(
                {"from": funder, "to": account.address, "value": 10**22}))
        self.escrow = Escrow.deploy(self.w3, self.accounts[0])
        self.freelancer = self.accounts[1]
        self.clients = self.accounts[2:]

    def payee(self, name: str) -> Payee:
        return Payee(self.escrow, self.freelancer, self.dir / f"{name}.db")


def receive_rates(setup: Setup, receives: int, batches: int) -> tuple[float, float]:
    """Median receives/s and bare commits/s, measured in alternating batches so both see the
    disk in the same state (its fsync rate drifts over seconds)."""
    payer = Payer(setup.escrow, setup.clients[0], setup.dir / "client.db")
    channel = payer.open_channel(setup.freelancer.address, 10**20, expires_in=timedelta(days=30))
    texts = [payer.pay(channel.id, 10**12, task=f"task {n}").encode() for n in range(receives * batches + 1)]
    payee = setup.payee("freelancer-receive")
    payee.receive(texts[0])  # first contact reads the chain; the rest use the fresh cached state
    bare = BareCommits(setup.dir)
    receive_rates, bare_rates = [], []
    for b in range(batches):
        bare_rates.append(bare.rate(receives))
        batch = texts[1 + b * receives: 1 + (b + 1) * receives]
        start = time.perf_counter()
        for text in batch:
            payee.receive(text)
        receive_rates.append(receives / (time.perf_counter() - start))
    return statistics.median(receive_rates), statistics.median(bare_rates)


def settle_gas_per_channel(setup: Setup, channels: int) -> float:
    payee = setup.payee(f"freelancer-settle-{channels}")
    for i in range(channels):
        payer = Payer(setup.escrow, setup.clients[i % len(setup.clients)], setup.dir / f"settle-{channels}-{i}.db")
        channel = payer.open_channel(setup.freelancer.address, 10**17)
        payee.receive(payer.pay(channel.id, 10**16 + i, task="work"))
    settlement = payee.settle()
    assert len(settlement.channels) == channels
    return settlement.gas_used / channels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--receives", type=int, default=400, help="receives per batch (default 400)")
    parser.add_argument("--batches", type=int, default=7, help="batches of each kind, alternating (default 7)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=os.environ.get("MICROPAY_BENCH_DIR")) as tmp:
        directory = Path(tmp)
        setup = Setup(directory)
        receives, bare = receive_rates(setup, args.receives, args.batches)
        gas = {n: settle_gas_per_channel(setup, n) for n in (1, 10, 50)}
    result = {
        "receives_per_s": round(receives, 1),
        "bare_commits_per_s": round(bare, 1),
        "ratio": round(receives / bare, 3),
        "settle_gas_per_channel_1": round(gas[1]),
        "settle_gas_per_channel_10": round(gas[10]),
        "settle_gas_per_channel_50": round(gas[50]),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    ok = "ok" if receives >= 1000 and receives / bare >= 0.6 else "MISSED"
    print(f"{'durable receives/s':<28} {receives:>10,.0f}   target >= 1,000")
    print(f"{'bare SQLite commits/s':<28} {bare:>10,.0f}   WAL + synchronous=FULL, same disk")
    print(f"{'ratio':<28} {receives / bare:>10.2f}   target >= 0.6   {ok}")
    for n in (1, 10, 50):
        print(f"{f'settle gas per channel ({n})':<28} {gas[n]:>10,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
