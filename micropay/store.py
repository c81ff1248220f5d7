"""VoucherStore: the SQLite file where a payer or a payee keeps channels, vouchers and tasks.

Durability is the point. Every write is one ``BEGIN IMMEDIATE`` transaction under
``journal_mode=WAL`` and ``synchronous=FULL``: when a write returns, it survives ``kill -9`` and
power loss. ``BEGIN IMMEDIATE`` takes the write lock up front, so two processes (or threads) on one
file take turns instead of interleaving. What may happen under that lock is exactly the methods
of the :class:`StoreTransaction` that :meth:`VoucherStore.transaction` yields; no connection
leaves this module. Receipts and vouchers are ``WITHOUT ROWID`` tables clustered on their key, so a
receive writes two b-tree pages, not four. The file is created mode 0600.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from micropay.bundle import export_bundle, import_bundle
from micropay.channel import ChannelRef
from micropay.errors import StoreError, UnknownChannel
from micropay.ledger import LedgerEntry
from micropay.records import (
    BestVoucher,
    ChannelRecord,
    ChannelTip,
    Role,
    SettlementRecord,
    SettlementStatus,
    SqlValue,
    as_bytes,
    as_int,
    as_str,
    entry_from_row,
    entry_to_row,
    from_u256,
    u256,
)
from micropay.schema import MIGRATIONS, SCHEMA_VERSION
from micropay.voucher import Voucher

#: A channel as the store's methods take it: its full reference, or its bare id when that id is
#: unique in the store (the same id can exist on two chains or escrows).
ChannelLike = ChannelRef | bytes

_CHANNELS = f"SELECT {ChannelRecord.COLUMNS} FROM channels"


class _Reader:
    """The store's queries over one connection (the caller holds the store's lock)."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._path = path

    def _rows(self, sql: str, params: Sequence[SqlValue] = ()) -> list[tuple[SqlValue, ...]]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(damaged(self._path, exc)) from exc

    def uid(self, channel: ChannelLike) -> bytes | None:
        """The store key of ``channel``; None if a bare id is not in the store. Raises
        :class:`StoreError` if a bare id names channels on several chains or escrows."""
        if isinstance(channel, ChannelRef):
            return channel.uid
        rows = self._rows("SELECT uid FROM channels WHERE id = ?", (channel,))
        if len(rows) > 1:
            raise StoreError(f"channel 0x{channel.hex()} is on {len(rows)} chains or escrows in {self._path}: "
                             "name it with its chain and escrow (a ChannelRef)")
        return as_bytes(rows[0][0]) if rows else None

    def find_channel(self, channel: ChannelLike) -> ChannelRecord | None:
        uid = self.uid(channel)
        rows = [] if uid is None else self._rows(_CHANNELS + " WHERE uid = ?", (uid,))
        return ChannelRecord.from_row(rows[0]) if rows else None

    def channels(self, role: Role | None = None) -> list[ChannelRecord]:
        if role is None:
            rows = self._rows(_CHANNELS + " ORDER BY rowid")
        else:
            rows = self._rows(_CHANNELS + " WHERE role = ? ORDER BY rowid", (role,))
        return [ChannelRecord.from_row(row) for row in rows]

    def ledger(self, channel: ChannelLike, start: int = 0) -> list[LedgerEntry]:
        rows = self._rows("SELECT task_id, amount, deliverable, note, root, total FROM receipts "
                          "WHERE channel = ? AND idx >= ? ORDER BY idx", (self.uid(channel), start))
        return [entry_from_row(row) for row in rows]

    def best_voucher(self, channel: ChannelLike) -> tuple[Voucher, int] | None:
        rows = self._rows("SELECT c.chain_id, c.escrow, c.id, v.amount, v.ledger_root, v.signature, v.receipt_count "
                          "FROM vouchers v JOIN channels c ON c.uid = v.channel WHERE v.channel = ? "
                          "ORDER BY v.amount DESC LIMIT 1", (self.uid(channel),))
        if not rows:
            return None
        chain_id, escrow, channel_id, amount, root, signature, count = rows[0]
        voucher = Voucher(as_int(chain_id), as_str(escrow), as_bytes(channel_id), from_u256(amount), as_bytes(root),
                          as_bytes(signature))
        return voucher, as_int(count)

    def best_raw(self, uid: bytes) -> BestVoucher | None:
        rows = self._rows("SELECT amount, ledger_root, signature, receipt_count FROM vouchers WHERE channel = ? "
                          "ORDER BY amount DESC LIMIT 1", (uid,))
        if not rows:
            return None
        amount, root, signature, count = rows[0]
        return BestVoucher(from_u256(amount), as_bytes(root), as_bytes(signature), as_int(count))

    def voucher_before(self, channel: ChannelLike, amount: int) -> tuple[int, int]:
        rows = self._rows("SELECT amount, receipt_count FROM vouchers WHERE channel = ? AND amount < ? "
                          "ORDER BY amount DESC LIMIT 1", (self.uid(channel), u256(amount)))
        return (0, 0) if not rows else (from_u256(rows[0][0]), as_int(rows[0][1]))

    def voucher_count(self, channel: ChannelLike) -> int:
        return as_int(self._rows("SELECT COUNT(*) FROM vouchers WHERE channel = ?", (self.uid(channel),))[0][0])

    def settlements(self, status: SettlementStatus | None = None) -> list[SettlementRecord]:
        sql = f"SELECT {SettlementRecord.COLUMNS} FROM settlements" + (" WHERE status = ?" if status else "")
        return [SettlementRecord.from_row(row) for row in self._rows(sql + " ORDER BY created_at",
                                                                      (status,) if status else ())]

    def cursor(self, name: str) -> int | None:
        rows = self._rows("SELECT block FROM cursors WHERE name = ?", (name,))
        return as_int(rows[0][0]) if rows else None


