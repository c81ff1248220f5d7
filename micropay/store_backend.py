"""The voucher store's two databases behind one small interface: SQLite (a file) and PostgreSQL (a server).

:class:`~micropay.store.VoucherStore` is the store's API, for both. Below it, a :class:`Database`
gives it connections with one shape (:class:`Connection`: ``execute`` and ``executemany`` with
``?`` placeholders) and the few things the two do differently:

- **Unit of work.** :meth:`Database.write` is one durable transaction. SQLite takes the file's
  write lock up front (``BEGIN IMMEDIATE``): writers on one file take turns, across processes.
  PostgreSQL begins at READ COMMITTED and the transaction takes **row locks** on the channels it
  touches (:meth:`Database.lock_channels`, in store-key order, so two transactions never wait for
  each other in a cycle) and advisory locks on what is wider than a channel (a plan's project:
  :meth:`Database.lock_key`). Every read after a lock is a statement of its own, so it sees what
  the process that held the lock committed.
- **Durability.** SQLite: ``journal_mode=WAL`` and ``synchronous=FULL``. PostgreSQL:
  ``synchronous_commit=on`` in every session, whatever the server's default, and a server running
  with ``fsync=off`` is refused.
- **Schema version.** SQLite keeps it in ``PRAGMA user_version``, PostgreSQL in a
  ``micropay_meta`` row (:mod:`micropay.schema`).

SQL is written once, in the subset both understand (``?`` placeholders, ``ON CONFLICT``, quoted
``"window"``); the PostgreSQL connection rewrites placeholders and ``rowid``
(:func:`micropay.store_postgres.dialect`).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from micropay.errors import StoreError
from micropay.records import SqlValue

Rows = list[tuple[SqlValue, ...]]

#: How a location names a PostgreSQL server rather than a SQLite file.
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class Cursor(Protocol):
    """What a statement returns: its rows (none for a write) and how many rows it changed."""

    @property
    def rowcount(self) -> int: ...

    def fetchall(self) -> Rows: ...


class Connection(Protocol):
    """One database connection, as the store's queries use it (``?`` placeholders on both)."""

    def execute(self, sql: str, params: Sequence[SqlValue] = (), /) -> Cursor: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[SqlValue]], /) -> object: ...


class Database(ABC):
    """A store's database: where connections come from, and what differs between the two kinds.

    ``location`` is printable and never holds a password (a path, or the URL without it)."""

    kind: str
    location: str
    #: Whether each statement is a round trip to a server (PostgreSQL), not a call into a file's
    #: library: an inbox then commits on a thread of its own, never on its event loop.
    remote: bool = False
    #: The exceptions of this database's driver: what a failed statement raises.
    errors: tuple[type[BaseException], ...]

    @abstractmethod
    def read(self) -> AbstractContextManager[Connection]:
        """A connection for reads outside a transaction (each statement sees the latest commits)."""

    @abstractmethod
    def write(self) -> AbstractContextManager[Connection]:
        """One durable transaction: committed when the block ends, rolled back if it raises.
        Raises :class:`StoreError` if it cannot begin or commit."""

    @abstractmethod
    def schema_version(self, db: Connection) -> int:
        """The store's schema version (0: an empty database)."""

    @abstractmethod
    def migrate(self, db: Connection, version: int, target: int) -> None:
        """Bring the schema from ``version`` to ``target``, inside a write transaction."""

    def lock_migrations(self, db: Connection) -> None:
        """Inside a write transaction, before the version is read again: one migrator at a time.
        (SQLite's write lock already is.)"""
        return None

    def lock_channels(self, db: Connection, keys: Sequence[bytes]) -> None:
        """Inside a write transaction: lock these channel rows until it ends, in key order. SQLite's
        transaction holds the whole file already: nothing to do."""
        return None

    def lock_key(self, db: Connection, key: bytes) -> None:
        """Inside a write transaction: a lock on ``key`` (a plan's project) until it ends."""
        return None

    @abstractmethod
    def data_version(self, db: Connection) -> int | None:
        """A number that changes whenever another connection commits, or None if the database
        cannot tell (then nothing read earlier may be reused: see :mod:`micropay.tips`)."""

    def changes(self, db: Connection) -> int | None:
        """A count of rows this connection changed (None: unknown), to see whether a transaction wrote."""
        return None

    def checkpoint_in_background(self, interval: float) -> None:
        """Move checkpoints off the commit path, where the database has them there (SQLite's WAL)."""
        return None

    def damaged(self, exc: BaseException) -> bool:
        """Whether a driver error means the store's data is unreadable (not a lost connection)."""
        return False

    @abstractmethod
    def close(self) -> None:
        """Close every connection; the database cannot be used after."""


def damaged(location: str, exc: BaseException) -> str:
    """What to tell someone whose store at ``location`` cannot be read."""
    return (f"the voucher store {location} is damaged or not a micropay store ({exc}): restore it from an export "
            "(`micropay import`), or rebuild its channels from the chain (`micropay sync`)")


def is_postgres(location: str | os.PathLike[str]) -> bool:
    """Whether ``location`` names a PostgreSQL server (a ``postgresql://`` URL) rather than a file."""
    return isinstance(location, str) and location.startswith(POSTGRES_SCHEMES)


def open_database(location: str | os.PathLike[str]) -> Database:
    """The database at ``location``: a PostgreSQL server for a ``postgresql://`` (or ``postgres://``)
    URL, which needs the ``micropay[postgres]`` extra, else the SQLite file at that path. Raises
    :class:`StoreError` if it cannot be opened."""
    if is_postgres(location):
        try:
            from micropay.store_postgres import PostgresDatabase
        except ImportError as exc:
            raise StoreError(f"a postgresql:// store needs psycopg: pip install 'micropay[postgres]' ({exc})") from None
        return PostgresDatabase(str(location))
    from micropay.store_sqlite import SqliteDatabase

    return SqliteDatabase(location)
