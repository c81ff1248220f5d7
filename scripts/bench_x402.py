#!/usr/bin/env python3
"""What paying per call costs: x402 calls paid with micropay vouchers vs the same route unpaid.

    python scripts/bench_x402.py          # a table
    python scripts/bench_x402.py --json   # one JSON object

Measured in one run, on loopback:
- a real uvicorn process (uvloop, httptools, access log off) serving one FastAPI handler at two
  routes behind a :class:`~micropay.x402.Paywall`: ``GET /v1/paid/work`` priced at 1 gwei of ETH,
  ``GET /v1/free/work`` unpriced (it passes the paywall's route check, as any free route of a
  paid API does). The freelancer's store is a real SQLite file (WAL, synchronous=FULL) on disk,
  on a real anvil chain with micropay's escrow deployed;
- 1 and 16 concurrent clients, each calling one route one call after another: calls/s, the
  p50/p99 latency of one call, and the CPU time per call of the server process and of the client
  processes. The rounds (``--rounds``, each row ``--seconds`` a round) alternate unpaid and paid
  at each level, in the same run, since this machine's speed drifts; rates are averaged over the
  rounds, latencies pooled. ``--handler-ms`` gives the handler CPU work to do (default none).
- Each paid client is its own :class:`~micropay.Payer`, with its own key, store (on disk, also
  synchronous=FULL: every voucher is durable before it is sent) and channel, paying through
  :func:`~micropay.x402.paying_client`; each unpaid client is a plain ``httpx.AsyncClient``.
  Before the clock starts every client makes one call (a paid client's first call takes the 402,
  opens its channel on the chain and pays: a one-off, not the steady state). After the run, the
  freelancer's store must have charged exactly the price times the paid calls answered 200.

Clients run in worker processes (``--client-processes``, default 1), not in the driver: the driver
only starts processes and collects results, so nothing of its own shares the clients' event loop.
One worker, because this machine has 2 cores: the server process takes one and the clients the
other. A paid call costs the client more CPU than the server (about 1.6-2 ms against 1-1.3 ms
here: x402's payload, the voucher's signature and its durable store, whose commit blocks the
worker's event loop because x402 calls the scheme synchronously); more workers were tried (2, 4,
16) and were no faster, only three or more busy processes fighting for 2 cores. The table shows
both sides' CPU per call, so a reader can tell which one limits a rate. Targets: with 16 clients,
paid calls run at >= 0.5x the unpaid rate; the payment adds <= 5 ms to p50 (checked with 1
client, where it is latency; with 16 too, where queueing adds to it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from web3 import Web3

from bench_anvil import FREELANCER_KEY, AnvilChain, free_port, percentile, wait_for_port
from micropay import Escrow, Payee, Payer, VoucherStore
from micropay.x402 import Paywall, SpendingCaps, paying_client

LEVELS = (1, 16)
PRICE = 10**9  # 1 gwei a call
PAID, FREE = "/v1/paid/work", "/v1/free/work"
CAPS = SpendingCaps(deposit=10**17, max_spend=10**18, max_price=PRICE)


def cpu_seconds(pid: int) -> float:
    """The user + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the server process --------------------------------------------------------------------------------

def serve() -> None:
    """The freelancer's API (run as ``bench_x402.py --serve``, configured by the environment)."""
    import uvicorn
    from fastapi import FastAPI

    escrow = Escrow(Web3(Web3.HTTPProvider(os.environ["BENCH_RPC"])), os.environ["BENCH_ESCROW"])
    payee = Payee(escrow, Account.from_key(os.environ["BENCH_FREELANCER_KEY"]), os.environ["BENCH_STORE"])
    api = FastAPI()

    busy = float(os.environ.get("BENCH_HANDLER_MS", "0")) / 1000

    async def work() -> dict[str, str]:
        end = time.perf_counter() + busy  # --handler-ms: CPU work standing in for a real handler's
        while time.perf_counter() < end:
            pass
        return {"answer": "42"}

    api.add_api_route(PAID, work, methods=["GET"])
    api.add_api_route(FREE, work, methods=["GET"])
    app = Paywall(payee, {f"GET {PAID}": f"{PRICE} wei"}).wrap(api)
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["BENCH_PORT"]), log_level="warning",
                access_log=False, timeout_keep_alive=300)


# -- a client process ----------------------------------------------------------------------------------

