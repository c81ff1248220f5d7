"""What may happen in a voucher store's write transaction.

:meth:`micropay.store.VoucherStore.transaction` yields a :class:`StoreTransaction`: its methods
are every read (those of :class:`~micropay.store_reader.StoreReader`, seeing its own writes) and
write a unit of work may do, and the locks it takes first; no connection leaves the store's
modules. The SQL is written once for SQLite and PostgreSQL (:mod:`micropay.store_backend`), and
touches only the rows of the store's ``owner``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence

from micropay.channel import ChannelRef
from micropay.documents import canonical
from micropay.ledger import LedgerEntry
from micropay.records import (
    ChannelRecord,
    ChannelTip,
    SettlementRecord,
    SettlementStatus,
    StoredFeedback,
    StoredPlan,
    entry_to_row,
    u256,
)
from micropay.store_backend import Connection, Database
from micropay.store_reader import INSERT_CHANNEL, ChannelLike, StoreReader, unknown_channel
from micropay.tips import TipCache
from micropay.voucher import Voucher


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

    def prefetch_tips(self, channels: Sequence[ChannelRef]) -> None:
        """On a database with a round trip per statement, read the tips of ``channels`` (locked
        first: see :meth:`lock_channels`) in two statements, so :meth:`tip` need not read each."""
        if self._database.remote and channels:
            for uid, tip in self.read_tips(channels).items():
                self._tips.declare(uid, tip)

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
        self._db.execute(INSERT_CHANNEL, (self.key(record.ref), *record.to_row()[1:], self._owner))

    def add_channel_if_absent(self, record: ChannelRecord) -> bool:
        """Record a new channel unless it is stored (on PostgreSQL, after waiting for a transaction
        that is storing it), then lock it. Returns whether this added it."""
        cursor = self._db.execute(INSERT_CHANNEL + " ON CONFLICT DO NOTHING",
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

    def forget_unpaid(self, channel: ChannelRef) -> bool:
        """Remove a channel that holds no voucher (added for a payment that was then refused).
        Returns whether it was removed."""
        key = self.key(channel)
        cursor = self._db.execute("DELETE FROM channels WHERE uid = ? AND NOT EXISTS (SELECT 1 FROM vouchers "
                                  "WHERE channel = ?) AND NOT EXISTS (SELECT 1 FROM deliveries WHERE channel = ?) "
                                  "AND NOT EXISTS (SELECT 1 FROM charges WHERE channel = ?)", (key, key, key, key))
        if cursor.rowcount == 1:
            self._tips.discard(channel.uid)
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
