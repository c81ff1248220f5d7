"""The voucher store on a PostgreSQL server (``pip install 'micropay[postgres]'``, psycopg 3).

Several processes, on several machines, can share one database: a marketplace's inboxes. The
guarantees are SQLite's, obtained differently (see :mod:`micropay.store_backend`):

- **Nothing acknowledged is lost.** Every session runs with ``synchronous_commit = on`` whatever
  the server's default, so a commit returns once its WAL record is flushed; a server with
  ``fsync = off`` is refused, since a crash could then lose what was acknowledged.
- **One writer per channel at a time.** A write transaction locks the channel rows it touches
  (``SELECT … FOR NO KEY UPDATE``, in store-key order) before it reads them, so two processes
  receiving the same payment take turns: the second sees the first's commit and answers with the
  same acknowledgment, the payment stored once. ``NO KEY UPDATE`` does not block the ``FOR KEY
  SHARE`` lock a receipt's foreign key takes.
- **Waits are bounded.** ``lock_timeout`` is 30 seconds, like SQLite's busy timeout; a deadlock
  or a timeout fails the transaction with :class:`StoreError`, and nothing of it is kept.

Each store holds two connections: one for write transactions (one at a time in a process, as on
SQLite) and one for reads outside them, so a page or a progress read never waits behind a commit.
A connection the server dropped (a restart) is opened again at the next use.
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
from collections.abc import Iterator, Sequence
from urllib.parse import quote, urlencode

import psycopg
from psycopg import conninfo
from psycopg.types.numeric import Int8Dumper

from micropay import schema
from micropay.errors import StoreError
from micropay.records import SqlValue
from micropay.schema_postgres import BASELINE, BASELINE_VERSION
from micropay.store_backend import Connection, Database, Rows

#: The advisory lock every migrating process takes (one migrator at a time, per database).
_MIGRATION_LOCK = 0x6D6963726F706179  # "micropay"
#: Each session's settings: durability first (see the module's docstring).
_SESSION = ("SET synchronous_commit = on", "SET lock_timeout = '30s'", "SET application_name = 'micropay'")
_PLACEHOLDER = re.compile(r"\?")
_ROWID = re.compile(r"\browid\b")


@functools.lru_cache(maxsize=512)
def dialect(sql: str) -> str:
    """A statement of the store's portable SQL as psycopg takes it: ``%s`` placeholders, and
    ``seq`` where SQLite's ``rowid`` is meant."""
    return _ROWID.sub("seq", _PLACEHOLDER.sub("%s", sql.replace("%", "%%")))


def redacted(url: str) -> str:
    """``url`` without its password, as a ``postgresql://`` URL (for messages, logs, and other
    processes that find the password where libpq looks: ``PGPASSWORD``, ``~/.pgpass``)."""
    try:
        parts = conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise StoreError(f"the store URL is malformed: {str(exc).split(':')[0]}") from None
    user = f"{quote(str(parts.pop('user')), safe='')}@" if parts.get("user") else ""
    host, port = str(parts.pop("host", "localhost")), parts.pop("port", None)
    name = quote(str(parts.pop("dbname", "")), safe="")
    parts.pop("password", None)
    query = urlencode({key: str(value) for key, value in parts.items()}, quote_via=quote)
    return f"postgresql://{user}{host}{f':{port}' if port else ''}/{name}{f'?{query}' if query else ''}"


class _Cursor:
    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: Rows, rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def fetchall(self) -> Rows:
        return self._rows


class _Connection:
    """A psycopg connection as the store's queries use it (``?`` placeholders, rows as tuples)."""

    def __init__(self, db: psycopg.Connection[tuple[SqlValue, ...]]) -> None:
        self.db = db

    def execute(self, sql: str, params: Sequence[SqlValue] = (), /) -> _Cursor:
        cursor = self.db.execute(dialect(sql), params)
        return _Cursor(cursor.fetchall() if cursor.description is not None else [], cursor.rowcount)

    def executemany(self, sql: str, rows: Sequence[Sequence[SqlValue]], /) -> object:
        with self.db.cursor() as cursor:
            cursor.executemany(dialect(sql), rows)
        return None


