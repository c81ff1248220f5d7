#!/usr/bin/env python3
"""What reading and settling many channels costs against a node.

    python scripts/bench_chain_reads.py          # a table
    python scripts/bench_chain_reads.py --json   # one JSON object

Measured in one run, through micropay's public API only (Escrow.deploy, Payer, Payee):
- http: ``Payee.unclaimed()`` over N channels (--channels-http, default 100) against a real anvil
  node the script starts on a free loopback port (and always stops). The Payee's escrow talks to
  the node through an HTTPProvider subclass that counts every JSON-RPC request (each member of a
  batch is one) and every HTTP round trip (a batch is one), reset just before the measured call.
  Baseline from the same run: one ``w3.eth.block_number`` (one request, one round trip) and the
  wall time of N sequential ``eth_blockNumber`` calls, i.e. what N round trips cost here.
- settle: ``Payee.settle()`` of M channels (--channels-settle, default 500) in one claimMany on
  the embedded eth-tester chain: wall time, gas used, and the JSON-RPC requests it makes.
  Baseline from the same run: one plain ETH transfer (``eth_sendTransaction`` and its receipt)
  and ``Payee.unclaimed()`` over the same M channels.
Each wall time is the median of --repeats calls (the settle, which spends its channels, is one).
"time in provider" is the part of a call spent inside the provider (the node, or the in-process
chain, plus the HTTP client); the rest is micropay and web3's own Python work.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_tester import EthereumTester, PyEVMBackend
from web3 import EthereumTesterProvider, HTTPProvider, Web3
from web3.types import RPCEndpoint, RPCResponse, Wei

from micropay import Escrow, Payee, Payer

ROOT = Path(__file__).resolve().parent.parent
ANVIL = ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
ANVIL_SHIM = ROOT / "node_modules" / ".bin" / "anvil"
FALLBACK_SETTLE = (400, 300, 200, 100)  # tried in turn, below M, if a settle of M channels fails


class Counts:
    """Requests, round trips, per-method requests and seconds spent inside the provider."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # a provider may be called from several threads
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests = 0
            self.round_trips = 0
            self.methods: Counter[str] = Counter()
            self.method_seconds: defaultdict[str, float] = defaultdict(float)  # a batch's time goes to its first method
            self.seconds = 0.0

    def add(self, methods: list[str], seconds: float) -> None:
        with self._lock:
            self.requests += len(methods)
            self.round_trips += 1
            self.methods.update(methods)
            self.method_seconds[methods[0] if methods else "(empty batch)"] += seconds
            self.seconds += seconds

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": self.requests, "round_trips": self.round_trips,
                    "methods": dict(self.methods.most_common()),
                    "methods_ms": {name: round(self.method_seconds[name] * 1e3, 1) for name, _ in
                                   self.methods.most_common()},
                    "provider_s": self.seconds}