class StoreTransaction(_Reader):
    """What may happen under the store's write lock: reads that see this transaction's own
    writes, and the writes. Get one from :meth:`VoucherStore.transaction`; it is valid only
    inside that ``with`` block."""

    def __init__(self, store: VoucherStore, db: sqlite3.Connection) -> None:
        super().__init__(db, store.path)
        self._store = store

    def tip(self, channel: ChannelRef) -> ChannelTip | None:
        """The channel's row, best voucher and last ledger entry, as committed plus this
        transaction's writes; None for an unknown channel."""
        return self._store._tip_under_lock(channel.uid, self)

    def set_tip(self, tip: ChannelTip) -> None:
        """Declare, as the last step of a transaction that wrote only to ``tip``'s channel, what its
        tip will be once committed, so the next receive need not read it back."""
        self._store._pending_tips[tip.record.ref.uid] = tip

    def channel(self, channel: ChannelLike) -> ChannelRecord:
        """Raises :class:`UnknownChannel` if the store does not hold it."""
        found = self.find_channel(channel)
        if found is None:
            raise self._store.unknown(channel)
        return found

    def add_channel(self, record: ChannelRecord) -> None:
        self._db.execute(f"INSERT INTO channels ({ChannelRecord.COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                         record.to_row())

    def update_chain_state(self, record: ChannelRecord) -> None:
        self._db.execute("UPDATE channels SET deposit=?, claimed=?, expiry=?, closed=?, checked_at=?, observed_at=? "
                         "WHERE uid=?", (u256(record.deposit), u256(record.claimed), record.expiry,
                                         int(record.closed), record.checked_at, record.observed_at, record.ref.uid))

    def add_receipts(self, channel: ChannelRef, first_index: int, entries: Sequence[LedgerEntry]) -> None:
        rows = [entry_to_row(channel.uid, first_index + i, entry) for i, entry in enumerate(entries)]
        if len(rows) == 1:  # the usual receive: execute() skips executemany's per-call setup
            self._db.execute("INSERT INTO receipts VALUES (?,?,?,?,?,?,?,?)", rows[0])
        else:
            self._db.executemany("INSERT INTO receipts VALUES (?,?,?,?,?,?,?,?)", rows)

    def add_voucher(self, voucher: Voucher, receipt_count: int) -> None:
        uid = ChannelRef(voucher.chain_id, voucher.escrow, voucher.channel_id).uid
        self._db.execute("INSERT INTO vouchers VALUES (?,?,?,?,?,?)",
                         (uid, u256(voucher.amount), voucher.ledger_root, voucher.signature, receipt_count,
                          time.time()))

    def forget_unopened(self, channel: ChannelRef) -> bool:
        """Remove a channel recorded before its opening transaction and never seen on chain,
        nor paid on. Returns whether it was removed."""
        cursor = self._db.execute("DELETE FROM channels WHERE uid = ? AND observed_at = 0 AND NOT EXISTS "
                                  "(SELECT 1 FROM vouchers WHERE channel = ?)", (channel.uid, channel.uid))
        return cursor.rowcount == 1

    def set_issued(self, channel: ChannelRef, amount: int) -> None:
        self._db.execute("UPDATE channels SET issued = ? WHERE uid = ?", (u256(amount), channel.uid))

    def add_settlement(self, record: SettlementRecord) -> None:
        self._db.execute(f"INSERT INTO settlements ({SettlementRecord.COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                         record.to_row())

    def update_settlement(self, tx_hash: bytes, *, status: SettlementStatus, gas_used: int | None = None,
                          fee: int | None = None, block: int | None = None) -> None:
        self._db.execute("UPDATE settlements SET status=?, gas_used=?, fee=?, block=? WHERE tx_hash=?",
                         (status, gas_used, None if fee is None else u256(fee), block, tx_hash))

    def set_cursor(self, name: str, block: int) -> None:
        self._db.execute("INSERT INTO cursors VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET block = excluded.block",
                         (name, block))


def damaged(path: Path, exc: BaseException) -> str:
    """What to tell someone whose store file cannot be read."""
    return (f"the voucher store {path} is damaged or not a micropay store ({exc}): restore it from an export "
            "(`micropay import`), or rebuild its channels from the chain (`micropay sync`)")


class VoucherStore:
    """One SQLite file for either role. Safe to share between threads and processes.

    Raises :class:`StoreError` when the file cannot be opened, is not a micropay store, or is from
    a newer micropay."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._created = False
        self._lock = threading.RLock()
        self._db = self._connect()
        # Channel tips cached between receives. They are valid while neither another connection
        # (SQLite's data_version) nor this one (_commits) has committed anything else.
        self._commits = 0
        self._tips: dict[bytes, ChannelTip] = {}
        self._tips_version: tuple[int, int] | None = None
        self._pending_tips: dict[bytes, ChannelTip] = {}
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
        try:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            raise StoreError(damaged(self.path, exc)) from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

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
            self._pending_tips.clear()
            try:
                yield StoreTransaction(self, self._db)
            except BaseException as exc:
                if self._db.in_transaction:  # SQLite may already have rolled back (disk full, I/O error)
                    self._db.execute("ROLLBACK")
                self._forget_tips()  # tips read inside the transaction may have seen its writes
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"the voucher store {self.path} refused a write: {exc}") from exc
                raise
            else:
                try:
                    self._db.execute("COMMIT")
                except sqlite3.Error as exc:
                    if self._db.in_transaction:  # a failed COMMIT (a deferred constraint) leaves it open
                        self._db.execute("ROLLBACK")
                    self._forget_tips()
                    raise StoreError(f"the voucher store {self.path} could not commit: {exc}") from exc
                if self._db.total_changes != changes:
                    self._committed()

    # -- channel tips: what the receive path reads, cached between commits ---------------------

    def tip(self, channel: ChannelRef) -> ChannelTip | None:
        """The channel's row, best voucher and last ledger entry; None for an unknown channel.

        Served from memory unless the file changed since it was read: ``PRAGMA data_version``
        tells about commits by other connections (another process, a watcher), ``_commits``
        about this connection's own."""
        with self._lock:
            return self._tip_under_lock(channel.uid, _Reader(self._db, self.path))

    def peek_tip(self, channel: ChannelRef) -> ChannelTip | None:
        """The cached tip without asking the file whether it is current (no lock, no I/O): good
        for what never changes (a channel's parties) and for a first judgement that
        :meth:`StoreTransaction.tip` then confirms."""
        return self._tips.get(channel.uid)

    def _tip_under_lock(self, uid: bytes, reader: _Reader) -> ChannelTip | None:
        version = (as_int(reader._rows("PRAGMA data_version")[0][0]), self._commits)
        if version != self._tips_version:
            self._tips.clear()
            self._tips_version = version
        tip = self._tips.get(uid)
        if tip is None:
            tip = self._read_tip(uid, reader)
            if tip is not None:
                self._tips[uid] = tip
        return tip

    @staticmethod
    def _read_tip(uid: bytes, reader: _Reader) -> ChannelTip | None:
        rows = reader._rows(_CHANNELS + " WHERE uid = ?", (uid,))
        if not rows:
            return None
        record = ChannelRecord.from_row(rows[0])
        best = reader.best_raw(uid)
        last = reader.ledger(record.ref, start=best.receipt_count - 1)[0] if best and best.receipt_count else None
        return ChannelTip(record, best, last)

    def _committed(self) -> None:
        self._commits += 1
        if self._pending_tips and self._tips_version is not None and self._tips_version[1] == self._commits - 1:
            # Only the declared channels changed: the other cached tips stay valid.
            self._tips_version = (self._tips_version[0], self._commits)
            self._tips.update(self._pending_tips)
        self._pending_tips.clear()

    def _forget_tips(self) -> None:
        self._tips.clear()
        self._tips_version = None
        self._pending_tips.clear()

    # -- reads -------------------------------------------------------------------------------

    def _reader(self) -> _Reader:
        return _Reader(self._db, self.path)

    def unknown(self, channel: ChannelLike) -> UnknownChannel:
        """The error for a channel this store does not hold."""
        what = channel if isinstance(channel, ChannelRef) else f"channel 0x{channel.hex()}"
        return UnknownChannel(f"{what} is not in {self.path}")

    def channel(self, channel: ChannelLike) -> ChannelRecord:
        """Raises :class:`UnknownChannel` if the store does not hold it, :class:`StoreError` if a
        bare id is ambiguous."""
        found = self.find_channel(channel)
        if found is None:
            raise self.unknown(channel)
        return found

    def find_channel(self, channel: ChannelLike) -> ChannelRecord | None:
        with self._lock:
            return self._reader().find_channel(channel)

    def channels_with_id(self, channel_id: bytes) -> list[ChannelRecord]:
        """Every stored channel with this id, whatever its chain or escrow."""
        return [r for r in self.channels() if r.id == channel_id]

    def channels(self, role: Role | None = None) -> list[ChannelRecord]:
        with self._lock:
            return self._reader().channels(role)

    def ledger(self, channel: ChannelLike, *, start: int = 0) -> list[LedgerEntry]:
        """The channel's task receipts from index ``start`` on, each with the root and total after it."""
        with self._lock:
            return self._reader().ledger(channel, start)

    def best_voucher(self, channel: ChannelLike) -> tuple[Voucher, int] | None:
        """The highest voucher of a channel and how many receipts its ledger holds."""
        with self._lock:
            return self._reader().best_voucher(channel)

    def voucher_count(self, channel: ChannelLike) -> int:
        """How many vouchers are stored for a channel."""
        with self._lock:
            return self._reader().voucher_count(channel)

    def settlements(self, status: SettlementStatus | None = None) -> list[SettlementRecord]:
        with self._lock:
            return self._reader().settlements(status)

    def cursor(self, name: str) -> int | None:
        with self._lock:
            return self._reader().cursor(name)

    # -- single writes -------------------------------------------------------------------------

    def add_channel(self, record: ChannelRecord) -> None:
        with self.transaction() as tx:
            tx.add_channel(record)

    def update_chain_state(self, record: ChannelRecord) -> None:
        with self.transaction() as tx:
            tx.update_chain_state(record)

    # -- backups -------------------------------------------------------------------------------

    def export(self) -> dict[str, Any]:
        """Every channel with its ledger and best voucher: see :func:`micropay.bundle.export_bundle`."""
        return export_bundle(self)

    def import_(self, bundle: object, *, account: str | None = None) -> int:
        """Merge a bundle: see :func:`micropay.bundle.import_bundle` (and what it raises)."""
        return import_bundle(self, bundle, account=account)