class PostgresDatabase(Database):
    """A store's PostgreSQL database, named by a ``postgresql://`` URL (its ``options`` may set the
    ``search_path``: a store lives in whichever schema that names). Raises :class:`StoreError` if
    the server cannot be reached or runs without ``fsync``."""

    kind = "postgres"
    remote = True
    errors = (psycopg.Error,)

    def __init__(self, url: str) -> None:
        self._url = url
        location = redacted(url)  # first: a malformed URL is refused without being echoed
        # What to hide from messages: the password as parsed and, for a URL whose password holds an
        # unescaped "@" (which a parser splits elsewhere), each part of the text before the host.
        raw = url.partition("://")[2].rpartition("@")[0].partition(":")[2]
        parsed = str(conninfo.conninfo_to_dict(url).get("password") or "")
        self._secrets = sorted({part for part in (parsed, raw, *raw.split("@")) if part}, key=len, reverse=True)
        self.location = self._scrub(location)
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._writer = self._connect()
        self._reader: _Connection | None = None
        self._check_server(self._writer)

    def _say(self, exc: BaseException) -> str:
        """A driver error's text, never with the password in it."""
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return self._scrub(text)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _connect(self) -> _Connection:
        try:
            db: psycopg.Connection[tuple[SqlValue, ...]] = psycopg.connect(self._url, autocommit=True,
                                                                          connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreError(f"cannot reach the voucher store {self.location}: {self._say(exc)}") from None
        db.adapters.register_dumper(int, Int8Dumper)  # one parameter type for every int: one prepared plan
        for setting in _SESSION:
            db.execute(setting)
        return _Connection(db)

    def _check_server(self, db: _Connection) -> None:
        fsync = db.execute("SHOW fsync").fetchall()[0][0]
        if fsync != "on":
            raise StoreError(f"the PostgreSQL server of {self.location} runs with fsync = {fsync!r}: a crash could "
                             "lose payments it acknowledged. Turn fsync on to keep vouchers there")

    def _usable(self, db: _Connection | None) -> _Connection:
        if db is None or db.db.closed or db.db.broken:
            return self._connect()
        return db

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        with self._read_lock:
            self._reader = self._usable(self._reader)
            try:
                yield self._reader
            except psycopg.Error as exc:
                raise StoreError(f"the voucher store {self.location} could not be read: {self._say(exc)}") from None

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        with self._write_lock:
            self._writer = db = self._usable(self._writer)
            try:
                db.execute("BEGIN")
            except psycopg.Error as exc:
                raise StoreError(f"cannot write to {self.location}: {self._say(exc)}") from None
            try:
                yield db
            except BaseException:
                if not db.db.closed and not db.db.broken:
                    with contextlib.suppress(psycopg.Error):
                        db.execute("ROLLBACK")
                raise
            try:
                db.execute("COMMIT")
            except psycopg.Error as exc:  # a deferred check, or the server went away: nothing is kept
                with contextlib.suppress(psycopg.Error):
                    db.execute("ROLLBACK")
                raise StoreError(f"the voucher store {self.location} could not commit: {self._say(exc)}") from None

    def schema_version(self, db: Connection) -> int:
        meta, channels = db.execute("SELECT to_regclass('micropay_meta') IS NOT NULL, "
                                    "to_regclass('channels') IS NOT NULL").fetchall()[0]
        if not meta:
            if channels:
                raise StoreError(f"{self.location} holds a channels table but no micropay_meta: not a micropay store")
            return 0
        rows = db.execute("SELECT value FROM micropay_meta WHERE key = 'schema_version'").fetchall()
        value = rows[0][0] if rows else None
        if not isinstance(value, int):
            raise StoreError(f"{self.location} has no schema version in micropay_meta: the store was altered")
        return value

    def lock_migrations(self, db: Connection) -> None:
        db.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))

    def migrate(self, db: Connection, version: int, target: int) -> None:
        if version == 0:
            for statement in BASELINE:
                db.execute(statement)
            db.execute("INSERT INTO micropay_meta VALUES ('schema_version', ?)", (BASELINE_VERSION,))
            version = BASELINE_VERSION
        if version < BASELINE_VERSION:
            raise StoreError(f"{self.location} has schema {version}, older than any PostgreSQL store: it was altered")
        for number in range(version + 1, target + 1):
            schema.apply(db, number)
            db.execute("UPDATE micropay_meta SET value = ? WHERE key = 'schema_version'", (number,))

    def lock_channels(self, db: Connection, keys: Sequence[bytes]) -> None:
        if keys:
            db.execute("SELECT 1 FROM channels WHERE uid = ANY(?) ORDER BY uid FOR NO KEY UPDATE",
                       (sorted(set(keys)),))  # type: ignore[arg-type]  # a list adapts to bytea[]

    def lock_key(self, db: Connection, key: bytes) -> None:
        db.execute("SELECT pg_advisory_xact_lock(?)", (int.from_bytes(key[:8], "big", signed=True),))

    def data_version(self, db: Connection) -> int | None:
        return None

    def damaged(self, exc: BaseException) -> bool:
        errors = psycopg.errors
        return isinstance(exc, errors.DataError | errors.UndefinedTable | errors.UndefinedColumn)

    def close(self) -> None:
        with self._write_lock, self._read_lock:
            for db in (self._writer, self._reader):
                if db is not None:
                    db.db.close()
