"""VoucherStore: the SQLite file where a payer or a payee keeps channels, vouchers and tasks.

Durability is the point. Every write is one ``BEGIN IMMEDIATE`` transaction under
``journal_mode=WAL`` and ``synchronous=FULL``: when a write returns, it survives ``kill -9`` and
power loss. ``BEGIN IMMEDIATE`` takes the write lock up front, so two processes (or threads) on one
file take turns instead of interleaving. Amounts are 32-byte big-endian blobs: lossless for
uint256 and ordered correctly by SQLite's byte comparison. Receipts and vouchers are
``WITHOUT ROWID`` tables clustered on their key, so a receive writes two b-tree pages, not four.
The file is created mode 0600.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from micropay.errors import StoreError, UnknownChannel
from micropay.escrow import ChannelKey, ChannelState
from micropay.ledger import TaskReceipt, extend_root
from micropay.voucher import Voucher

SCHEMA_VERSION = 1

_MIGRATIONS: dict[int, Sequence[str]] = {
    1: (
        """CREATE TABLE channels (
            id BLOB PRIMARY KEY,
            chain_id INTEGER NOT NULL,
            escrow TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('payer', 'payee')),
            payer TEXT NOT NULL,
            payee TEXT NOT NULL,
            token TEXT NOT NULL,
            salt BLOB NOT NULL,
            deposit BLOB NOT NULL,
            claimed BLOB NOT NULL,
            expiry INTEGER NOT NULL,
            window INTEGER NOT NULL,
            closed INTEGER NOT NULL DEFAULT 0,
            checked_at REAL NOT NULL,
            observed_at INTEGER NOT NULL,
            issued BLOB NOT NULL
        )""",
        """CREATE TABLE receipts (
            channel_id BLOB NOT NULL REFERENCES channels(id),
            idx INTEGER NOT NULL,
            task_id TEXT NOT NULL,
            amount BLOB NOT NULL,
            deliverable BLOB NOT NULL,
            note TEXT NOT NULL,
            root BLOB NOT NULL,
            total BLOB NOT NULL,
            PRIMARY KEY (channel_id, idx)
        ) WITHOUT ROWID""",
        """CREATE TABLE vouchers (
            channel_id BLOB NOT NULL REFERENCES channels(id),
            amount BLOB NOT NULL,
            ledger_root BLOB NOT NULL,
            signature BLOB NOT NULL,
            receipt_count INTEGER NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (channel_id, amount)
        ) WITHOUT ROWID""",
        """CREATE TABLE settlements (
            tx_hash BLOB PRIMARY KEY,
            raw_tx BLOB,
            escrow TEXT NOT NULL,
            token TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'failed')),
            items TEXT NOT NULL,
            gross BLOB NOT NULL,
            gas_used INTEGER,
            fee BLOB,
            block INTEGER,
            created_at REAL NOT NULL
        )""",
        "CREATE TABLE cursors (name TEXT PRIMARY KEY, block INTEGER NOT NULL)",
    ),
}


def u256(value: int) -> bytes:
    return value.to_bytes(32, "big")


def from_u256(blob: bytes) -> int:
    return int.from_bytes(blob, "big")


@dataclass(frozen=True)
class ChannelRecord:
    """A channel as this store knows it: its key, its role here, and the last chain state read."""

    key: ChannelKey
    chain_id: int
    escrow: str
    role: str
    deposit: int
    claimed: int
    expiry: int
    window: int
    closed: bool
    checked_at: float  # wall-clock time of the last chain read
    observed_at: int = 0  # block time of that read
    issued: int = 0  # payer: the highest cumulative amount ever signed

    @property
    def id(self) -> bytes:
        return self.key.id

    def updated(self, chain: ChannelRecord | ChannelState, checked_at: float) -> ChannelRecord:
        """This record with the chain state of ``chain``, read at wall-clock ``checked_at``: what
        :meth:`VoucherStore.update_chain_state` writes."""
        return dataclasses.replace(self, deposit=chain.deposit, claimed=chain.claimed, expiry=chain.expiry,
                                   closed=chain.closed, checked_at=checked_at, observed_at=chain.observed_at)


@dataclass(frozen=True)
class LedgerEntry:
    receipt: TaskReceipt
    root: bytes
    total: int


def extend_entries(last: LedgerEntry | None, receipts: Sequence[TaskReceipt]) -> list[LedgerEntry]:
    """Ledger entries for ``receipts`` appended after ``last`` (None for an empty ledger)."""
    root = last.root if last else bytes(32)
    total = last.total if last else 0
    entries = []
    for receipt in receipts:
        root, total = extend_root(root, receipt), total + receipt.amount
        entries.append(LedgerEntry(receipt, root, total))
    return entries


@dataclass(frozen=True)
class BestVoucher:
    """The highest voucher held on a channel, unparsed: the receive path only compares it."""

    amount: int
    ledger_root: bytes
    signature: bytes
    receipt_count: int


@dataclass(frozen=True)
class ChannelTip:
    """What a new voucher on a channel is judged against: the channel row, the best voucher held
    and the ledger entry that voucher ends on."""

    record: ChannelRecord
    best: BestVoucher | None
    last: LedgerEntry | None


@dataclass(frozen=True)
class SettlementRecord:
    tx_hash: bytes
    raw_tx: bytes | None
    escrow: str
    token: str
    status: str
    items: list[tuple[bytes, int]]  # (channel id, cumulative amount claimed)
    gross: int
    gas_used: int | None
    fee: int | None
    block: int | None


class VoucherStore:
    """One SQLite file for either role. Safe to share between threads and processes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._db = self._connect()
        # Channel tips cached between receives. They are valid while neither another connection
        # (SQLite's data_version) nor this one (_commits) has committed anything else.
        self._commits = 0
        self._tips: dict[bytes, ChannelTip] = {}
        self._tips_version: tuple[int, int] | None = None
        self._pending_tips: dict[bytes, ChannelTip] = {}
        self._migrate()

    # -- connection and schema -------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            if not self.path.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            os.chmod(self.path, 0o600)  # vouchers are money: keep them private
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=30000")
            return db
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the voucher store {self.path}: {exc}") from exc

    def _migrate(self) -> None:
        try:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a micropay store (or is corrupt): {exc}") from exc
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} has schema {version}; this micropay reads up to {SCHEMA_VERSION}")
        if version == SCHEMA_VERSION:
            return
        with self.transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]  # another process may have migrated
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[target]:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={target}")

    @property
    def schema_version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> VoucherStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One durable write transaction, holding the file's write lock throughout."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write to {self.path}: {exc}") from exc
            changes = self._db.total_changes
            self._pending_tips.clear()
            try:
                yield self._db
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

    def tip(self, channel_id: bytes, db: sqlite3.Connection | None = None) -> ChannelTip | None:
        """The channel's row, best voucher and last ledger entry; None for an unknown channel.

        Served from memory unless the file changed since it was read: ``PRAGMA data_version``
        tells about commits by other connections (another process, a watcher), ``_commits``
        about this connection's own. Inside a transaction (``db``) the answer is authoritative.
        """
        with self._lock:
            conn = self._db if db is None else db
            version = (conn.execute("PRAGMA data_version").fetchone()[0], self._commits)
            if version != self._tips_version:
                self._tips.clear()
                self._tips_version = version
            tip = self._tips.get(channel_id)
            if tip is None:
                tip = self._read_tip(channel_id, conn)
                if tip is not None:
                    self._tips[channel_id] = tip
            return tip

    def peek_tip(self, channel_id: bytes) -> ChannelTip | None:
        """The cached tip without asking the file whether it is current (no lock, no I/O): good
        for what never changes (a channel's parties) and for a first judgement that
        :meth:`tip` inside the transaction then confirms."""
        return self._tips.get(channel_id)

    def set_tip(self, tip: ChannelTip) -> None:
        """Declare, as the last step of a transaction that wrote only to ``tip``'s channel, what its
        tip will be once committed, so the next receive need not read it back."""
        self._pending_tips[tip.record.id] = tip

    def _read_tip(self, channel_id: bytes, db: sqlite3.Connection) -> ChannelTip | None:
        record = self.find_channel(channel_id, db)
        if record is None:
            return None
        best = self.best_raw(channel_id, db)
        last = self.ledger(channel_id, db, start=best.receipt_count - 1)[0] if best and best.receipt_count else None
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

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # -- channels --------------------------------------------------------------------------

    def add_channel(self, record: ChannelRecord, db: sqlite3.Connection | None = None) -> None:
        row = (record.id, record.chain_id, record.escrow, record.role, record.key.payer, record.key.payee,
               record.key.token, u256(record.key.salt), u256(record.deposit), u256(record.claimed), record.expiry,
               record.window, int(record.closed), record.checked_at, record.observed_at, u256(record.issued))
        sql = "INSERT INTO channels VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
        if db is not None:
            db.execute(sql, row)
            return
        with self.transaction() as tx:
            tx.execute(sql, row)

    def channel(self, channel_id: bytes, db: sqlite3.Connection | None = None) -> ChannelRecord:
        found = self.find_channel(channel_id, db)
        if found is None:
            raise self.unknown(channel_id)
        return found

    def unknown(self, channel_id: bytes) -> UnknownChannel:
        return UnknownChannel(f"channel 0x{channel_id.hex()} is not in {self.path}")

    def find_channel(self, channel_id: bytes, db: sqlite3.Connection | None = None) -> ChannelRecord | None:
        sql = "SELECT * FROM channels WHERE id = ?"
        rows = db.execute(sql, (channel_id,)).fetchall() if db is not None else self._read(sql, (channel_id,))
        return _channel_from_row(rows[0]) if rows else None

    def channels(self, role: str | None = None) -> list[ChannelRecord]:
        if role is None:
            rows = self._read("SELECT * FROM channels ORDER BY rowid")
        else:
            rows = self._read("SELECT * FROM channels WHERE role = ? ORDER BY rowid", (role,))
        return [_channel_from_row(row) for row in rows]

    def update_chain_state(self, record: ChannelRecord, db: sqlite3.Connection | None = None) -> None:
        sql = "UPDATE channels SET deposit=?, claimed=?, expiry=?, closed=?, checked_at=?, observed_at=? WHERE id=?"
        params = (u256(record.deposit), u256(record.claimed), record.expiry, int(record.closed), record.checked_at,
                  record.observed_at, record.id)
        if db is not None:
            db.execute(sql, params)
            return
        with self.transaction() as tx:
            tx.execute(sql, params)

    # -- ledger and vouchers ---------------------------------------------------------------

    def ledger(self, channel_id: bytes, db: sqlite3.Connection | None = None, *, start: int = 0) -> list[LedgerEntry]:
        """The channel's task receipts from index ``start`` on, each with the root and total after it."""
        sql = ("SELECT task_id, amount, deliverable, note, root, total FROM receipts WHERE channel_id = ? "
               "AND idx >= ? ORDER BY idx")
        params = (channel_id, start)
        rows = db.execute(sql, params).fetchall() if db is not None else self._read(sql, params)
        return [LedgerEntry(TaskReceipt(t, from_u256(a), d, n), r, from_u256(tot)) for t, a, d, n, r, tot in rows]

    def add_receipts(self, db: sqlite3.Connection, channel_id: bytes, first_index: int,
                     entries: Sequence[LedgerEntry]) -> None:
        rows = [(channel_id, first_index + i, e.receipt.task_id, u256(e.receipt.amount), e.receipt.deliverable,
                 e.receipt.note, e.root, u256(e.total)) for i, e in enumerate(entries)]
        if len(rows) == 1:  # the usual receive: execute() skips executemany's per-call setup
            db.execute("INSERT INTO receipts VALUES (?,?,?,?,?,?,?,?)", rows[0])
        else:
            db.executemany("INSERT INTO receipts VALUES (?,?,?,?,?,?,?,?)", rows)

    def add_voucher(self, db: sqlite3.Connection, voucher: Voucher, receipt_count: int) -> None:
        db.execute("INSERT INTO vouchers VALUES (?,?,?,?,?,?)",
                   (voucher.channel_id, u256(voucher.amount), voucher.ledger_root, voucher.signature, receipt_count,
                    time.time()))

    def set_issued(self, db: sqlite3.Connection, channel_id: bytes, amount: int) -> None:
        db.execute("UPDATE channels SET issued = ? WHERE id = ?", (u256(amount), channel_id))

    def best_voucher(self, channel_id: bytes, db: sqlite3.Connection | None = None) -> tuple[Voucher, int] | None:
        """The highest voucher of a channel and how many receipts its ledger holds."""
        sql = ("SELECT c.chain_id, c.escrow, v.amount, v.ledger_root, v.signature, v.receipt_count "
               "FROM vouchers v JOIN channels c ON c.id = v.channel_id WHERE v.channel_id = ? "
               "ORDER BY v.amount DESC LIMIT 1")
        rows = db.execute(sql, (channel_id,)).fetchall() if db is not None else self._read(sql, (channel_id,))
        if not rows:
            return None
        chain_id, escrow, amount, root, signature, count = rows[0]
        return Voucher(chain_id, escrow, channel_id, from_u256(amount), root, signature), count

    def best_raw(self, channel_id: bytes, db: sqlite3.Connection) -> BestVoucher | None:
        """The best voucher unparsed: the receive path compares it and needs no Voucher object."""
        row = db.execute("SELECT amount, ledger_root, signature, receipt_count FROM vouchers WHERE channel_id = ? "
                         "ORDER BY amount DESC LIMIT 1", (channel_id,)).fetchone()
        return None if row is None else BestVoucher(from_u256(row[0]), row[1], row[2], row[3])

    def voucher_before(self, channel_id: bytes, amount: int, db: sqlite3.Connection) -> tuple[int, int]:
        """(amount, receipt count) of the highest voucher below ``amount``; (0, 0) if none."""
        row = db.execute("SELECT amount, receipt_count FROM vouchers WHERE channel_id = ? AND amount < ? "
                         "ORDER BY amount DESC LIMIT 1", (channel_id, u256(amount))).fetchone()
        return (0, 0) if row is None else (from_u256(row[0]), row[1])

    def voucher_count(self, channel_id: bytes) -> int:
        return self._read("SELECT COUNT(*) FROM vouchers WHERE channel_id = ?", (channel_id,))[0][0]

    # -- settlements -----------------------------------------------------------------------

    def add_settlement(self, record: SettlementRecord) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO settlements VALUES (?,?,?,?,?,?,?,?,?,?,?)", _settlement_row(record))

    def update_settlement(self, tx_hash: bytes, *, status: str, gas_used: int | None = None, fee: int | None = None,
                          block: int | None = None) -> None:
        with self.transaction() as db:
            db.execute("UPDATE settlements SET status=?, gas_used=?, fee=?, block=? WHERE tx_hash=?",
                       (status, gas_used, None if fee is None else u256(fee), block, tx_hash))

    def settlements(self, status: str | None = None) -> list[SettlementRecord]:
        sql = "SELECT * FROM settlements" + (" WHERE status = ?" if status else "") + " ORDER BY created_at"
        return [_settlement_from_row(row) for row in self._read(sql, (status,) if status else ())]

    # -- cursors (event-following progress) ---------------------------------------------------

    def cursor(self, name: str) -> int | None:
        rows = self._read("SELECT block FROM cursors WHERE name = ?", (name,))
        return rows[0][0] if rows else None

    def set_cursor(self, name: str, block: int) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO cursors VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET block = excluded.block",
                       (name, block))

    # -- export / import ---------------------------------------------------------------------

    def export(self) -> dict[str, Any]:
        """Every channel with its ledger and best voucher, as portable JSON. Each voucher carries its
        signature and receipts, so whoever imports it can verify everything."""
        channels = []
        for record in self.channels():
            best = self.best_voucher(record.id)
            ledger = self.ledger(record.id)
            channels.append({
                "chainId": record.chain_id, "escrow": record.escrow, "role": record.role,
                "payer": record.key.payer, "payee": record.key.payee, "token": record.key.token,
                "salt": str(record.key.salt), "deposit": str(record.deposit), "claimed": str(record.claimed),
                "expiry": record.expiry, "window": record.window, "closed": record.closed,
                "issued": str(record.issued),
                "voucher": None if best is None else best[0].to_dict(),
                "receipts": [entry.receipt.to_dict() for entry in ledger[: best[1] if best else 0]],
            })
        body = {"format": "micropay-bundle", "version": 1, "channels": channels}
        return {**body, "sha256": _digest(body)}

    def import_(self, bundle: object) -> int:
        """Merge an :meth:`export` bundle. Everything is verified before anything is written: the
        checksum, every key, every voucher's signature against its channel's payer, and every
        ledger against its voucher. A voucher replaces the stored one only if it is higher and its
        ledger extends the stored ledger. Returns how many channels changed."""
        plans = [_parse_bundle_channel(item) for item in _bundle_channels(bundle)]
        changed = 0
        with self.transaction() as db:
            for record, voucher, receipts in plans:
                existing = self.find_channel(record.id, db)
                if existing is None:
                    self.add_channel(record, db)
                    existing = record
                elif (existing.chain_id, existing.escrow) != (record.chain_id, record.escrow):
                    raise StoreError(f"channel 0x{record.id.hex()} is on another escrow in this store")
                if record.issued > existing.issued:
                    self.set_issued(db, record.id, record.issued)
                    changed += 1
                if voucher is None:
                    continue
                best = self.best_voucher(record.id, db)
                if best is not None and best[0].amount >= voucher.amount:
                    continue
                stored = self.ledger(record.id, db)
                if [e.receipt for e in stored] != receipts[: len(stored)]:
                    raise StoreError(f"channel 0x{record.id.hex()}: the bundle's ledger does not extend the stored one")
                self.add_receipts(db, record.id, len(stored),
                                  extend_entries(stored[-1] if stored else None, receipts[len(stored):]))
                self.add_voucher(db, voucher, len(receipts))
                changed += 1
        return changed