async def clients_worker(spec: dict[str, Any]) -> None:
    """Clients of ``spec`` (run as ``bench_x402.py --worker``): a warm-up call each, then each
    command read from stdin ({"mode", "clients", "seconds"}) answered with one JSON line."""
    escrow = Escrow(Web3(Web3.HTTPProvider(spec["rpc"])), spec["escrow"])
    stores = Path(spec["stores"])
    payers = [Payer(escrow, Account.from_key(key), stores / f"client-{key[2:10]}.db") for key in spec["keys"]]
    paying = [paying_client(payer, CAPS, base_url=spec["url"], timeout=60) for payer in payers]
    plain = [httpx.AsyncClient(base_url=spec["url"], timeout=60) for _ in payers]
    for client in paying:  # one at a time: each opens its channel (a transaction) on its first call
        (await client.get(PAID)).raise_for_status()
    for client in plain:
        (await client.get(FREE)).raise_for_status()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        chosen = (paying if command["mode"] == "paid" else plain)[:command["clients"]]
        print(json.dumps(await load(chosen, PAID if command["mode"] == "paid" else FREE, command["seconds"])),
              flush=True)
    for client in [*paying, *plain]:
        await client.aclose()


async def load(clients: list[httpx.AsyncClient], path: str, seconds: float) -> dict[str, Any]:
    """Each client calls ``path`` one call after another for ``seconds``."""
    latencies: list[float] = []
    failures = 0
    deadline = time.perf_counter() + seconds

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal failures
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                answer = await http.get(path)
            except httpx.HTTPError:
                failures += 1
                continue
            if answer.status_code == 200:
                latencies.append(time.perf_counter() - start)
            else:
                failures += 1

    cpu, start = time.process_time(), time.perf_counter()
    await asyncio.gather(*(client(http) for http in clients))
    return {"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu, "latencies": latencies,
            "failures": failures}


# -- the driver ----------------------------------------------------------------------------------------

def start(role: str, env: dict[str, str] | None = None, stdin: int | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, role], env=env, stdin=stdin, stdout=subprocess.PIPE,
                            text=True)


