"""The voucher store's queries, written once for SQLite and PostgreSQL, over one connection.

:class:`StoreReader` reads for the store's ``owner`` only: the store's own reads outside a
transaction, and (as the base of :class:`~micropay.store_transaction.StoreTransaction`) the reads
inside one, which see the transaction's writes.
"""

from __future__ import annotations

from collections.abc import Sequence

from micropay.channel import ChannelRef
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
    from_u256,
    store_key,
    u256,
)
from micropay.store_backend import Connection, Database, damaged
from micropay.tips import TipCache
from micropay.voucher import Voucher

#: A channel as the store's methods take it: its full reference, or its bare id when that id is
#: unique in the store (the same id can exist on two chains or escrows).
ChannelLike = ChannelRef | bytes

_CHANNELS = f"SELECT {ChannelRecord.COLUMNS} FROM channels"
INSERT_CHANNEL = (f"INSERT INTO channels ({ChannelRecord.COLUMNS}, owner) "
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

    def read_tips(self, channels: Sequence[ChannelRef]) -> dict[bytes, ChannelTip]:
        """The tips of the stored ones of ``channels``, by :attr:`ChannelRef.uid`, in two statements
        whatever their number (what :meth:`read_tip` reads, for a batch)."""
        keys = {self.key(c): c.uid for c in channels}
        marks = ",".join("?" * len(keys))
        records = {as_bytes(row[0]): ChannelRecord.from_row(row)
                   for row in self._rows(f"{_CHANNELS} WHERE uid IN ({marks})", tuple(keys))}
        best: dict[bytes, tuple[BestVoucher, LedgerEntry | None]] = {}
        for row in self._rows(
                "SELECT v.channel, v.amount, v.ledger_root, v.signature, v.receipt_count, r.task_id, r.amount, "
                "r.deliverable, r.note, r.root, r.total FROM vouchers v LEFT JOIN receipts r ON r.channel = v.channel "
                f"AND r.idx = v.receipt_count - 1 WHERE v.channel IN ({marks}) "
                "AND v.amount = (SELECT w.amount FROM vouchers w WHERE w.channel = v.channel "
                "ORDER BY w.amount DESC LIMIT 1)",
                tuple(keys)):
            voucher = BestVoucher(from_u256(row[1]), as_bytes(row[2]), as_bytes(row[3]), as_int(row[4]))
            best[as_bytes(row[0])] = (voucher, None if row[5] is None else entry_from_row(row[5:]))
        return {keys[key]: ChannelTip(record, *best.get(key, (None, None))) for key, record in records.items()}

    def cached_tip(self, channel: ChannelRef, tips: TipCache) -> ChannelTip | None:
        """The channel's tip, from ``tips`` while the file is unchanged."""
        return tips.get(channel.uid, self.data_version(), lambda: self.read_tip(channel))


def unknown_channel(path: str, channel: ChannelLike) -> UnknownChannel:
    """The error for a channel the store at ``path`` does not hold."""
    what = channel if isinstance(channel, ChannelRef) else f"channel 0x{channel.hex()}"
    return UnknownChannel(f"{what} is not in {path}")
