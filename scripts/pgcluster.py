"""A throwaway PostgreSQL cluster for the tests and scripts/bench_inbox.py: initdb + pg_ctl in a
new temporary folder, a free loopback port, trust authentication for the role ``micropay``;
removed when done. (In scripts/, which both the tests and the benchmarks import from.)

Works as root (initdb and postgres refuse root: they run as the ``postgres`` user, through
subprocess's user=/group=) and as an ordinary user (they run as that user). The socket goes in the
temporary folder (``/var/run/postgresql`` may be missing or root-owned); clients use TCP on
127.0.0.1. A store is isolated in a fresh schema of the cluster's database (:func:`new_schema`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

ROLE = "micropay"
DATABASE = "postgres"


def pg_bindir() -> str:
    """The newest ``/usr/lib/postgresql/N/bin`` holding initdb (Debian's layout), else PATH's.
    Raises :class:`RuntimeError` if there is no initdb."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("no PostgreSQL server binaries (initdb): install them, e.g. apt-get install -y postgresql")
    return os.path.dirname(initdb)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Cluster:
    """A running (or stopped) test cluster. ``url`` reaches its ``postgres`` database as the
    superuser ``micropay`` (no password); ``folder`` holds ``data`` (the data directory), the
    socket and the server logs. ``uid``/``gid``: whom the server runs as (None: this process's user)."""

    url: str
    data: str
    bindir: str
    folder: str
    port: int
    options: str
    uid: int | None = None
    gid: int | None = None

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        run_as: dict[str, Any] = {}
        if self.uid is not None:
            run_as = {"user": self.uid, "group": self.gid, "extra_groups": []}
        return subprocess.run([f"{self.bindir}/pg_ctl", "-D", self.data, *args], check=check, capture_output=True,
                              env=_env(), cwd=self.folder, **run_as)

    @property
    def running(self) -> bool:
        return os.path.exists(os.path.join(self.data, "postmaster.pid"))

    def start(self) -> None:
        """Start the server (again): same port, same options; its log is appended to ``folder/log``."""
        try:
            self._run("-l", os.path.join(self.folder, "log"), "-w", "-t", "60", "-o", self.options, "start")
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"pg_ctl start failed: {exc.stderr.decode(errors='replace')}\n{self.log()}") from None

    def stop_immediate(self) -> None:
        """Stop the server at once, as a crash would (``pg_ctl stop -m immediate``): no checkpoint,
        clients cut off; the next start replays the write-ahead log."""
        self._run("-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        """Stop the server cleanly (``-m fast``), if it runs."""
        if self.running:
            self._run("-m", "fast", "-w", "stop", check=False)

    def log(self) -> str:
        """The tail of the server's log."""
        try:
            with open(os.path.join(self.folder, "log"), errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""


def _env() -> dict[str, str]:
    return {**os.environ, "LC_ALL": "C", "TZ": "UTC"}


#: Where clusters live, if ``in_memory`` and it exists: memory, so the suite's many commits cost no
#: disk flush (fsync stays on, and a crash of the server alone, what the crash tests make, loses
#: nothing either way).
SHM = "/dev/shm"


@contextlib.contextmanager
def throwaway_cluster(fsync: bool = True, *, in_memory: bool = True) -> Iterator[Cluster]:
    """Create and start a cluster in a new temporary folder; yield it; stop it (``-m immediate``: its
    data is thrown away) and remove the folder. ``fsync=False`` is faster and survives no power cut
    (a crash of the server alone loses nothing either way). ``in_memory=False``: on the disk, whose
    flushes a benchmark measures."""
    bindir = pg_bindir()
    uid = gid = None
    shm = SHM if in_memory and os.access(SHM, os.W_OK) else None
    folder = tempfile.mkdtemp(prefix="micropay-pg-", dir=shm)  # mode 0700
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        uid, gid = pw.pw_uid, pw.pw_gid
        os.chown(folder, uid, gid)
    data, port = os.path.join(folder, "data"), free_port()
    options = (f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync={'on' if fsync else 'off'} "
               "-c synchronous_commit=on -c max_connections=300")
    cluster = Cluster(f"postgresql://{ROLE}@127.0.0.1:{port}/{DATABASE}", data, bindir, folder, port, options,
                      uid, gid)
    run_as: dict[str, Any] = {} if uid is None else {"user": uid, "group": gid, "extra_groups": []}
    try:
        try:
            subprocess.run([f"{bindir}/initdb", "-D", data, "-U", ROLE, "-A", "trust", "-E", "UTF8",
                            "--locale=C", "--no-sync", "--no-instructions"],
                           check=True, capture_output=True, env=_env(), cwd=folder, **run_as)
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"initdb failed: {exc.stderr.decode(errors='replace')}") from None
        cluster.start()
        yield cluster
    finally:
        if cluster.running:
            cluster._run("-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(folder, ignore_errors=True)


def with_search_path(url: str, schema: str) -> str:
    """``url`` with its connections' search_path set to ``schema`` (in libpq's ``options``
    parameter, kept with any others it holds)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query["options"] = f"{query.get('options', '')} -csearch_path={schema}".strip()
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def new_schema(base_url: str) -> str:
    """Create a fresh, empty schema ``s_<uuid hex>`` in the database at ``base_url``; return the
    URL whose connections use it (``…?options=-csearch_path%3Ds_…``): a store of its own."""
    import psycopg  # only the PostgreSQL tests need it

    schema = f"s_{uuid.uuid4().hex}"
    with psycopg.connect(base_url, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {schema}")
    return with_search_path(base_url, schema)


class StoreLocations:
    """Where tests keep their stores on one backend: ``make(folder, name)`` is ``folder/name.db``
    on "sqlite"; on "postgres", a URL into a fresh schema of the database at ``base_url``. The same
    (folder, name) gives the same location, as the same file name would."""

    def __init__(self, backend: str, base_url: str | None = None) -> None:
        if backend not in ("sqlite", "postgres") or (backend == "postgres") != (base_url is not None):
            raise ValueError(f"no store locations for backend {backend!r} at {base_url!r}")
        self.backend, self.base_url = backend, base_url
        self._made: dict[tuple[str, str], str] = {}

    def make(self, folder: str | os.PathLike[str], name: str) -> str:
        key = (os.fspath(folder), name)
        if key not in self._made:
            if self.base_url is None:
                self._made[key] = os.path.join(key[0], f"{name}.db")
            else:
                self._made[key] = new_schema(self.base_url)
        return self._made[key]
