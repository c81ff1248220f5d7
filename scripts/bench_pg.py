"""What scripts/bench_inbox.py needs from PostgreSQL and from /proc: a fresh schema per run, the
bare commit rate, and the CPU seconds processes use (its throwaway cluster is
:func:`pgcluster.throwaway_cluster`).

psycopg is imported only by the functions that talk to a server, so the SQLite benchmark runs
without it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from bench_anvil import percentile

TICK = os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def fresh_schema(url: str) -> Iterator[str]:
    """A new schema on the server at ``url`` for one run, dropped afterwards; yields its name."""
    import psycopg

    name = f"bench_inbox_{secrets.token_hex(4)}"
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {name}")
    try:
        yield name
    finally:
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


def server_facts(url: str) -> dict[str, object]:
    """The server's version, durability settings and, if it runs on this machine, its postmaster's pid."""
    import psycopg
    from psycopg import conninfo

    host = str(conninfo.conninfo_to_dict(url).get("host") or "")
    local = host in {"", "localhost", "127.0.0.1", "::1"} or host.startswith("/")

    with psycopg.connect(url, autocommit=True) as db:
        version, fsync, sync, backend = db.execute(
            "SELECT version(), current_setting('fsync'), current_setting('synchronous_commit'), "
            "pg_backend_pid()").fetchone() or (None, None, None, None)
    return {"version": str(version).split(" on ")[0], "fsync": fsync, "synchronous_commit": sync,
            "postmaster": postmaster_of(int(backend)) if backend is not None and local else None}


def postmaster_of(backend: int) -> int | None:
    """The postmaster above ``backend`` if that process is on this machine (else None)."""
    try:
        parent = _stat(backend)[0]
    except OSError:
        return None
    return parent if _comm(backend) == "postgres" and _comm(parent) in {"postgres", "postmaster"} else None


def wal_counters(url: str) -> dict[str, int]:
    """pg_stat_wal's write and sync counts and the WAL position (bytes): cluster-wide, so other
    work on a shared server counts too."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        row = db.execute("SELECT wal_write, wal_sync, pg_current_wal_lsn() - '0/0'::pg_lsn FROM pg_stat_wal"
                         ).fetchone() or (0, 0, 0)
    return {"wal_writes": int(row[0]), "wal_syncs": int(row[1]), "wal_bytes": int(row[2])}


def bare_commits(url: str, connections: int, seconds: float) -> dict[str, float]:
    """One-row ``INSERT … COMMIT`` transactions (300-byte rows, synchronous_commit on) from
    ``connections`` connections at once for ``seconds``: commits/s, p50 and p99 of one commit."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        db.execute("CREATE TABLE IF NOT EXISTS bench_bare (k bigserial PRIMARY KEY, v bytea NOT NULL)")
    row = os.urandom(300)
    counts = [0] * connections
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors: list[BaseException] = []
    start = threading.Barrier(connections + 1)
    deadline = [0.0]

    def work(i: int) -> None:
        try:
            with psycopg.connect(url) as db:
                db.execute("SET synchronous_commit = on")
                db.commit()
                start.wait()
                while time.perf_counter() < deadline[0]:
                    began = time.perf_counter()
                    db.execute("INSERT INTO bench_bare (v) VALUES (%s)", (row,))
                    db.commit()
                    latencies[i].append(time.perf_counter() - began)
                    counts[i] += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the caller, after the other threads
            errors.append(exc)
            with contextlib.suppress(threading.BrokenBarrierError):
                start.abort()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + 3600
    with contextlib.suppress(threading.BrokenBarrierError):  # a thread failed: reported below
        start.wait()
    began = time.perf_counter()
    deadline[0] = began + seconds
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"bare PostgreSQL commits failed: {errors[0]}")
    flat = [x for each in latencies for x in each]
    return {"commits_per_s": sum(counts) / elapsed, "p50_ms": 1000 * percentile(flat, 0.5),
            "p99_ms": 1000 * percentile(flat, 0.99)}


# -- CPU from /proc ------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, int, int, int, int]:
    """(ppid, utime, stime, cutime, cstime) in clock ticks. Raises OSError if the process is gone."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[11]), int(fields[12]), int(fields[13]), int(fields[14])


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and of its children it has waited for; 0 once gone."""
    try:
        _, utime, stime, cutime, cstime = _stat(pid)
    except OSError:
        return 0.0
    return (utime + stime + cutime + cstime) / TICK


def tree_cpu(root: int) -> float:
    """CPU seconds of ``root`` (with its reaped children: the backends that exited) and of every
    live process under it: a PostgreSQL cluster's postmaster, its backends and its helpers."""
    children: dict[int, list[int]] = {}
    own: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid, utime, stime, _, _ = _stat(int(entry))
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
        own[int(entry)] = (utime + stime) / TICK
    total, todo = process_cpu(root), list(children.get(root, []))
    while todo:
        pid = todo.pop()
        total += own.get(pid, 0.0)
        todo.extend(children.get(pid, []))
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine since boot, from /proc/stat (busy: not idle or iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(fields[:8])
    return (total - fields[3] - fields[4]) / TICK, total / TICK