def run(seconds: float, rounds: int, processes: int, handler_ms: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-x402-") as folder:
        directory = Path(folder)
        chain = AnvilChain(max(LEVELS))
        keys = ["0x" + client.key.hex() for client in chain.clients]
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        store = directory / "freelancer.db"
        server = start("--serve", {**os.environ, "BENCH_RPC": chain.url, "BENCH_ESCROW": chain.escrow.address,
                                   "BENCH_FREELANCER_KEY": FREELANCER_KEY, "BENCH_STORE": str(store),
                                   "BENCH_PORT": str(port), "BENCH_HANDLER_MS": str(handler_ms)})
        workers: list[subprocess.Popen[str]] = []
        try:
            wait_for_port(port, server, "the uvicorn server")
            shares = [keys[n::processes] for n in range(processes)]
            for share in shares:
                workers.append(start("--worker", stdin=subprocess.PIPE))
                assert workers[-1].stdin is not None
                workers[-1].stdin.write(json.dumps({"rpc": chain.url, "escrow": chain.escrow.address, "url": url,
                                                    "stores": folder, "keys": share}) + "\n")
                workers[-1].stdin.flush()
            for worker in workers:
                assert worker.stdout is not None and json.loads(worker.stdout.readline()) == {"ready": True}
            parts: dict[tuple[int, str], list[dict[str, Any]]] = {}
            for _ in range(rounds):  # the rounds alternate unpaid and paid (this machine's speed drifts)
                for level in LEVELS:
                    for mode in ("unpaid", "paid"):
                        parts.setdefault((level, mode), []).append(measure(workers, server.pid, mode, level, seconds))
            rows = [row(level, mode, found) for (level, mode), found in parts.items()]
        finally:
            for worker in workers:
                if worker.stdin is not None:
                    worker.stdin.close()
                worker.wait(timeout=30)
            server.terminate()
            server.wait(timeout=30)
            chain.stop()
        paid_ok = len(chain.clients) + sum(r["calls"] for r in rows if r["mode"] == "paid")
        charged = VoucherStore(store)
        total = sum(charged.charged(c.ref)[0] for c in charged.channels("payee"))
        charged.close()
    by = {(r["clients"], r["mode"]): r for r in rows}
    top = max(LEVELS)
    targets = {f"{top} clients: paid calls/s >= 0.5x unpaid":
               by[top, "paid"]["calls_per_s"] >= 0.5 * by[top, "unpaid"]["calls_per_s"],
               "1 client: payment adds <= 5 ms to p50": by[1, "paid"]["p50_ms"] - by[1, "unpaid"]["p50_ms"] <= 5,
               f"{top} clients: payment adds <= 5 ms to p50":
               by[top, "paid"]["p50_ms"] - by[top, "unpaid"]["p50_ms"] <= 5,
               "no failures": all(r["failures"] == 0 for r in rows),
               "charged = price x paid calls, to the wei": total == PRICE * paid_ok}
    return {"levels": rows, "targets": targets,
            "setup": {"seconds_per_row": seconds * rounds, "rounds": rounds, "client_processes": processes,
                      "cores": os.cpu_count(), "handler_ms": handler_ms, "price_wei": PRICE, "charged_wei": total,
                      "paid_calls_answered": paid_ok}}


def measure(workers: list[subprocess.Popen[str]], server_pid: int, mode: str, clients: int,
            seconds: float) -> dict[str, Any]:
    """One stretch of a row: ``clients`` clients (spread over the workers) calling the ``mode`` route."""
    counts = [len(range(n, clients, len(workers))) for n in range(len(workers))]
    busy = [(w, c) for w, c in zip(workers, counts, strict=True) if c]
    server_cpu = cpu_seconds(server_pid)
    for worker, count in busy:
        assert worker.stdin is not None
        worker.stdin.write(json.dumps({"mode": mode, "clients": count, "seconds": seconds}) + "\n")
        worker.stdin.flush()
    results = [json.loads(worker.stdout.readline()) for worker, _ in busy if worker.stdout is not None]
    return {"latencies": [x for r in results for x in r["latencies"]], "failures": sum(r["failures"] for r in results),
            "calls_per_s": sum(len(r["latencies"]) / r["seconds"] for r in results),
            "server_cpu": cpu_seconds(server_pid) - server_cpu, "client_cpu": sum(r["cpu"] for r in results)}


def row(clients: int, mode: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """A table row from its stretches (one per round): their rates averaged, their latencies pooled."""
    latencies = [x for part in parts for x in part["latencies"]]
    calls = max(len(latencies), 1)
    return {"clients": clients, "mode": mode, "calls": len(latencies), "failures": sum(p["failures"] for p in parts),
            "calls_per_s": sum(p["calls_per_s"] for p in parts) / len(parts),
            "p50_ms": 1000 * percentile(latencies, 0.5), "p99_ms": 1000 * percentile(latencies, 0.99),
            "server_cpu_ms_per_call": 1000 * sum(p["server_cpu"] for p in parts) / calls,
            "client_cpu_ms_per_call": 1000 * sum(p["client_cpu"] for p in parts) / calls}


def main() -> int:
    if sys.argv[1:] == ["--serve"]:
        serve()
        return 0
    if sys.argv[1:] == ["--worker"]:
        asyncio.run(clients_worker(json.loads(sys.stdin.readline())))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds each row runs per round (default 3)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of all rows, alternating (default 2)")
    parser.add_argument("--client-processes", type=int, default=1, help="worker processes the clients run in")
    parser.add_argument("--handler-ms", type=float, default=0.0,
                        help="CPU milliseconds the handler spends per call (default 0: a trivial handler)")
    args = parser.parse_args()
    result = run(args.seconds, args.rounds, args.client_processes, args.handler_ms)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{'clients':>7} {'route':>6} {'calls':>6} {'fail':>4} {'calls/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'server CPU ms/call':>18} {'client CPU ms/call':>18}")
    for r in result["levels"]:
        print(f"{r['clients']:>7} {r['mode']:>6} {r['calls']:>6} {r['failures']:>4} {r['calls_per_s']:>8,.0f} "
              f"{r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['server_cpu_ms_per_call']:>18.2f} "
              f"{r['client_cpu_ms_per_call']:>18.2f}")
    by = {(r["clients"], r["mode"]): r for r in result["levels"]}
    for level in LEVELS:
        paid, unpaid = by[level, "paid"], by[level, "unpaid"]
        clients = f"{level} client{'s' if level > 1 else ''}"
        print(f"  {clients}: paid/unpaid rate {paid['calls_per_s'] / unpaid['calls_per_s']:.2f}x, "
              f"payment adds {paid['p50_ms'] - unpaid['p50_ms']:.2f} ms to p50")
    for target, met in result["targets"].items():
        print(f"  {target}: {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
