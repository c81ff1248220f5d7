#!/usr/bin/env python3
"""How many payments a freelancer's inbox (`micropay serve`) acknowledges per second under load.

    python scripts/bench_inbox.py          # a table
    python scripts/bench_inbox.py --json   # one JSON object

Measured in one run, on loopback:
- a real `micropay serve` process (its own Python, uvicorn, the group commit, a real SQLite file
  with journal_mode=WAL and synchronous=FULL) for a freelancer on a real anvil chain;
- 1, 8 and 32 concurrent clients in this process (asyncio + aiohttp), each posting the payments
  of its own channel one after another, each waiting for the acknowledgment (signed by the payee
  after the commit that covers the payment is durable) before sending the next: payments/s and
  the p50/p99 latency of one post;
- the bare SQLite commit rate (one-row INSERT transactions with the same journal and sync
  settings) on the same disk, in the same run, before and after each load (the disk's fsync rate
  drifts): one fsync per payment could never be faster than this.

Targets with 32 clients: >= 1,000 payments/s, >= 1.0x the bare commit rate, p99 <= 100 ms.
Payments are signed before the clock starts (signing is the client's cost, not the inbox's);
rate limits are lifted for the run (they are per client address, and every client here is 127.0.0.1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from eth_account import Account

from bench_anvil import FREELANCER_KEY, AnvilChain, free_port, percentile, wait_for_port
from bench_receive import BareCommits
from micropay.channel import ChannelKey
from micropay.ledger import TaskReceipt, extend_entries
from micropay.payment import Payment
from micropay.voucher import sign_voucher

PASSWORD = "bench-inbox"
LEVELS = (1, 8, 32)


class Chain(AnvilChain):
    """anvil on a free port, with the escrow deployed and one funded channel per client."""

    def __init__(self, directory: Path, channels: int) -> None:
        super().__init__(channels)
        self.freelancer = Account.from_key(FREELANCER_KEY)
        expiry = self.escrow.now() + 30 * 86400
        self.keys: list[ChannelKey] = []
        for client in self.clients:
            key, _ = self.escrow.open(client, self.freelancer.address, 10**18, expiry=expiry, window=86400)
            self.keys.append(key)


def signed_payments(chain: Chain, index: int, count: int) -> list[bytes]:
    """``count`` payments of 1 gwei each on client ``index``'s channel, in order, as request bodies."""
    client, key = chain.clients[index], chain.keys[index]
    bodies, last = [], None
    for n in range(count):
        (entry,) = extend_entries(last, [TaskReceipt(f"call {n}", 10**9)])
        voucher = sign_voucher(client, chain_id=chain.escrow.chain_id, escrow=chain.escrow.address,
                               channel_id=key.id, amount=entry.total, ledger_root=entry.root)
        bodies.append(json.dumps({"payment": Payment.of(voucher, (entry.receipt,), n).encode()}).encode())
        last = entry
    return bodies


class Server:
    """A real `micropay serve` process for the freelancer, its store in ``home``."""

    def __init__(self, chain: Chain, home: Path) -> None:
        self.env = {**os.environ, "MICROPAY_PASSWORD": PASSWORD, "MICROPAY_RPC": chain.url}
        self.home = home
        micropay = [sys.executable, "-m", "micropay", "--home", str(home)]
        subprocess.run([*micropay, "account", "import"], input=FREELANCER_KEY.encode(), env=self.env, check=True,
                       stdout=subprocess.DEVNULL)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / "serve.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [*micropay, "serve", "--escrow", chain.escrow.address, "--port", str(self.port),
                 "--client-rate", "0", "--channel-rate", "0", "--log-level", "info"],
                env=self.env, stdout=subprocess.DEVNULL, stderr=log)
        wait_for_port(self.port, self.process, "micropay serve")

    def stop(self) -> list[dict[str, object]]:
        """Stop it (SIGTERM: it stores what is under way) and return its JSON log lines."""
        self.process.terminate()
        self.process.wait(timeout=30)
        lines = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                lines.append({"text": line[:500]})
        return lines