def _bundle_channels(bundle: object) -> list[Any]:
    if not isinstance(bundle, dict) or bundle.get("format") != "micropay-bundle" or bundle.get("version") != 1:
        raise StoreError("not a micropay bundle (format micropay-bundle, version 1)")
    if bundle.get("sha256") != bundle_digest(bundle):
        raise StoreError("the bundle's checksum does not match: it was changed or truncated")
    channels = bundle.get("channels")
    if not isinstance(channels, list):
        raise StoreError("the bundle has no channel list")
    return channels


def _parse_bundle_channel(item: object) -> tuple[ChannelRecord, Voucher | None, list[TaskReceipt]]:
    from micropay.errors import MicropayError
    from micropay.ledger import Ledger, verify_ledger

    try:
        if not isinstance(item, dict):
            raise StoreError("a bundle channel must be an object")
        key = ChannelKey(item["payer"], item["payee"], item["token"], int(item["salt"]))
        record = ChannelRecord(key, item["chainId"], item["escrow"], item["role"], int(item["deposit"]),
                               int(item["claimed"]), item["expiry"], item["window"], bool(item["closed"]), 0.0,
                               0, int(item.get("issued", "0")))
        if record.role not in ("payer", "payee") or not isinstance(record.chain_id, int):
            raise StoreError("a bundle channel has a bad role or chain id")
        receipts = [TaskReceipt.from_dict(r) for r in item["receipts"]]
        voucher = None if item["voucher"] is None else Voucher.from_dict(item["voucher"])
        if voucher is not None:
            if voucher.channel_id != key.id or (voucher.chain_id, voucher.escrow) != (record.chain_id, record.escrow):
                raise StoreError("a bundle voucher is for another channel, chain or escrow")
            voucher.verify(key.payer)
            verify_ledger(receipts, voucher)
        elif receipts:
            raise StoreError("a bundle channel has receipts but no voucher")
        Ledger.of(receipts)
        return record, voucher, receipts
    except MicropayError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"a bundle channel is malformed: {exc!r}") from exc


