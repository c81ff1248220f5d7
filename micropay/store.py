"""VoucherStore: where a payer or a payee keeps channels, vouchers and tasks: a SQLite file, or a
PostgreSQL database shared by many accounts and processes.

Durability is the point. Every write is one transaction of :meth:`VoucherStore.transaction`: when
it returns, it survives ``kill -9`` and power loss. Two writers never interleave on one channel:
SQLite takes the file's write lock, PostgreSQL locks the channel's row (see
:mod:`micropay.store_backend`). What may happen in a transaction is exactly the methods of the
:class:`~micropay.store_transaction.StoreTransaction` it yields; no connection leaves the store.

One database can hold several accounts' stores (a marketplace's inboxes): ``owner`` names the
account a store is for, and it sees only that account's rows (the default, ``None``, is a store
of one account, as every SQLite file is).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from micropay._utils.addresses import normalize
from micropay.bundle import export_bundle, import_bundle
from micropay.channel import ChannelRef
from micropay.errors import MicropayValueError, StoreError, UnknownChannel
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
from micropay.schema import SCHEMA_VERSION
from micropay.store_backend import Connection, Database, damaged, is_postgres, open_database
from micropay.store_reader import ChannelLike, StoreReader, unknown_channel
from micropay.store_sqlite import SqliteDatabase
from micropay.store_transaction import StoreTransaction
from micropay.tips import TipCache
from micropay.voucher import Voucher

if TYPE_CHECKING:
    from micropay.escrow import Escrow

__all__ = ["ChannelLike", "StoreTransaction", "VoucherStore", "is_postgres"]


class VoucherStore:
    """The store at ``location``: a SQLite file's path, or a ``postgresql://`` URL (with the
    ``micropay[postgres]`` extra). Either is safe to share between threads and processes.

    Raises :class:`StoreError` when it cannot be opened, is not a micropay store, or is from a
    newer micropay; :class:`MicropayValueError` for an ``owner`` that is not an address."""

    def __init__(self, location: str | os.PathLike[str] | Database, *, owner: str | None = None) -> None:
        found = None if owner is None else normalize(owner)
        if owner is not None and found is None:
            raise MicropayValueError(f"the store's owner must be an address, got {owner!r:.60}")
        #: The account whose rows this store reads and writes ('': a store of one account).
        self.owner: str = "" if found is None else found[0]
        #: Whether closing this store closes its database (not when it shares another store's).
        self._owns_database = not isinstance(location, Database)
        self.database: Database = location if isinstance(location, Database) else open_database(location)
        #: Where the store is, to print: the file's path, or the server's URL without its password.
        self.location = self.database.location
        self._tips = TipCache()
        try:
            self._migrate()
        except BaseException:
            if self._owns_database:
                self.database.close()
            raise

    def for_owner(self, owner: str) -> VoucherStore:
        """``owner``'s store in this store's database, sharing its connections (a host of many
        freelancers' inboxes opens one database, not one per freelancer). Closing it leaves this
        store open. Raises :class:`MicropayValueError` if ``owner`` is not an address."""
        return VoucherStore(self.database, owner=owner)

    @classmethod
    def open(cls, store: VoucherStore | str | os.PathLike[str], *, account: str | None = None) -> VoucherStore:
        """``store`` itself if it is a store already, else ``account``'s store at that location: on a
        PostgreSQL server, that account's rows (a server holds many accounts'); a file is the store
        of one account, whichever it is."""
        if isinstance(store, VoucherStore):
            return store
        return cls(store, owner=account if is_postgres(store) else None)

    @property
    def path(self) -> Path:
        """The SQLite file. Raises :class:`StoreError` for a store on a PostgreSQL server."""
        if not isinstance(self.database, SqliteDatabase):
            raise StoreError(f"the voucher store {self.location} is on a server, not in a file")
        return self.database.path

    def _migrate(self) -> None:
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.location} has schema {version}; this micropay reads up to {SCHEMA_VERSION}")
        if version == SCHEMA_VERSION:
            return
        try:
            with self.database.write() as db:
                self.database.lock_migrations(db)
                version = self.database.schema_version(db)  # another process may have migrated meanwhile
                if version < SCHEMA_VERSION:
                    self.database.migrate(db, version, SCHEMA_VERSION)
        except self.database.errors as exc:  # e.g. a search_path naming a schema that does not exist
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise StoreError(f"cannot create or upgrade the store's tables in {self.location}: {reason} (on "
                             "PostgreSQL, create the schema the URL's search_path names first)") from None

    @property
    def schema_version(self) -> int:
        """The store's schema version. Raises :class:`StoreError` if it is damaged."""
        try:
            with self.database.read() as db:
                return self.database.schema_version(db)
        except self.database.errors as exc:
            raise StoreError(damaged(self.location, exc)) from exc

    def close(self) -> None:
        """Close the store (after a last checkpoint, if they run in the background); it cannot be
        used after. A store of :meth:`for_owner` leaves the database it shares open."""
        if self._owns_database:
            self.database.close()

    def checkpoint_in_background(self, interval: float = 0.5) -> None:
        """Keep checkpoints off the commit path: see :meth:`SqliteDatabase.checkpoint_in_background`
        (a PostgreSQL server checkpoints by itself). Raises :class:`StoreError` if it cannot start."""
        self.database.checkpoint_in_background(interval)

    def __enter__(self) -> VoucherStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[StoreTransaction]:
        """One durable write transaction: on SQLite holding the file's write lock throughout, on
        PostgreSQL the locks of the rows it touches.

        Raises :class:`StoreError` if it cannot begin, a write or the commit fails, or it waits too
        long for a lock; on any error nothing of the transaction is kept."""
        database = self.database
        with database.write() as db:
            changes = database.changes(db)
            self._tips.begin()
            try:
                yield StoreTransaction(db, database, self.owner, self._tips)
            except BaseException as exc:
                self._tips.forget()  # tips read inside the transaction may have seen its writes
                if isinstance(exc, database.errors):
                    if database.damaged(exc):
                        raise StoreError(damaged(self.location, exc)) from exc
                    raise StoreError(f"the voucher store {self.location} refused a write: {exc}") from exc
                raise
        if changes is None or database.changes(db) != changes:
            self._tips.committed()
        else:
            self._tips.begin()

    # -- channel tips: what the receive path reads, cached between commits ---------------------

    def tip(self, channel: ChannelRef) -> ChannelTip | None:
        """The channel's row, best voucher and last ledger entry; None for an unknown channel.
        Served from memory while the file is unchanged (see :mod:`micropay.tips`)."""
        with self.database.read() as db:
            return self._reader(db).cached_tip(channel, self._tips)

    def peek_tip(self, channel: ChannelRef) -> ChannelTip | None:
        """The cached tip without asking the file whether it is current (no lock, no I/O): good
        for what never changes (a channel's parties) and for a first judgement that
        :meth:`StoreTransaction.tip` then confirms."""
        return self._tips.peek(channel.uid)

    def _reader(self, db: Connection) -> StoreReader:
        return StoreReader(db, self.database, self.owner)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[StoreReader]:
        with self.database.read() as db:
            yield self._reader(db)

    def unknown(self, channel: ChannelLike) -> UnknownChannel:
        """The error for a channel this store does not hold."""
        return unknown_channel(self.location, channel)

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
        with self._reading() as reader:
            return reader.find_channel(channel)

    def channels_with_id(self, channel_id: bytes) -> list[ChannelRecord]:
        """Every stored channel with this id, whatever its chain or escrow."""
        return [r for r in self.channels() if r.id == channel_id]

    def channels(self, role: Role | None = None, *, terms: bytes | None = None) -> list[ChannelRecord]:
        """The stored channels (of ``role``, and opened with ``terms``, if given), in the order they
        were added. Raises :class:`StoreError` if the file is damaged."""
        with self._reading() as reader:
            return reader.channels(role, terms=terms)

    def ledger(self, channel: ChannelLike, *, start: int = 0) -> list[LedgerEntry]:
        """The channel's task receipts from index ``start`` on, each with the root and total after it."""
        with self._reading() as reader:
            return reader.ledger(channel, start)

    def best_voucher(self, channel: ChannelLike) -> tuple[Voucher, int] | None:
        """The highest voucher of a channel and how many receipts its ledger holds."""
        with self._reading() as reader:
            return reader.best_voucher(channel)

    def voucher_at(self, channel: ChannelLike, amount: int) -> tuple[Voucher, int] | None:
        """The stored voucher of exactly ``amount`` and how many receipts its ledger holds; None if none."""
        with self._reading() as reader:
            return reader.voucher_at(channel, amount)

    def claimable_voucher(self, channel: ChannelRef) -> Voucher | None:
        """The voucher to claim a channel with: its best, except on a paid API's channel (see
        :mod:`micropay.x402`), where a voucher may cover calls that failed and were not charged:
        there, the highest voucher covering no more than the calls charged (None: none yet)."""
        with self._reading() as reader:
            best = reader.best_voucher(channel)
            charged, calls = reader.charged(channel)
            if best is None or not calls or best[0].amount <= charged:
                return None if best is None else best[0]
            below, _ = reader.voucher_before(channel, charged + 1)
            found = reader.voucher_at(channel, below) if below else None
            return None if found is None else found[0]

    def voucher_before(self, channel: ChannelLike, amount: int) -> tuple[int, int]:
        """The highest stored voucher amount below ``amount`` and its receipt count; (0, 0) if none."""
        with self._reading() as reader:
            return reader.voucher_before(channel, amount)

    def voucher_count(self, channel: ChannelLike) -> int:
        """How many vouchers are stored for a channel."""
        with self._reading() as reader:
            return reader.voucher_count(channel)

    def settlements(self, status: SettlementStatus | None = None) -> list[SettlementRecord]:
        """The recorded settlements (with ``status``, if given), oldest first. Raises :class:`StoreError`
        if the file is damaged."""
        with self._reading() as reader:
            return reader.settlements(status)

    def cursor(self, name: str) -> int | None:
        """The block stored under cursor ``name``, or None if it was never set. Raises
        :class:`StoreError` if the file is damaged."""
        with self._reading() as reader:
            return reader.cursor(name)

    # -- plans and feedback ----------------------------------------------------------------------

    def plans(self, root: bytes) -> list[StoredPlan]:
        """Every stored version of the project whose first version has hash ``root``."""
        with self._reading() as reader:
            return reader.plans(root)

    def plan(self, plan_hash: bytes) -> StoredPlan | None:
        """The stored plan version with this hash, or None."""
        with self._reading() as reader:
            return reader.plan(plan_hash)

    def pending_plans(self) -> int:
        """How many stored plan versions are not in force yet."""
        with self._reading() as reader:
            return reader.pending_plans()

    def plan_roots(self) -> list[bytes]:
        """The root (first version's hash) of every stored project, oldest first."""
        with self._reading() as reader:
            return reader.plan_roots()

    def feedback(self, root: bytes) -> list[StoredFeedback]:
        """Every stored piece of feedback on the project ``root``, oldest first."""
        with self._reading() as reader:
            return reader.feedback(root)

    def voucher_times(self, channel: ChannelLike) -> list[tuple[int, float]]:
        """(receipt count, time stored) of each voucher of a channel, lowest first."""
        with self._reading() as reader:
            return reader.voucher_times(channel)

    def charged(self, channel: ChannelRef) -> tuple[int, int]:
        """(total, calls) a paid API charged on ``channel`` (:mod:`micropay.x402`): (0, 0) if none."""
        with self._reading() as reader:
            return reader.charged(channel)

    def inbox(self, channel: ChannelLike) -> str | None:
        """The inbox URL set for the channel's payments (None: none set)."""
        with self._reading() as reader:
            return reader.inbox(channel)

    def deliveries(self, channel: ChannelLike | None = None, *, queued_only: bool = False) -> list[DeliveryRecord]:
        """The outbox: see :meth:`StoreReader.deliveries`."""
        with self._reading() as reader:
            return reader.deliveries(channel, queued_only=queued_only)

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
