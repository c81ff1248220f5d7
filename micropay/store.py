"""VoucherStore: the SQLite file where a payer or a payee keeps channels, vouchers and tasks.

Durability is the point. Every write is one ``BEGIN IMMEDIATE`` transaction under
``journal_mode=WAL`` and ``synchronous=FULL``: when a write returns, it survives ``kill -9`` and
power loss. ``BEGIN IMMEDIATE`` takes the write lock up front, so two processes (or threads) on one
file take turns instead of interleaving. What may happen under that lock is exactly the methods of
the :class:`~micropay.store_transaction.StoreTransaction` that :meth:`VoucherStore.transaction`
yields; no connection leaves the store. Receipts and vouchers are ``WITHOUT ROWID`` tables
clustered on their key, so a receive writes two b-tree pages, not four. The file is mode 0600.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from micropay.bundle import export_bundle, import_bundle
from micropay.channel import ChannelRef
from micropay.errors import StoreError, UnknownChannel
from micropay.ledger import LedgerEntry
from micropay.records import (
    ChannelRecord,
    ChannelTip,
    DeliveryRecord,
    Role,
    SettlementRecord,
    SettlementStatus,
    StoredFeedback,
    StoredPlan,
)
from micropay.schema import MIGRATIONS, SCHEMA_VERSION
from micropay.store_transaction import ChannelLike, StoreReader, StoreTransaction, damaged, unknown_channel
from micropay.tips import TipCache
from micropay.voucher import Voucher

if TYPE_CHECKING:
    from micropay.escrow import Escrow

__all__ = ["ChannelLike", "StoreTransaction", "VoucherStore"]


class VoucherStore:
    """One SQLite file for either role. Safe to share between threads and processes.

    Raises :class:`StoreError` when the file cannot be opened, is not a micropay store, or is from
    a newer micropay."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._created = False
        self._lock = threading.RLock()
        self._db = self._connect()
        self._tips = TipCache()
        self._checkpoints: tuple[threading.Thread, threading.Event] | None = None
        self._migrate()

    @classmethod
    def open(cls, store: VoucherStore | str | os.PathLike[str]) -> VoucherStore:
        """``store`` itself if it is a store already, else the store at that path."""
        return store if isinstance(store, VoucherStore) else cls(store)

    # -- connection and schema -------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        """Open (or create, mode 0600) the file. A missing folder is an error, not created: a
        mistyped path must not silently start an empty store; nor may a 0-byte file, which
        is what a store that lost its contents looks like."""
        try:
            if not self.path.exists():
                if not self.path.parent.is_dir():
                    raise StoreError(f"cannot create the voucher store {self.path}: the folder {self.path.parent} "
                                     "does not exist (a mistyped path?)")
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
                self._created = True
            elif self.path.is_file() and self.path.stat().st_size == 0 and not self._created:
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
            raise StoreError(damaged(self.path, exc)) from exc
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the voucher store {self.path}: {exc}") from exc

    def _migrate(self) -> None:
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} has schema {version}; this micropay reads up to {SCHEMA_VERSION}")
        if version == SCHEMA_VERSION:
            return
        with self.transaction():
            version = self.schema_version  # another process may have migrated meanwhile
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for step in MIGRATIONS[target]:
                    if isinstance(step, str):
                        self._db.execute(step)
                    else:
                        step(self._db)
                self._db.execute(f"PRAGMA user_version={target}")

    @property
    def schema_version(self) -> int:
        """The file's schema version (``PRAGMA user_version``). Raises :class:`StoreError` if it is damaged."""
        try:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            raise StoreError(damaged(self.path, exc)) from exc

    def close(self) -> None:
        """Close the file (after a last checkpoint, if they run in the background); the store
        cannot be used after."""
        if self._checkpoints is not None:
            thread, stop = self._checkpoints
            stop.set()
            thread.join()
        with self._lock:
            self._db.close()

    def checkpoint_in_background(self, interval: float = 0.5) -> None:
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

    def __enter__(self) -> VoucherStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[StoreTransaction]:
        """One durable write transaction, holding the file's write lock throughout.

        Raises :class:`StoreError` if the lock cannot be taken or a write or the commit fails; on
        any error nothing of the transaction is kept."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write to {self.path}: {exc}") from exc
            changes = self._db.total_changes
            self._tips.begin()
            try:
                yield StoreTransaction(self._db, self.path, self._tips)
            except BaseException as exc:
                if self._db.in_transaction:  # SQLite may already have rolled back (disk full, I/O error)
                    self._db.execute("ROLLBACK")
                self._tips.forget()  # tips read inside the transaction may have seen its writes
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"the voucher store {self.path} refused a write: {exc}") from exc
                raise
            else:
                try:
                    self._db.execute("COMMIT")
                except sqlite3.Error as exc:
                    if self._db.in_transaction:  # a failed COMMIT (a deferred constraint) leaves it open
                        self._db.execute("ROLLBACK")
                    self._tips.forget()
                    raise StoreError(f"the voucher store {self.path} could not commit: {exc}") from exc
                if self._db.total_changes != changes:
                    self._tips.committed()

    # -- channel tips: what the receive path reads, cached between commits ---------------------

    def tip(self, channel: ChannelRef) -> ChannelTip | None:
        """The channel's row, best voucher and last ledger entry; None for an unknown channel.
        Served from memory while the file is unchanged (see :mod:`micropay.tips`)."""
        with self._lock:
            return self._reader().cached_tip(channel, self._tips)

    def peek_tip(self, channel: ChannelRef) -> ChannelTip | None:
        """The cached tip without asking the file whether it is current (no lock, no I/O): good
        for what never changes (a channel's parties) and for a first judgement that
        :meth:`StoreTransaction.tip` then confirms."""
        return self._tips.peek(channel.uid)

    def _reader(self) -> StoreReader:
        return StoreReader(self._db, self.path)

    def unknown(self, channel: ChannelLike) -> UnknownChannel:
        """The error for a channel this store does not hold."""
        return unknown_channel(self.path, channel)

    def channel(self, channel: ChannelLike) -> ChannelRecord:
        """Raises :class:`UnknownChannel` if the store does not hold it, :class:`StoreError` if a
        bare id is ambiguous."""
        found = self.find_channel(channel)
        if found is None:
            raise self.unknown(channel)
        return found

    def find_channel(self, channel: ChannelLike) -> ChannelRecord | None:
        """The stored channel, or None if the store does not hold it. Raises :class:`StoreError` if a
        bare id is ambiguous or the file is damaged."""
        with self._lock:
            return self._reader().find_channel(channel)

    def channels_with_id(self, channel_id: bytes) -> list[ChannelRecord]:
        """Every stored channel with this id, whatever its chain or escrow."""
        return [r for r in self.channels() if r.id == channel_id]

    def channels(self, role: Role | None = None, *, terms: bytes | None = None) -> list[ChannelRecord]:
        """The stored channels (of ``role``, and opened with ``terms``, if given), in the order they
        were added. Raises :class:`StoreError` if the file is damaged."""
        with self._lock:
            return self._reader().channels(role, terms=terms)

    def ledger(self, channel: ChannelLike, *, start: int = 0) -> list[LedgerEntry]:
        """The channel's task receipts from index ``start`` on, each with the root and total after it."""
        with self._lock:
            return self._reader().ledger(channel, start)

    def best_voucher(self, channel: ChannelLike) -> tuple[Voucher, int] | None:
        """The highest voucher of a channel and how many receipts its ledger holds."""
        with self._lock:
            return self._reader().best_voucher(channel)

    def voucher_at(self, channel: ChannelLike, amount: int) -> tuple[Voucher, int] | None:
        """The stored voucher of exactly ``amount`` and how many receipts its ledger holds; None if none."""
        with self._lock:
            return self._reader().voucher_at(channel, amount)

    def claimable_voucher(self, channel: ChannelRef) -> Voucher | None:
        """The voucher to claim a channel with: its best, except on a paid API's channel (see
        :mod:`micropay.x402`), where a voucher may cover calls that failed and were not charged:
        there, the highest voucher covering no more than the calls charged (None: none yet)."""
        with self._lock:
            reader = self._reader()
            best = reader.best_voucher(channel)
            charged, calls = reader.charged(channel)
            if best is None or not calls or best[0].amount <= charged:
                return None if best is None else best[0]
            below, _ = reader.voucher_before(channel, charged + 1)
            found = reader.voucher_at(channel, below) if below else None
            return None if found is None else found[0]

    def voucher_before(self, channel: ChannelLike, amount: int) -> tuple[int, int]:
        """The highest stored voucher amount below ``amount`` and its receipt count; (0, 0) if none."""
        with self._lock:
            return self._reader().voucher_before(channel, amount)

    def voucher_count(self, channel: ChannelLike) -> int:
        """How many vouchers are stored for a channel."""
        with self._lock:
            return self._reader().voucher_count(channel)

    def settlements(self, status: SettlementStatus | None = None) -> list[SettlementRecord]:
        """The recorded settlements (with ``status``, if given), oldest first. Raises :class:`StoreError`
        if the file is damaged."""
        with self._lock:
            return self._reader().settlements(status)

    def cursor(self, name: str) -> int | None:
        """The block stored under cursor ``name``, or None if it was never set. Raises
        :class:`StoreError` if the file is damaged."""
        with self._lock:
            return self._reader().cursor(name)

    # -- plans and feedback ----------------------------------------------------------------------

    def plans(self, root: bytes) -> list[StoredPlan]:
        """Every stored version of the project whose first version has hash ``root``."""
        with self._lock:
            return self._reader().plans(root)

    def plan(self, plan_hash: bytes) -> StoredPlan | None:
        """The stored plan version with this hash, or None."""
        with self._lock:
            return self._reader().plan(plan_hash)

    def pending_plans(self) -> int:
        """How many stored plan versions are not in force yet."""
        with self._lock:
            return self._reader().pending_plans()

    def plan_roots(self) -> list[bytes]:
        """The root (first version's hash) of every stored project, oldest first."""
        with self._lock:
            return self._reader().plan_roots()

    def feedback(self, root: bytes) -> list[StoredFeedback]:
        """Every stored piece of feedback on the project ``root``, oldest first."""
        with self._lock:
            return self._reader().feedback(root)

    def voucher_times(self, channel: ChannelLike) -> list[tuple[int, float]]:
        """(receipt count, time stored) of each voucher of a channel, lowest first."""
        with self._lock:
            return self._reader().voucher_times(channel)

    def charged(self, channel: ChannelRef) -> tuple[int, int]:
        """(total, calls) a paid API charged on ``channel`` (:mod:`micropay.x402`): (0, 0) if none."""
        with self._lock:
            return self._reader().charged(channel)

    def inbox(self, channel: ChannelLike) -> str | None:
        """The inbox URL set for the channel's payments (None: none set)."""
        with self._lock:
            return self._reader().inbox(channel)

    def deliveries(self, channel: ChannelLike | None = None, *, queued_only: bool = False) -> list[DeliveryRecord]:
        """The outbox: see :meth:`StoreReader.deliveries`."""
        with self._lock:
            return self._reader().deliveries(channel, queued_only=queued_only)

    # -- single writes -------------------------------------------------------------------------

    def add_channel(self, record: ChannelRecord) -> None:
        """Record a new channel, in a transaction of its own. Raises :class:`StoreError` if it is
        already stored or the write fails."""
        with self.transaction() as tx:
            tx.add_channel(record)

    def update_chain_state(self, record: ChannelRecord) -> None:
        """Write ``record``'s chain state over the stored one, in a transaction of its own. Raises
        :class:`StoreError` if the write fails."""
        with self.transaction() as tx:
            tx.update_chain_state(record)

    # -- backups -------------------------------------------------------------------------------

    def export(self) -> dict[str, Any]:
        """Every channel with its ledger and best voucher: see :func:`micropay.bundle.export_bundle`."""
        return export_bundle(self)

    def import_(self, bundle: object, *, account: str | None = None, escrows: Sequence[Escrow] = ()) -> int:
        """Merge a bundle: see :func:`micropay.bundle.import_bundle` (and what it raises); ``escrows``
        check its contract signatures."""
        return import_bundle(self, bundle, account=account, escrows=escrows)
