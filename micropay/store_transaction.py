"""What may happen in a voucher store's write transaction, and the queries both sides share.

:meth:`micropay.store.VoucherStore.transaction` yields a :class:`StoreTransaction`: its methods
are every read and write a unit of work may do; no connection leaves the store's modules.
:class:`StoreReader` holds the queries, over one connection, for reads inside a transaction and
for the store's own reads outside one. They are written once for SQLite and PostgreSQL
(:mod:`micropay.store_backend`), and see only the rows of the store's ``owner``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence

from micropay.channel import ChannelRef
from micropay.documents import canonical
from micropay.errors import StoreError, UnknownChannel
from micropay.ledger import LedgerEntry
from micropay.records import (
    BestVoucher,
    ChannelRecord,
    ChannelTip,
    DeliveryRecord,
    Role,
    SettlementRecord,
    SettlementStatus,
    SqlValue,
    StoredFeedback,
    StoredPlan,
    as_bytes,
    as_float,
    as_int,
    as_str,
    entry_from_row,
    entry_to_row,
    from_u256,
    store_key,
    u256,
)
from micropay.store_backend import Connection, Database
from micropay.tips import TipCache
from micropay.voucher import Voucher

#: A channel as the store's methods take it: its full reference, or its bare id when that id is
#: unique in the store (the same id can exist on two chains or escrows).
ChannelLike = ChannelRef | bytes

_CHANNELS = f"SELECT {ChannelRecord.COLUMNS} FROM channels"
_INSERT_CHANNEL = (f"INSERT INTO channels ({ChannelRecord.COLUMNS}, owner) "
                   f"VALUES ({','.join('?' * (len(ChannelRecord.COLUMNS.split(',')) + 1))})")


class StoreReader:
    """The store's queries over one connection of ``database`` (the caller holds it), for ``owner``."""

    def __init__(self, db: Connection, database: Database, owner: str) -> None:
        self._db = db
        self._database = database
        self._path = database.location
        self._owner = owner

    def _rows(self, sql: str, params: Sequence[SqlValue] = ()) -> list[tuple[SqlValue, ...]]:
        try:
            return self._db.execute(sql, params).fetchall()
        except self._database.errors as exc:
            if self._database.damaged(exc):
                raise StoreError(damaged(self._path, exc)) from exc
            raise StoreError(f"the voucher store {self._path} could not be read: {exc}") from exc

    def key(self, channel: ChannelRef) -> bytes:
        """The store key of ``channel`` for this store's owner (:func:`micropay.records.store_key`)."""
        return store_key(channel, self._owner)

    def uid(self, channel: ChannelLike) -> bytes | None:
        """The store key of ``channel``; None if a bare id is not in the store. Raises
        :class:`StoreError` if a bare id names channels on several chains or escrows."""
        if isinstance(channel, ChannelRef):
            return self.key(channel)
        rows = self._rows("SELECT uid FROM channels WHERE id = ? AND owner = ?", (channel, self._owner))
        if len(rows) > 1:
            raise StoreError(f"channel 0x{channel.hex()} is on {len(rows)} chains or escrows in {self._path}: "
                             "name it with its chain and escrow (a ChannelRef)")
        return as_bytes(rows[0][0]) if rows else None

    def find_channel(self, channel: ChannelLike) -> ChannelRecord | None:
        """The stored channel, or None if the store does not hold it. Raises :class:`StoreError` if a
        bare id is ambiguous or the file is damaged."""
        uid = self.uid(channel)
        rows = [] if uid is None else self._rows(_CHANNELS + " WHERE uid = ?", (uid,))
        return ChannelRecord.from_row(rows[0]) if rows else None

    def channels(self, role: Role | None = None, *, terms: bytes | None = None) -> list[ChannelRecord]:
        """The stored channels (of ``role``, and opened with ``terms``, if given), in the order they
        were added. Raises :class:`StoreError` if the file is damaged."""
        where = [(column, value) for column, value in (("owner", self._owner), ("role", role), ("terms", terms))
                 if value is not None]
        sql = " WHERE " + " AND ".join(f"{column} = ?" for column, _ in where)
        rows = self._rows(_CHANNELS + sql + " ORDER BY rowid", tuple(value for _, value in where))
        return [ChannelRecord.from_row(row) for row in rows]

    def ledger(self, channel: ChannelLike, start: int = 0) -> list[LedgerEntry]:
        """The channel's task receipts from index ``start`` on, each with the root and total after it.
        Raises :class:`StoreError` if a bare id is ambiguous or the file is damaged."""
        rows = self._rows("SELECT task_id, amount, deliverable, note, root, total FROM receipts "
                          "WHERE channel = ? AND idx >= ? ORDER BY idx", (self.uid(channel), start))
        return [entry_from_row(row) for row in rows]

    def best_voucher(self, channel: ChannelLike) -> tuple[Voucher, int] | None:
        """The highest voucher of a channel and how many receipts its ledger holds; None if none is
        stored. Raises :class:`StoreError` if a bare id is ambiguous or the file is damaged."""
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
        """The highest voucher of the channel with store key ``uid``, unparsed; None if none is stored.
        Raises :class:`StoreError` if the file is damaged."""
        rows = self._rows("SELECT amount, ledger_root, signature, receipt_count FROM vouchers WHERE channel = ? "
                          "ORDER BY amount DESC LIMIT 1", (uid,))
        if not rows:
            return None
        amount, root, signature, count = rows[0]
        return BestVoucher(from_u256(amount), as_bytes(root), as_bytes(signature), as_int(count))

    def voucher_before(self, channel: ChannelLike, amount: int) -> tuple[int, int]:
        """The highest stored voucher amount below ``amount`` and its receipt count; (0, 0) if none.
        Raises :class:`StoreError` if a bare id is ambiguous or the file is damaged."""
        rows = self._rows("SELECT amount, receipt_count FROM vouchers WHERE channel = ? AND amount < ? "
                          "ORDER BY amount DESC LIMIT 1", (self.uid(channel), u256(amount)))
        return (0, 0) if not rows else (from_u256(rows[0][0]), as_int(rows[0][1]))

    def voucher_at(self, channel: ChannelLike, amount: int) -> tuple[Voucher, int] | None:
        """The stored voucher of exactly ``amount`` and its receipt count; None if this store holds
        none. Raises :class:`StoreError` if a bare id is ambiguous or the file is damaged."""
        rows = self._rows("SELECT c.chain_id, c.escrow, c.id, v.ledger_root, v.signature, v.receipt_count "
                          "FROM vouchers v JOIN channels c ON c.uid = v.channel WHERE v.channel = ? AND v.amount = ?",
                          (self.uid(channel), u256(amount)))
        if not rows:
            return None
        chain_id, escrow, channel_id, root, signature, count = rows[0]
        return (Voucher(as_int(chain_id), as_str(escrow), as_bytes(channel_id), amount, as_bytes(root),
                        as_bytes(signature)), as_int(count))

    def voucher_count(self, channel: ChannelLike) -> int:
        """How many vouchers are stored for a channel. Raises :class:`StoreError` if a bare id is
        ambiguous or the file is damaged."""
        return as_int(self._rows("SELECT COUNT(*) FROM vouchers WHERE channel = ?", (self.uid(channel),))[0][0])

    def settlements(self, status: SettlementStatus | None = None) -> list[SettlementRecord]:
        """The recorded settlements (with ``status``, if given), oldest first. Raises :class:`StoreError`
        if the file is damaged."""
        sql = f"SELECT {SettlementRecord.COLUMNS} FROM settlements WHERE owner = ?"
        params = (self._owner,) if status is None else (self._owner, status)
        sql += "" if status is None else " AND status = ?"
        return [SettlementRecord.from_row(row) for row in self._rows(sql + " ORDER BY created_at", params)]

    def cursor(self, name: str) -> int | None:
        """The block stored under cursor ``name``, or None if it was never set. Raises
        :class:`StoreError` if the file is damaged."""
        rows = self._rows("SELECT block FROM cursors WHERE owner = ? AND name = ?", (self._owner, name))
        return as_int(rows[0][0]) if rows else None

    def plans(self, root: bytes) -> list[StoredPlan]:
        """Every stored version of the project ``root``, by version, then as received. Raises
        :class:`StoreError` if the file is damaged."""
        return [StoredPlan.from_row(row) for row in self._rows(
            "SELECT root, document, received_at FROM plans WHERE owner = ? AND root = ? ORDER BY version, received_at",
            (self._owner, root))]

    def plan(self, plan_hash: bytes) -> StoredPlan | None:
        """The stored plan version with this hash, or None. Raises :class:`StoreError` if the file is damaged."""
        rows = self._rows("SELECT root, document, received_at FROM plans WHERE owner = ? AND hash = ?",
                          (self._owner, plan_hash))
        return StoredPlan.from_row(rows[0]) if rows else None

    def plan_roots(self) -> list[bytes]:
        """The root of every stored project, oldest first."""
        return [as_bytes(row[0]) for row in self._rows(
            "SELECT root FROM plans WHERE owner = ? GROUP BY root ORDER BY min(rowid)", (self._owner,))]

    def pending_plans(self) -> int:
        """How many stored plan versions are not in force (proposals and amendments awaiting a side)."""
        return as_int(self._rows("SELECT COUNT(*) FROM plans WHERE owner = ? AND in_force = 0", (self._owner,))[0][0])

    def feedback(self, root: bytes) -> list[StoredFeedback]:
        """Every stored piece of feedback on the project ``root``, oldest first."""
        return [StoredFeedback.from_row(row) for row in self._rows(
            "SELECT document, received_at FROM feedback WHERE owner = ? AND root = ? ORDER BY at, received_at",
            (self._owner, root))]

    def voucher_times(self, channel: ChannelLike) -> list[tuple[int, float]]:
        """(receipt count, wall-clock time stored) of each voucher of a channel, lowest first: the
        receipt at index i was paid when the first voucher whose count exceeds i was stored."""
        return [(as_int(count), as_float(at)) for count, at in self._rows(
            "SELECT receipt_count, created_at FROM vouchers WHERE channel = ? ORDER BY amount", (self.uid(channel),))]

    def inbox(self, channel: ChannelLike) -> str | None:
        """The inbox URL payments on ``channel`` are delivered to; None if none is set."""
        uid = self.uid(channel)
        rows = self._rows("SELECT inbox FROM channels WHERE uid = ?", (uid,)) if uid else []
        return None if not rows or rows[0][0] is None else as_str(rows[0][0])

    def deliveries(self, channel: ChannelLike | None = None, *, queued_only: bool = False) -> list[DeliveryRecord]:
        """Outbox rows, oldest channel first and in amount order within a channel: all of
        ``channel``'s, or every channel's; only those still queued if ``queued_only``."""
        where, params = ["c.owner = ?"], list[SqlValue]([self._owner])
        if channel is not None:
            where.append("d.channel = ?")
            params.append(self.uid(channel) or b"")
        if queued_only:
            where.append("d.state = 'queued'")
        columns = ", ".join(f"d.{column.strip()}" for column in DeliveryRecord.COLUMNS.split(","))
        sql = (f"SELECT {columns}, c.chain_id, c.escrow, c.id FROM deliveries d JOIN channels c ON c.uid = d.channel "
               "WHERE " + " AND ".join(where))
        rows = [DeliveryRecord.from_row((ChannelRef(as_int(row[-3]), as_str(row[-2]), as_bytes(row[-1])).uid,
                                         *row[1:-3])) for row in self._rows(sql, params)]
        first: dict[bytes, float] = {}
        for row in rows:
            first[row.channel] = min(first.get(row.channel, row.created_at), row.created_at)
        return sorted(rows, key=lambda r: (first[r.channel], r.channel, r.amount))

    def charged(self, channel: ChannelRef) -> tuple[int, int]:
        """(total, calls) a paid API charged on ``channel``: (0, 0) if it never charged."""
        rows = self._rows("SELECT charged, calls FROM charges WHERE channel = ?", (self.key(channel),))
        return (from_u256(rows[0][0]), as_int(rows[0][1])) if rows else (0, 0)

    def data_version(self) -> int | None:
        """What changes when another connection commits (None: the database cannot tell)."""
        try:
            return self._database.data_version(self._db)
        except self._database.errors as exc:
            raise StoreError(damaged(self._path, exc)) from exc

    def read_tip(self, channel: ChannelRef) -> ChannelTip | None:
        """The tip of ``channel``, read from the database; None if it is not stored. Raises
        :class:`StoreError` if the store is damaged."""
        uid = self.key(channel)
        rows = self._rows(_CHANNELS + " WHERE uid = ?", (uid,))
        if not rows:
            return None
        record = ChannelRecord.from_row(rows[0])
        best = self.best_raw(uid)
        last = self.ledger(record.ref, start=best.receipt_count - 1)[0] if best and best.receipt_count else None
        return ChannelTip(record, best, last)

    def cached_tip(self, channel: ChannelRef, tips: TipCache) -> ChannelTip | None:
        """The channel's tip, from ``tips`` while the file is unchanged."""
        return tips.get(channel.uid, self.data_version(), lambda: self.read_tip(channel))