def bundle_digest(bundle: dict[str, Any]) -> str:
    return _digest({k: v for k, v in bundle.items() if k != "sha256"})


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _channel_from_row(row: tuple[Any, ...]) -> ChannelRecord:
    (cid, chain_id, escrow, role, payer, payee, token, salt, deposit, claimed, expiry, window, closed, checked_at,
     observed_at, issued) = row
    key = ChannelKey(payer, payee, token, from_u256(salt))
    if key.id != cid:
        raise StoreError(f"channel row 0x{cid.hex()} does not match its key: the store was altered")
    return ChannelRecord(key, chain_id, escrow, role, from_u256(deposit), from_u256(claimed), expiry, window,
                         bool(closed), checked_at, observed_at, from_u256(issued))


def _settlement_row(r: SettlementRecord) -> tuple[Any, ...]:
    items = json.dumps([[cid.hex(), str(amount)] for cid, amount in r.items])
    return (r.tx_hash, r.raw_tx, r.escrow, r.token, r.status, items, u256(r.gross), r.gas_used,
            None if r.fee is None else u256(r.fee), r.block, time.time())


def _settlement_from_row(row: tuple[Any, ...]) -> SettlementRecord:
    tx_hash, raw_tx, escrow, token, status, items, gross, gas_used, fee, block, _ = row
    parsed = [(bytes.fromhex(cid), int(amount)) for cid, amount in json.loads(items)]
    return SettlementRecord(tx_hash, raw_tx, escrow, token, status, parsed, from_u256(gross), gas_used,
                            None if fee is None else from_u256(fee), block)