async def load(url: str, streams: list[list[bytes]]) -> tuple[float, list[float], int]:
    """Post every stream's payments, one client per stream; (seconds, latencies in s, failures)."""
    latencies: list[float] = []
    failures = 0
    connector = aiohttp.TCPConnector(limit=len(streams))
    async with aiohttp.ClientSession(connector=connector) as session:
        async def client(stream: list[bytes]) -> None:
            nonlocal failures
            for body in stream:
                start = time.perf_counter()
                async with session.post(url + "/v1/payments", data=body,
                                        headers={"Content-Type": "application/json"}) as response:
                    answer = await response.read()
                latencies.append(time.perf_counter() - start)
                if response.status != 200 or b'"acknowledgment"' not in answer:
                    failures += 1
        start = time.perf_counter()
        await asyncio.gather(*(client(s) for s in streams))
        return time.perf_counter() - start, latencies, failures


def run(per_level: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-inbox-") as folder:
        directory = Path(folder)
        chain = Chain(directory, max(LEVELS))
        server = None
        try:
            # Each level continues every channel's ledger where the previous level left it.
            counts = {level: max(1, per_level // level) for level in LEVELS}
            # One more per channel: its first payment, posted before the clock starts (the inbox
            # reads a channel from the chain when it first sees it: a one-off, not the steady state).
            needed = [1 + sum(counts[level] for level in LEVELS if level > i) for i in range(max(LEVELS))]
            payments = [signed_payments(chain, i, n) for i, n in enumerate(needed)]
            home = directory / "freelancer"
            home.mkdir()
            server = Server(chain, home)
            bare = BareCommits(directory)
            bare.rate(200)  # warm the file
            asyncio.run(load(server.url, [stream[:1] for stream in payments]))
            used = [1] * max(LEVELS)
            rows = []
            for level in LEVELS:
                streams = []
                for i in range(level):
                    streams.append(payments[i][used[i]:used[i] + counts[level]])
                    used[i] += counts[level]
                before = bare.rate(500)
                seconds, latencies, failures = asyncio.run(load(server.url, streams))
                after = bare.rate(500)
                rate = len(latencies) / seconds
                bare_rate = statistics.median([before, after])
                rows.append({"clients": level, "payments": len(latencies), "failures": failures,
                             "payments_per_s": rate, "p50_ms": 1000 * percentile(latencies, 0.5),
                             "p99_ms": 1000 * percentile(latencies, 0.99), "bare_commits_per_s": bare_rate,
                             "ratio_to_bare": rate / bare_rate})
            log = server.stop()
            server = None
        finally:
            if server is not None:
                server.stop()
            chain.stop()
    top = rows[-1]
    targets = {"payments_per_s >= 1000": top["payments_per_s"] >= 1000,
               "ratio_to_bare >= 1.0": top["ratio_to_bare"] >= 1.0,
               "p99_ms <= 100": top["p99_ms"] <= 100, "no failures": all(r["failures"] == 0 for r in rows)}
    closed = next((line for line in log if line.get("event") == "inbox_closed"), {})
    return {"levels": rows, "targets_at_32_clients": targets,
            "server": {"payments": closed.get("payments"), "commits": closed.get("commits"),
                       "errors": [line for line in log if line.get("level") == "error"][:5]}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--payments", type=int, default=6400, help="payments posted at each level (default 6400)")
    args = parser.parse_args()
    result = run(args.payments)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{'clients':>7} {'payments':>8} {'fail':>4} {'payments/s':>10} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'bare commits/s':>14} {'x bare':>6}")
    for r in result["levels"]:  # type: ignore[attr-defined]
        print(f"{r['clients']:>7} {r['payments']:>8} {r['failures']:>4} {r['payments_per_s']:>10,.0f} "
              f"{r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} {r['bare_commits_per_s']:>14,.0f} {r['ratio_to_bare']:>6.2f}")
    for target, met in result["targets_at_32_clients"].items():  # type: ignore[attr-defined]
        print(f"  32 clients: {target}: {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
