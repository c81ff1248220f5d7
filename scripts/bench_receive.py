#!/usr/bin/env python3
"""How fast a freelancer acknowledges payments, and what settling costs per channel.

    python scripts/bench_receive.py          # a table
    python scripts/bench_receive.py --json   # one JSON object

Measured in one run, on the embedded eth-tester chain and real SQLite files in one directory:
- receives/s: ``Payee.receive`` of payment text, one after another (decode, verify, ledger check,
  one durable commit with journal_mode=WAL and synchronous=FULL);
- bare commits/s: one-row INSERT transactions into a plain SQLite file with the same journal
  and sync settings in the same directory: the floor any durable receive must pay;
- their ratio (target >= 0.6, and >= 1,000 receives/s);
- to explain the ratio: the µs of a bare commit, the µs of a receive's own work (the same
  receives with synchronous=OFF), and a bare-bones receive that does only the unavoidable work
  (decode, recover the signer, hash the receipt onto the ledger, two inserts, one durable
  commit) with none of the checks: what any Python receive costs at least;
- settle gas per channel for 1, 10 and 50 channels (one claimMany each).
The kinds of batch alternate (the disk's fsync rate drifts over seconds); each figure is a median.
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
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

from eth_account import Account
from eth_tester import EthereumTester, PyEVMBackend
from web3 import EthereumTesterProvider, Web3

from micropay import Escrow, Payee, Payer
from micropay._utils import textform
from micropay._utils.crypto import keccak, recover_address
from micropay.ledger import RECEIPT_TYPEHASH
from micropay.payment import TEXT_PREFIX, VOUCHER_SIZE, unpack_receipts
from micropay.voucher import Voucher, voucher_digest


class BareCommits:
    """One-row INSERT transactions into a plain SQLite file: the floor of any durable write."""

    def __init__(self, directory: Path) -> None:
        self.db = sqlite3.connect(directory / "bare.db", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB NOT NULL)")
        self.row = os.urandom(300)  # about what one receive writes

    def rate(self, commits: int) -> float:
        """Commits per second over ``commits`` transactions. Raises sqlite3.Error if the disk fails."""
        start = time.perf_counter()
        for _ in range(commits):
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("INSERT INTO t (v) VALUES (?)", (self.row,))
            self.db.execute("COMMIT")
        return commits / (time.perf_counter() - start)


class Setup:
    """An embedded chain with a deployed escrow, a funded freelancer and six funded clients.

    Raises MicropayError (or a web3/eth-tester error) if the embedded chain fails to set up."""

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
        """The freelancer's Payee over its own store file ``<name>.db``. Raises StoreError as Payee does."""
        return Payee(self.escrow, self.freelancer, self.dir / f"{name}.db")


