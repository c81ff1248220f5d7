"""The voucher store's SQLite file: one connection per store, under a lock, for every thread.

Every write is one ``BEGIN IMMEDIATE`` transaction under ``journal_mode=WAL`` and
``synchronous=FULL``: when a write returns, it survives ``kill -9`` and power loss. ``BEGIN
IMMEDIATE`` takes the write lock up front, so two processes (or threads) on one file take turns
instead of interleaving. The file is created mode 0600, and a missing folder or a 0-byte file is
refused: a mistyped path must not silently start an empty store.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from micropay import schema
from micropay.errors import StoreError
from micropay.store_backend import Connection, Database, damaged


class SqliteDatabase(Database):
    """A store's SQLite file. Safe to share between threads (one connection under a lock) and processes."""

    kind = "sqlite"
    errors = (sqlite3.Error,)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self._lock = threading.RLock()
        self._checkpoints: tuple[threading.Thread, threading.Event] | None = None
        self._db = self._connect()

    def _connect(self) -> sqlite3.Connection:
        try:
            if not self.path.exists():
                if not self.path.parent.is_dir():
                    raise StoreError(f"cannot create the voucher store {self.path}: the folder {self.path.parent} "
                                     "does not exist (a mistyped path?)")
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            elif self.path.is_file() and self.path.stat().st_size == 0:
                raise StoreError(f"{self.path} is empty (0 bytes), not a micropay store: restore it from an export "
                                 "(`micropay import`) or rebuild it from the chain (`micropay sync`) into a new file")
            os.chmod(self.path, 0o600)  # vouchers are money: keep them private
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=30000")
            return db
        except sqlite3.DatabaseError as exc:
            raise StoreError(damaged(self.location, exc)) from exc
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the voucher store {self.path}: {exc}") from exc

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        with self._lock:
            yield self._db

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write to {self.path}: {exc}") from exc
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:  # SQLite may already have rolled back (disk full, I/O error)
                    self._db.execute("ROLLBACK")
                raise
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:  # a failed COMMIT (a deferred constraint) leaves it open
                    self._db.execute("ROLLBACK")
                raise StoreError(f"the voucher store {self.path} could not commit: {exc}") from exc

    def schema_version(self, db: Connection) -> int:
        value = db.execute("PRAGMA user_version").fetchall()[0][0]
        return int(value) if isinstance(value, int) else 0

    def migrate(self, db: Connection, version: int, target: int) -> None:
        for number in range(version + 1, target + 1):
            schema.apply(db, number)
            db.execute(f"PRAGMA user_version={number}")

    def data_version(self, db: Connection) -> int | None:
        value = db.execute("PRAGMA data_version").fetchall()[0][0]
        return value if isinstance(value, int) else None

    def changes(self, db: Connection) -> int | None:
        return self._db.total_changes

    def damaged(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.DatabaseError)

    def checkpoint_in_background(self, interval: float) -> None:
        """Copy the write-ahead log into the main file from a thread of its own, every
        ``interval`` seconds, instead of inside a commit: SQLite's automatic checkpoint (every
        1,000 pages) makes the commit that crosses the mark wait for the copy and its fsyncs, a
        pause of tens of milliseconds for an inbox's every waiting client. A passive checkpoint
        never blocks a writer, and durability is the commit's (the log is fsynced first): a
        crash leaves only a longer log, checkpointed when the file is next opened. Once; stopped
        by :meth:`close`. Raises :class:`StoreError` if the file cannot be opened again."""
        with self._lock:
            if self._checkpoints is not None:
                return
            try:
                other = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
                self._db.execute("PRAGMA wal_autocheckpoint=0")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open {self.path} for checkpoints: {exc}") from exc
            stop = threading.Event()

            def run() -> None:
                try:
                    while not stop.wait(interval):
                        other.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    other.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    pass  # the next open checkpoints what is left: nothing committed depends on it
                finally:
                    other.close()
                    if not stop.is_set():  # this thread failed: the commits checkpoint again, or the log grows
                        with contextlib.suppress(sqlite3.Error), self._lock:
                            self._db.execute("PRAGMA wal_autocheckpoint=1000")

            thread = threading.Thread(target=run, name="micropay-checkpoints", daemon=True)
            self._checkpoints = (thread, stop)
            thread.start()

    def close(self) -> None:
        if self._checkpoints is not None:
            thread, stop = self._checkpoints
            stop.set()
            thread.join()
        with self._lock:
            self._db.close()