def unknown_channel(path: str, channel: ChannelLike) -> UnknownChannel:
    """The error for a channel the store at ``path`` does not hold."""
    what = channel if isinstance(channel, ChannelRef) else f"channel 0x{channel.hex()}"
    return UnknownChannel(f"{what} is not in {path}")


class StoreTransaction(StoreReader):
    """What may happen under the store's write lock: reads that see this transaction's own
    writes, and the writes. Get one from :meth:`VoucherStore.transaction`; it is valid only
    inside that ``with`` block."""

    def __init__(self, db: Connection, database: Database, owner: str, tips: TipCache) -> None:
        super().__init__(db, database, owner)
        self._tips = tips
        self._locked: set[bytes] = set()

    def lock_channels(self, channels: Sequence[ChannelRef]) -> None:
        """Lock these channels' rows until the transaction ends, all at once and in key order (on
        PostgreSQL; a SQLite transaction holds the whole file). Take every lock a transaction
        needs before its reads: what is read after a lock is what its last holder committed."""
        keys = [key for key in (self.key(c) for c in channels) if key not in self._locked]
        if keys:
            self._database.lock_channels(self._db, keys)
            self._locked.update(keys)

    def lock(self, key: bytes) -> None:
        """Lock ``key`` (a plan's project, for what spans its channels) until the transaction
        ends. Take it before any channel's lock."""
        self._database.lock_key(self._db, key)

    def tip(self, channel: ChannelRef) -> ChannelTip | None:
        """The channel's row, best voucher and last ledger entry, as committed plus this
        transaction's writes; None for an unknown channel. Locks the channel first."""
        self.lock_channels([channel])
        return self.cached_tip(channel, self._tips)

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """A part of the transaction that an exception undoes on its own, leaving the rest to
        commit (how one group commit stores many payments and refuses some)."""
        pending = self._tips.pending()
        self._db.execute("SAVEPOINT part")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK TO part")
            self._db.execute("RELEASE part")
            self._tips.restore(pending)
            raise
        self._db.execute("RELEASE part")

    def set_tip(self, tip: ChannelTip) -> None:
        """Declare, as the last step of a transaction that wrote only to ``tip``'s channel, what its
        tip will be once committed, so the next receive need not read it back."""
        self._tips.declare(tip.record.ref.uid, tip)

    def channel(self, channel: ChannelLike) -> ChannelRecord:
        """The stored channel, locked until the transaction ends. Raises :class:`UnknownChannel`
        if the store does not hold it."""
        if isinstance(channel, ChannelRef):
            self.lock_channels([channel])
        found = self.find_channel(channel)
        if found is not None and not isinstance(channel, ChannelRef):
            self.lock_channels([found.ref])
            found = self.find_channel(found.ref)
        if found is None:
            raise unknown_channel(self._path, channel)
        return found

    def add_channel(self, record: ChannelRecord) -> None:
        """Record a new channel; one already stored fails the transaction with :class:`StoreError`."""
        self._db.execute(_INSERT_CHANNEL, (self.key(record.ref), *record.to_row()[1:], self._owner))

    def add_channel_if_absent(self, record: ChannelRecord) -> bool:
        """Record a new channel unless it is stored (on PostgreSQL, after waiting for a transaction
        that is storing it), then lock it. Returns whether this added it."""
        cursor = self._db.execute(_INSERT_CHANNEL + " ON CONFLICT DO NOTHING",
                                  (self.key(record.ref), *record.to_row()[1:], self._owner))
        self.lock_channels([record.ref])
        return cursor.rowcount == 1

    def update_chain_state(self, record: ChannelRecord) -> None:
        """Write ``record``'s chain state (deposit, claimed, expiry, closed, read times) over its row."""
        self._db.execute("UPDATE channels SET deposit=?, claimed=?, expiry=?, closed=?, checked_at=?, observed_at=? "
                         "WHERE uid=?", (u256(record.deposit), u256(record.claimed), record.expiry,
                                         int(record.closed), record.checked_at, record.observed_at,
                                         self.key(record.ref)))

    def add_receipts(self, channel: ChannelRef, first_index: int, entries: Sequence[LedgerEntry]) -> None:
        """Store ledger ``entries`` from index ``first_index`` on; an index already stored fails the
        transaction with :class:`StoreError`."""
        uid = self.key(channel)
        rows = [entry_to_row(uid, first_index + i, entry) for i, entry in enumerate(entries)]
        if len(rows) == 1:  # the usual receive: execute() skips executemany's per-call setup
            self._db.execute("INSERT INTO receipts VALUES (?,?,?,?,?,?,?,?)", rows[0])
        else:
            self._db.executemany("INSERT INTO receipts VALUES (?,?,?,?,?,?,?,?)", rows)

    def add_voucher(self, voucher: Voucher, receipt_count: int, channel: ChannelRef | None = None) -> None:
        """Store ``voucher``, whose ledger holds ``receipt_count`` receipts; an amount already stored
        (or an unknown channel) fails the transaction with :class:`StoreError`."""
        uid = self.key(channel or ChannelRef(voucher.chain_id, voucher.escrow, voucher.channel_id))
        self._db.execute("INSERT INTO vouchers VALUES (?,?,?,?,?,?)",
                         (uid, u256(voucher.amount), voucher.ledger_root, voucher.signature, receipt_count,
                          time.time()))

    def forget_unopened(self, channel: ChannelRef) -> bool:
        """Remove a channel recorded before its opening transaction and never seen on chain,
        nor paid on. Returns whether it was removed."""
        cursor = self._db.execute("DELETE FROM channels WHERE uid = ? AND observed_at = 0 AND NOT EXISTS "
                                  "(SELECT 1 FROM vouchers WHERE channel = ?)", (self.key(channel), self.key(channel)))
        return cursor.rowcount == 1

    def put_plan(self, stored: StoredPlan, *, in_force: bool) -> None:
        """Store a plan version, or replace the stored one of the same hash (with more signatures).
        A second version in force at one version number fails the transaction with :class:`StoreError`."""
        plan = stored.signed.plan
        self._db.execute("INSERT INTO plans (hash, root, version, in_force, document, received_at, owner) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (owner, hash) DO UPDATE SET "
                         "in_force = excluded.in_force, document = excluded.document",
                         (plan.hash, stored.root, plan.version, int(in_force),
                          canonical(stored.signed.to_dict()).decode(), stored.received_at, self._owner))

    def forget_plan(self, plan_hash: bytes) -> None:
        """Remove a stored plan version that is not in force (a withdrawn proposal)."""
        self._db.execute("DELETE FROM plans WHERE owner = ? AND hash = ? AND in_force = 0", (self._owner, plan_hash))

    def add_feedback(self, root: bytes, stored: StoredFeedback) -> bool:
        """Store feedback on the project ``root``; returns False if it was already stored."""
        f = stored.signed.feedback
        cursor = self._db.execute("INSERT INTO feedback (hash, root, task_id, at, document, received_at, owner) "
                                  "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                                  (f.hash, root, f.task_id, f.at, canonical(stored.signed.to_dict()).decode(),
                                   stored.received_at, self._owner))
        return cursor.rowcount == 1

    def set_terms(self, channel: ChannelRef, terms: bytes) -> None:
        """Record the terms (a plan's hash) ``channel`` was opened with."""
        self._db.execute("UPDATE channels SET terms = ? WHERE uid = ?", (terms, self.key(channel)))

    def set_inbox(self, channel: ChannelRef, url: str | None) -> None:
        """Deliver ``channel``'s payments to ``url`` from now on (None: to no inbox)."""
        self._db.execute("UPDATE channels SET inbox = ? WHERE uid = ?", (url, self.key(channel)))

    def queue_delivery(self, channel: ChannelRef, amount: int) -> None:
        """Queue the payment of cumulative ``amount`` on ``channel`` for its inbox."""
        self._db.execute("INSERT INTO deliveries (channel, amount, state, created_at) VALUES (?, ?, 'queued', ?)",
                         (self.key(channel), u256(amount), time.time()))

    def delivery_failed(self, channel: ChannelRef, amount: int, error: str) -> None:
        """Record a failed attempt to deliver the queued payment of ``amount`` (it stays queued)."""
        self._db.execute("UPDATE deliveries SET attempts = attempts + 1, last_error = ?, last_attempt = ? "
                         "WHERE channel = ? AND amount = ? AND state = 'queued'",
                         (error[:500], time.time(), self.key(channel), u256(amount)))

    def delivery_held(self, channel: ChannelRef, ack_amount: int, ack_root: bytes, ack_signature: bytes) -> int:
        """Mark every queued payment on ``channel`` up to ``ack_amount`` held, under that
        acknowledgment (checked by the caller). Returns how many were queued."""
        now = time.time()
        cursor = self._db.execute(
            "UPDATE deliveries SET state = 'held', attempts = attempts + 1, last_error = NULL, last_attempt = ?, "
            "ack_amount = ?, ack_root = ?, ack_signature = ?, acked_at = ? "
            "WHERE channel = ? AND amount <= ? AND state = 'queued'",
            (now, u256(ack_amount), ack_root, ack_signature, now, self.key(channel), u256(ack_amount)))
        return cursor.rowcount

    def set_charged(self, channel: ChannelRef, total: int, calls: int) -> None:
        """Record that a paid API has charged ``total`` on ``channel``, over ``calls`` calls."""
        self._db.execute("INSERT INTO charges VALUES (?, ?, ?) ON CONFLICT(channel) DO UPDATE SET "
                         "charged = excluded.charged, calls = excluded.calls",
                         (self.key(channel), u256(total), calls))

    def set_issued(self, channel: ChannelRef, amount: int) -> None:
        """Record ``amount`` as the highest cumulative amount the payer signed on the channel."""
        self._db.execute("UPDATE channels SET issued = ? WHERE uid = ?", (u256(amount), self.key(channel)))

    def add_settlement(self, record: SettlementRecord) -> None:
        """Record a settlement transaction; a hash already stored fails the transaction with
        :class:`StoreError`."""
        self._db.execute(f"INSERT INTO settlements ({SettlementRecord.COLUMNS}, owner) "
                         "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", (*record.to_row(), self._owner))

    def update_settlement(self, tx_hash: bytes, *, status: SettlementStatus, gas_used: int | None = None,
                          fee: int | None = None, block: int | None = None) -> None:
        """Record what became of settlement transaction ``tx_hash``: its status and, once mined, the gas
        it used, its fee and its block."""
        self._db.execute("UPDATE settlements SET status=?, gas_used=?, fee=?, block=? WHERE tx_hash=? AND owner=?",
                         (status, gas_used, None if fee is None else u256(fee), block, tx_hash, self._owner))

    def set_cursor(self, name: str, block: int) -> None:
        """Store ``block`` under cursor ``name``, replacing any earlier value."""
        self._db.execute("INSERT INTO cursors (name, block, owner) VALUES (?, ?, ?) "
                         "ON CONFLICT (owner, name) DO UPDATE SET block = excluded.block", (name, block, self._owner))


def damaged(path: str, exc: BaseException) -> str:
    """What to tell someone whose store file cannot be read."""
    return (f"the voucher store {path} is damaged or not a micropay store ({exc}): restore it from an export "
            "(`micropay import`), or rebuild its channels from the chain (`micropay sync`)")