class BareBonesReceive:
    """The unavoidable work of a durable receive and nothing else: no checks, no error handling,
    no channel state. It trusts its input, so it is for measuring only."""

    def __init__(self, directory: Path) -> None:
        self.db = sqlite3.connect(directory / "bare-bones.db", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE receipts (channel BLOB, idx INTEGER, task TEXT, amount BLOB, root BLOB, "
                        "PRIMARY KEY (channel, idx)) WITHOUT ROWID")
        self.db.execute("CREATE TABLE vouchers (channel BLOB, amount BLOB, root BLOB, signature BLOB, "
                        "PRIMARY KEY (channel, amount)) WITHOUT ROWID")
        self.root, self.count = bytes(32), 0

    def receive(self, text: str) -> None:
        """Store one payment's voucher and first receipt durably. Raises InvalidVoucher for text that
        is not a payment, KeyError or ValueError for malformed receipts, sqlite3.Error on disk failure."""
        payload = textform.unwrap(text, TEXT_PREFIX, "payment")
        chain_id, escrow, channel, amount, root, signature = Voucher.fields_from_bytes(payload[:VOUCHER_SIZE])
        # after the 4-byte first index and the receipts' format byte
        (item,) = unpack_receipts(payload[VOUCHER_SIZE + 5:])
        escrow_bytes = bytes.fromhex(escrow[2:])  # fields_from_bytes gives the escrow checksummed (memoized)
        recover_address(voucher_digest(chain_id, escrow_bytes, channel, amount, root), signature)
        receipt = keccak(RECEIPT_TYPEHASH + keccak(item.task_id.encode()) + item.amount.to_bytes(32, "big")
                         + item.deliverable + keccak(item.note.encode()))
        self.root = keccak(self.root + receipt)
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute("INSERT INTO receipts VALUES (?,?,?,?,?)",
                        (channel, self.count, item.task_id, item.amount.to_bytes(32, "big"), self.root))
        self.db.execute("INSERT INTO vouchers VALUES (?,?,?,?)", (channel, amount.to_bytes(32, "big"), root, signature))
        self.db.execute("COMMIT")
        self.count += 1


def timed(receive: Callable[[str], object], texts: Iterator[str], count: int) -> float:
    """Calls per second of ``receive`` over the next ``count`` texts. Raises StopIteration if
    ``texts`` runs out, and whatever ``receive`` raises."""
    start = time.perf_counter()
    for _ in range(count):
        receive(next(texts))
    return count / (time.perf_counter() - start)


def receive_rates(setup: Setup, receives: int, batches: int) -> dict[str, float]:
    """Median rate of each kind of batch; the kinds alternate so all see the disk alike.

    Raises whatever a receive, the chain or SQLite raises: on a healthy setup, nothing."""
    payer = Payer(setup.escrow, setup.clients[0], setup.dir / "client.db")
    channel = payer.open_channel(setup.freelancer.address, 10**20, expires_in=timedelta(days=30))
    texts = [payer.pay(channel.id, 10**12, task=f"task {n}").encode() for n in range(2 * receives * batches + 1)]
    payee = setup.payee("freelancer-receive")
    payee.receive(texts[0])  # first contact reads the chain; the rest use the fresh cached state
    stream = iter(texts[1:])
    bare_bones = BareBonesReceive(setup.dir)
    bare_bones_stream = iter(texts)  # the same payments, in order, into their own file
    bare = BareCommits(setup.dir)

    def without_fsync() -> float:
        with payee.store.database.read() as db:  # SQLite's one connection: diagnostic only, the receive's own work
            db.execute("PRAGMA synchronous=OFF")
        try:
            return timed(payee.receive, stream, receives)
        finally:
            with payee.store.database.read() as db:
                db.execute("PRAGMA synchronous=FULL")

    kinds: dict[str, Callable[[], float]] = {
        "bare": lambda: bare.rate(receives),
        "receive": lambda: timed(payee.receive, stream, receives),
        "bare_bones": lambda: timed(bare_bones.receive, bare_bones_stream, receives),
        "no_fsync": without_fsync,
    }
    rates: dict[str, list[float]] = {name: [] for name in kinds}
    for _ in range(batches):
        for name, measure in kinds.items():
            rates[name].append(measure())
    return {name: statistics.median(values) for name, values in rates.items()}


def settle_gas_per_channel(setup: Setup, channels: int) -> float:
    """Gas of one claimMany settling ``channels`` channels, per channel.

    Raises AssertionError if the settlement did not cover every channel, and whatever opening,
    paying or settling raises."""
    payee = setup.payee(f"freelancer-settle-{channels}")
    for i in range(channels):
        payer = Payer(setup.escrow, setup.clients[i % len(setup.clients)], setup.dir / f"settle-{channels}-{i}.db")
        channel = payer.open_channel(setup.freelancer.address, 10**17)
        payee.receive(payer.pay(channel.id, 10**16 + i, task="work"))
    settlement = payee.settle()
    assert len(settlement.channels) == channels
    return settlement.gas_used / channels


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table or JSON; returns the exit status (0).

    Raises SystemExit for bad arguments (argparse), and whatever the measurements raise."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--receives", type=int, default=400, help="receives per batch (default 400)")
    parser.add_argument("--batches", type=int, default=7, help="batches of each kind, alternating (default 7)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=os.environ.get("MICROPAY_BENCH_DIR")) as tmp:
        setup = Setup(Path(tmp))
        rates = receive_rates(setup, args.receives, args.batches)
        gas = {n: settle_gas_per_channel(setup, n) for n in (1, 10, 50)}
    receives, bare, bare_bones = rates["receive"], rates["bare"], rates["bare_bones"]
    result = {
        "receives_per_s": round(receives, 1),
        "bare_commits_per_s": round(bare, 1),
        "ratio": round(receives / bare, 3),
        "bare_commit_us": round(1e6 / bare, 1),
        "receive_work_us": round(1e6 / rates["no_fsync"], 1),
        "bare_bones_receives_per_s": round(bare_bones, 1),
        "bare_bones_ratio": round(bare_bones / bare, 3),
        "settle_gas_per_channel_1": round(gas[1]),
        "settle_gas_per_channel_10": round(gas[10]),
        "settle_gas_per_channel_50": round(gas[50]),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    ok = "ok" if receives >= 1000 and receives / bare >= 0.6 else "MISSED"
    print(f"{'durable receives/s':<32} {receives:>10,.0f}   target >= 1,000")
    print(f"{'bare SQLite commits/s':<32} {bare:>10,.0f}   WAL + synchronous=FULL, same disk")
    print(f"{'ratio':<32} {receives / bare:>10.2f}   target >= 0.6   {ok}")
    print(f"{'µs per bare commit':<32} {1e6 / bare:>10.0f}")
    print(f"{'µs of a receive without fsync':<32} {1e6 / rates['no_fsync']:>10.0f}   the work a receive adds")
    print(f"{'bare-bones receives/s':<32} {bare_bones:>10,.0f}   no checks: the least any receive costs")
    print(f"{'bare-bones ratio':<32} {bare_bones / bare:>10.2f}")
    for n in (1, 10, 50):
        print(f"{f'settle gas per channel ({n})':<32} {gas[n]:>10,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