class Counting:
    """Counts a provider's requests: a single request is one round trip (mixed in before the
    provider class, whose ``make_request`` it wraps)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counts = Counts()

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        start = time.perf_counter()
        try:
            return super().make_request(method, params)  # type: ignore[misc]
        finally:
            self.counts.add([str(method)], time.perf_counter() - start)


class CountingHTTPProvider(Counting, HTTPProvider):
    """An HTTPProvider that counts: a single request is one round trip; a batch of k requests is
    k requests and one round trip."""

    def make_batch_request(self, batch_requests: list[tuple[RPCEndpoint, Any]]) -> list[RPCResponse] | RPCResponse:
        start = time.perf_counter()
        try:
            return super().make_batch_request(batch_requests)
        finally:
            self.counts.add([str(method) for method, _ in batch_requests], time.perf_counter() - start)


class CountingTesterProvider(Counting, EthereumTesterProvider):
    """The in-process eth-tester chain, counted the same way (it has no HTTP, and web3's
    eth-tester provider takes no batches: a "round trip" is a provider call)."""


# -- anvil --------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def anvil() -> Iterator[str]:
    """A real anvil node on a free loopback port; its URL. Stopped on the way out, error or not."""
    binary = next((str(p) for p in (ANVIL, ANVIL_SHIM) if p.exists()), None) or shutil.which("anvil")
    if binary is None:
        raise RuntimeError("anvil is missing: run `npm ci` in the project root")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [binary, "--port", str(port), "--host", "127.0.0.1", "--silent", "--hardfork", "cancun"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        probe = Web3(HTTPProvider(url))
        deadline = time.monotonic() + 30
        while not probe.is_connected():
            if process.poll() is not None or time.monotonic() > deadline:
                err = process.stderr.read().decode()[-500:] if process.poll() is not None and process.stderr else ""
                raise RuntimeError(f"anvil did not start: {err}")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()


# -- set-up through the public API ---------------------------------------------------------------

def fund(w3: Web3, wei: int) -> Any:
    account = Account.create()
    w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(
        {"from": w3.eth.accounts[0], "to": account.address, "value": Wei(wei)}))
    return account


def channels_with_payments(w3: Web3, directory: Path, channels: int) -> tuple[Payee, int]:
    """An escrow, one payer with ``channels`` channels to one payee, one payment received on each.
    Returns the payee and the total it is owed."""
    deposit, paid = 10**16, 10**15  # paid well above its share of the claim gas
    deployer = fund(w3, 10**19)
    payer_account = fund(w3, channels * deposit + 10**19)  # deposits plus gas
    payee_account = fund(w3, 10**19)
    escrow = Escrow.deploy(w3, deployer)
    payer = Payer(escrow, payer_account, directory / "payer.db")
    payee = Payee(escrow, payee_account, directory / "payee.db")
    owed = 0
    for i in range(channels):
        record = payer.open_channel(payee_account.address, deposit, expires_in=timedelta(days=7))
        payee.receive(payer.pay(record.id, paid + i, task="t1").encode())
        owed += paid + i
    return payee, owed


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def measured(call: Callable[[], Any], counts: Counts, repeats: int) -> tuple[float, dict[str, Any], Any]:
    """Median wall time over ``repeats`` calls, and the counts of one call (checked to be the same
    for every call)."""
    times, snaps, result = [], [], None
    for _ in range(repeats):
        counts.reset()
        seconds, result = timed(call)
        times.append(seconds)
        snaps.append(counts.snapshot())
    for snap in snaps[1:]:
        if (snap["requests"], snap["round_trips"]) != (snaps[0]["requests"], snaps[0]["round_trips"]):
            print(f"warning: the counts vary between calls: {[(s['requests'], s['round_trips']) for s in snaps]}",
                  file=sys.stderr)
            break
    snap = dict(snaps[-1])
    snap["provider_s"] = statistics.median(s["provider_s"] for s in snaps)
    return statistics.median(times), snap, result


# -- the measurements ----------------------------------------------------------------------------

def bench_http(channels: int, repeats: int, directory: Path) -> dict[str, Any]:
    with anvil() as url:
        provider = CountingHTTPProvider(url, request_kwargs={"timeout": 60})
        w3 = Web3(provider)
        counts = provider.counts
        setup_s, (payee, owed) = timed(lambda: channels_with_payments(w3, directory, channels))

        counts.reset()
        _ = w3.eth.block_number
        one_call = counts.snapshot()

        unclaimed_s, snap, items = measured(payee.unclaimed, counts, repeats)
        if len(items) != channels or sum(item.value for item in items) != owed:
            raise RuntimeError(f"unclaimed() returned {len(items)} channels, expected {channels}")

        def n_block_numbers() -> None:
            for _ in range(channels):
                _ = w3.eth.block_number
        block_numbers_s, bn_snap, _ = measured(n_block_numbers, counts, repeats)
    return {
        "channels": channels,
        "setup_s": round(setup_s, 2),
        "block_number_requests": one_call["requests"],
        "block_number_round_trips": one_call["round_trips"],
        "unclaimed_requests": snap["requests"],
        "unclaimed_round_trips": snap["round_trips"],
        "unclaimed_requests_per_channel": round(snap["requests"] / channels, 2),
        "unclaimed_methods": snap["methods"],
        "unclaimed_methods_ms": snap["methods_ms"],
        "unclaimed_ms": round(unclaimed_s * 1e3, 2),
        "unclaimed_provider_ms": round(snap["provider_s"] * 1e3, 2),
        "n_block_number_round_trips": bn_snap["round_trips"],
        "n_block_number_ms": round(block_numbers_s * 1e3, 2),
        "round_trip_us": round(block_numbers_s / channels * 1e6, 1),
    }


def settle_once(channels: int, repeats: int, directory: Path) -> dict[str, Any]:
    provider = CountingTesterProvider(EthereumTester(PyEVMBackend()))
    w3 = Web3(provider)
    counts = provider.counts
    setup_s, (payee, owed) = timed(lambda: channels_with_payments(w3, directory, channels))

    recipient = Account.create().address

    def transfer() -> None:
        w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(
            {"from": w3.eth.accounts[0], "to": recipient, "value": Wei(1)}))
    transfer_s, transfer_snap, _ = measured(transfer, counts, repeats)

    unclaimed_s, unclaimed_snap, items = measured(payee.unclaimed, counts, repeats)
    if len(items) != channels:
        raise RuntimeError(f"unclaimed() returned {len(items)} channels, expected {channels}")

    counts.reset()
    settle_s, settlement = timed(payee.settle)
    settle_snap = counts.snapshot()
    if len(settlement.channels) != channels or settlement.gross != owed:
        raise RuntimeError(f"settle() claimed {len(settlement.channels)} channels for {settlement.gross} wei, "
                           f"expected {channels} for {owed}")
    return {
        "channels": channels,
        "setup_s": round(setup_s, 2),
        "settle_ms": round(settle_s * 1e3, 1),
        "settle_provider_ms": round(settle_snap["provider_s"] * 1e3, 1),
        "settle_requests": settle_snap["requests"],
        "settle_methods": settle_snap["methods"],
        "settle_methods_ms": settle_snap["methods_ms"],
        "settle_gas_used": settlement.gas_used,
        "settle_gas_per_channel": round(settlement.gas_used / channels),
        "transfer_ms": round(transfer_s * 1e3, 2),
        "transfer_requests": transfer_snap["requests"],
        "unclaimed_ms": round(unclaimed_s * 1e3, 1),
        "unclaimed_provider_ms": round(unclaimed_snap["provider_s"] * 1e3, 1),
        "unclaimed_requests": unclaimed_snap["requests"],
    }


def bench_settle(channels: int, repeats: int, directory: Path) -> dict[str, Any]:
    """Settle ``channels``; if that fails, report why and try the fallback sizes below it."""
    errors: dict[str, str] = {}
    for size in (channels, *(n for n in FALLBACK_SETTLE if n < channels)):
        try:
            sub = directory / f"settle-{size}"
            sub.mkdir()
            result = settle_once(size, repeats, sub)
        except Exception as exc:  # noqa: BLE001 - reported, then a smaller batch is tried
            errors[str(size)] = f"{type(exc).__name__}: {str(exc)[:300]}"
            print(f"settle of {size} channels failed: {errors[str(size)]}", file=sys.stderr)
            continue
        result["requested_channels"] = channels
        result["errors"] = errors
        return result
    return {"requested_channels": channels, "channels": 0, "errors": errors}


# -- report --------------------------------------------------------------------------------------

def methods_text(methods: dict[str, int], methods_ms: dict[str, float]) -> str:
    return ", ".join(f"{name} {n} ({methods_ms.get(name, 0):,.0f} ms)" for name, n in methods.items())


def print_table(result: dict[str, Any]) -> None:
    def row(name: str, value: str, note: str = "") -> None:
        print(f"{name:<40} {value:>12}   {note}".rstrip())

    http = result.get("http")
    if http:
        n = http["channels"]
        print(f"unclaimed() over HTTP, anvil, {n} channels")
        row("requests", f"{http['unclaimed_requests']:,}", f"{http['unclaimed_requests_per_channel']} per channel")
        row("round trips", f"{http['unclaimed_round_trips']:,}")
        row("  by method", "", methods_text(http["unclaimed_methods"], http["unclaimed_methods_ms"]))
        row("wall ms", f"{http['unclaimed_ms']:,.1f}", f"of which in provider {http['unclaimed_provider_ms']:,.1f}")
        row("baseline: round trips of 1 block_number", f"{http['block_number_round_trips']:,}",
            f"requests {http['block_number_requests']}")
        row(f"baseline: wall ms of {n} block_number", f"{http['n_block_number_ms']:,.1f}",
            f"{http['round_trip_us']:,.0f} µs per round trip")
        row("set-up s (not measured)", f"{http['setup_s']:,.1f}")
    settle = result.get("settle")
    if settle:
        m = settle["channels"]
        if http:
            print()
        print(f"settle() on eth-tester, {m} channels (asked {settle['requested_channels']})")
        for size, error in settle["errors"].items():
            row(f"FAILED at {size} channels", "", error)
        if m:
            row("wall ms", f"{settle['settle_ms']:,.1f}", f"of which in provider {settle['settle_provider_ms']:,.1f}")
            row("gas used", f"{settle['settle_gas_used']:,}", f"{settle['settle_gas_per_channel']:,} per channel")
            row("requests", f"{settle['settle_requests']:,}")
            row("  by method", "", methods_text(settle["settle_methods"], settle["settle_methods_ms"]))
            row("baseline: ms of 1 ETH transfer", f"{settle['transfer_ms']:,.2f}",
                f"eth_sendTransaction + receipt, {settle['transfer_requests']} requests")
            row(f"baseline: ms of unclaimed() ({m})", f"{settle['unclaimed_ms']:,.1f}",
                f"{settle['unclaimed_requests']:,} requests, in provider {settle['unclaimed_provider_ms']:,.1f}")
            row("set-up s (not measured)", f"{settle['setup_s']:,.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--channels-http", type=int, default=100, help="channels for unclaimed() on anvil (100)")
    parser.add_argument("--channels-settle", type=int, default=500, help="channels for settle() on eth-tester (500)")
    parser.add_argument("--repeats", type=int, default=3, help="calls per median wall time (3)")
    parser.add_argument("--skip-http", action="store_true", help="skip the anvil measurement")
    parser.add_argument("--skip-settle", action="store_true", help="skip the eth-tester settle measurement")
    args = parser.parse_args(argv)
    if args.channels_http < 1 or args.channels_settle < 1 or args.repeats < 1:
        parser.error("channel counts and --repeats must be at least 1")
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("MICROPAY_BENCH_DIR")) as tmp:
        if not args.skip_http:
            (Path(tmp) / "http").mkdir()
            result["http"] = bench_http(args.channels_http, args.repeats, Path(tmp) / "http")
        if not args.skip_settle:
            (Path(tmp) / "settle").mkdir()
            result["settle"] = bench_settle(args.channels_settle, args.repeats, Path(tmp) / "settle")
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)
    return 0 if not result.get("settle") or result["settle"]["channels"] else 1


if __name__ == "__main__":
    sys.exit(main())
