"""What scripts/bench_inbox.py needs from PostgreSQL and from /proc: a throwaway cluster, a fresh
schema per run, the bare commit rate, and the CPU seconds processes use.

psycopg is imported only by the functions that talk to a server, so the SQLite benchmark runs
without it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from bench_anvil import free_port, percentile

TICK = os.sysconf("SC_CLK_TCK")


def pg_bindir() -> str:
    """The newest /usr/lib/postgresql/N/bin holding initdb (Debian's layout), else PATH's."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("no initdb: apt-get install -y postgresql")
    return os.path.dirname(initdb)


@dataclass
class Cluster:
    url: str
    data: Path
    version: str

    @property
    def postmaster(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """initdb + pg_ctl start in a new temporary folder (as the `postgres` user when run as root:
    initdb refuses root), fsync on, synchronous_commit on; yield it; stop it and remove it."""
    bindir = pg_bindir()
    run_as: dict[str, Any] = {}
    folder = tempfile.mkdtemp(prefix="bench-inbox-pg-")
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(folder, user.pw_uid, user.pw_gid)
        run_as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    data, port = Path(folder) / "data", free_port()
    env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}
    try:
        subprocess.run([f"{bindir}/initdb", "-D", str(data), "-U", "micropay", "-A", "trust", "-E", "UTF8",
                        "--locale=C", "--no-sync", "--no-instructions"],
                       check=True, capture_output=True, env=env, cwd=folder, **run_as)
        options = (f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on "
                   "-c max_connections=200 -c shared_buffers=128MB")
        subprocess.run([f"{bindir}/pg_ctl", "-D", str(data), "-l", os.path.join(folder, "log"), "-w", "-t", "60",
                        "-o", options, "start"], check=True, capture_output=True, env=env, cwd=folder, **run_as)
        version = subprocess.run([f"{bindir}/postgres", "--version"], capture_output=True, text=True,
                                 check=False).stdout.strip()
        yield Cluster(f"postgresql://micropay@127.0.0.1:{port}/postgres", data, version)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([f"{bindir}/pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop"],
                           capture_output=True, env=env, cwd=folder, check=False, **run_as)
        shutil.rmtree(folder, ignore_errors=True)


def in_schema(url: str, schema: str) -> str:
    """``url`` with its search_path set to ``schema`` (in libpq's ``options``, kept with any others)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query["options"] = f"{query.get('options', '')} -csearch_path={schema}".strip()
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def redacted(url: str) -> str:
    """``url`` without a password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


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
