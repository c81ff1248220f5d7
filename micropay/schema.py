"""The voucher store's SQLite schema: its version and the statements that migrate to each version.

A store records its version in ``PRAGMA user_version``; :class:`~micropay.store.VoucherStore`
applies every migration above it in one transaction when it opens the file. A migration is a
list of steps, each an SQL statement or a function of the connection (for what SQL cannot
compute, such as a keccak).

Version 2 keys channels by (chain id, escrow, channel id) instead of the channel id alone: the
same id can exist on two chains, or on two escrows. The key is ``uid``, keccak256 of the three
(:attr:`micropay.channel.ChannelRef.uid`), so receipts and vouchers stay keyed by 32 bytes.

Version 3 (escrow version 2) stores each channel's voucher signer: NULL when the payer signs its
own vouchers, as on every channel of an older store. A version-2 escrow's channel id commits to
the signer too, so a channel of a version-1 escrow (its id hashes four words, not five) is one
this micropay cannot use: it is moved, with its receipts and vouchers, to the ``legacy_*``
tables, kept for an older micropay (or a person) to read, and out of the way of the rest.

Version 4 keeps agreed plans (:mod:`micropay.plan`) and their feedback, as their signed JSON
documents, and each channel's ``terms`` (the plan hash it was opened with; NULL: not known).
``root`` is a plan's first version's hash: all versions of one project share it. At most one
version of a project is in force at each version number.

Version 5 is the client's outbox: each channel's ``inbox`` (the freelancer's ``micropay serve``
URL; NULL: none known, payments travel by hand) and a ``deliveries`` row per payment signed for a
channel with an inbox: ``queued`` until the inbox acknowledges it, then ``held`` with the payee's
acknowledgment (its amount and ledger root: an acknowledgment of a later payment covers the
earlier ones, vouchers being cumulative). The queue is read oldest first by a partial index.

Version 6 is what a paid API (the x402 scheme, :mod:`micropay.x402`) charged on each channel: the
total and the number of calls. A voucher can cover more than was charged (a call that failed after
the client signed for it), so the charged total is kept beside the best voucher, in the same
transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from micropay._utils.addresses import word
from micropay._utils.crypto import keccak
from micropay.channel import ChannelRef
from micropay.store_backend import Connection

SCHEMA_VERSION = 7

Step = str | Callable[[Connection], None]

# Column definitions both versions share (a migration's statements never change once released:
# these fragments are part of both versions 1 and 2).
_CHANNEL_COLUMNS = """
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
        issued BLOB NOT NULL"""
_RECEIPT_COLUMNS = """
        idx INTEGER NOT NULL,
        task_id TEXT NOT NULL,
        amount BLOB NOT NULL,
        deliverable BLOB NOT NULL,
        note TEXT NOT NULL,
        root BLOB NOT NULL,
        total BLOB NOT NULL,"""
_VOUCHER_COLUMNS = """
        amount BLOB NOT NULL,
        ledger_root BLOB NOT NULL,
        signature BLOB NOT NULL,
        receipt_count INTEGER NOT NULL,
        created_at REAL NOT NULL,"""

_V2_TABLES = (
    (f"CREATE TABLE channels2 (uid BLOB PRIMARY KEY, id BLOB NOT NULL, {_CHANNEL_COLUMNS}, "
    "UNIQUE (chain_id, escrow, id))"),
    "CREATE INDEX channels_by_id ON channels2 (id)",
    (f"CREATE TABLE receipts2 (channel BLOB NOT NULL REFERENCES channels2(uid), {_RECEIPT_COLUMNS} "
    "PRIMARY KEY (channel, idx)) WITHOUT ROWID"),
    (f"CREATE TABLE vouchers2 (channel BLOB NOT NULL REFERENCES channels2(uid), {_VOUCHER_COLUMNS} "
    "PRIMARY KEY (channel, amount)) WITHOUT ROWID"),
)


def _rekey_channels(db: Connection) -> None:
    """Copy every version-1 channel under its (chain, escrow, id) key, with its receipts and vouchers."""
    for row in db.execute("SELECT * FROM channels").fetchall():
        uid = ChannelRef(row[1], row[2], row[0]).uid  # type: ignore[arg-type]  # a version-1 row
        db.execute("INSERT INTO channels2 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (uid, *row))
    db.execute("INSERT INTO receipts2 SELECT c.uid, r.idx, r.task_id, r.amount, r.deliverable, r.note, r.root, "
               "r.total FROM receipts r JOIN channels2 c ON c.id = r.channel_id")
    db.execute("INSERT INTO vouchers2 SELECT c.uid, v.amount, v.ledger_root, v.signature, v.receipt_count, "
               "v.created_at FROM vouchers v JOIN channels2 c ON c.id = v.channel_id")


def _archive_v1_channels(db: Connection) -> None:
    """Move every channel whose id is a version-1 escrow's (keccak of payer, payee, token and salt,
    without the signer), with its receipts and vouchers, to the ``legacy_*`` tables."""
    legacy = []
    for uid, channel_id, payer, payee, token, salt in db.execute(
            "SELECT uid, id, payer, payee, token, salt FROM channels").fetchall():
        if keccak(word(payer) + word(payee) + word(token) + bytes(salt)) == channel_id:  # type: ignore[arg-type]
            legacy.append((uid,))
    for table, column in (("channels", "uid"), ("receipts", "channel"), ("vouchers", "channel")):
        db.execute(f"CREATE TABLE legacy_{table} AS SELECT * FROM {table} WHERE 0")
        db.executemany(f"INSERT INTO legacy_{table} SELECT * FROM {table} WHERE {column} = ?", legacy)
    for table, column in (("vouchers", "channel"), ("receipts", "channel"), ("channels", "uid")):
        db.executemany(f"DELETE FROM {table} WHERE {column} = ?", legacy)


def _rebuilt(table: str, columns: str, definition: str, indexes: Sequence[str] = ()) -> tuple[str, ...]:
    """Steps that rebuild ``table`` with a new ``definition`` (SQLite cannot change a key in place),
    copying ``columns`` from the old rows in their order and adding ``owner`` ``''``. Rows of other
    tables that reference it are checked at the commit (``defer_foreign_keys``), against the new table."""
    return (
        f"CREATE TEMP TABLE {table}_v6 AS SELECT rowid AS seq, * FROM {table}",
        f"DROP TABLE {table}",
        f"CREATE TABLE {table} ({definition})",
        f"INSERT INTO {table} ({columns}, owner) SELECT {columns}, '' FROM {table}_v6 ORDER BY seq",
        f"DROP TABLE {table}_v6",
        *indexes,
    )


#: The columns of version 7's owned tables, in order (:mod:`micropay.schema_postgres` has the same).
V7_CHANNELS = ("uid, id, chain_id, escrow, role, payer, payee, token, salt, deposit, claimed, expiry, \"window\", "
               "closed, checked_at, observed_at, issued, signer, terms, inbox")
V7_PLANS = "hash, root, version, in_force, document, received_at"
V7_FEEDBACK = "hash, root, task_id, at, document, received_at"


MIGRATIONS: dict[int, Sequence[Step]] = {
    1: (
        f"CREATE TABLE channels (id BLOB PRIMARY KEY, {_CHANNEL_COLUMNS})",
        (f"CREATE TABLE receipts (channel_id BLOB NOT NULL REFERENCES channels(id), {_RECEIPT_COLUMNS} "
        "PRIMARY KEY (channel_id, idx)) WITHOUT ROWID"),
        (f"CREATE TABLE vouchers (channel_id BLOB NOT NULL REFERENCES channels(id), {_VOUCHER_COLUMNS} "
        "PRIMARY KEY (channel_id, amount)) WITHOUT ROWID"),
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
    2: (
        *_V2_TABLES,
        _rekey_channels,
        "DROP TABLE vouchers",
        "DROP TABLE receipts",
        "DROP TABLE channels",
        "ALTER TABLE channels2 RENAME TO channels",
        "ALTER TABLE receipts2 RENAME TO receipts",
        "ALTER TABLE vouchers2 RENAME TO vouchers",
        # Settlements name their chain, so a store shared by two chains resolves each on its own.
        "ALTER TABLE settlements ADD COLUMN chain_id INTEGER NOT NULL DEFAULT 0",
        ("UPDATE settlements SET chain_id = coalesce((SELECT c.chain_id FROM channels c "
         "WHERE c.escrow = settlements.escrow LIMIT 1), 0)"),
    ),
    3: (
        _archive_v1_channels,
        "ALTER TABLE channels ADD COLUMN signer TEXT",
    ),
    4: (
        "ALTER TABLE channels ADD COLUMN terms BLOB",
        "CREATE INDEX channels_by_terms ON channels (terms)",
        """CREATE TABLE plans (
            hash BLOB PRIMARY KEY,
            root BLOB NOT NULL,
            version INTEGER NOT NULL,
            in_force INTEGER NOT NULL CHECK (in_force IN (0, 1)),
            document TEXT NOT NULL,
            received_at REAL NOT NULL
        )""",
        "CREATE INDEX plans_by_root ON plans (root, version)",
        "CREATE UNIQUE INDEX plans_in_force ON plans (root, version) WHERE in_force = 1",
        """CREATE TABLE feedback (
            hash BLOB PRIMARY KEY,
            root BLOB NOT NULL,
            task_id TEXT NOT NULL,
            at INTEGER NOT NULL,
            document TEXT NOT NULL,
            received_at REAL NOT NULL
        )""",
        "CREATE INDEX feedback_by_root ON feedback (root, at)",
    ),
    5: (
        "ALTER TABLE channels ADD COLUMN inbox TEXT",
        """CREATE TABLE deliveries (
            channel BLOB NOT NULL REFERENCES channels(uid),
            amount BLOB NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('queued', 'held')),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            last_attempt REAL,
            ack_amount BLOB,
            ack_root BLOB,
            ack_signature BLOB,
            acked_at REAL,
            created_at REAL NOT NULL,
            PRIMARY KEY (channel, amount)
        ) WITHOUT ROWID""",
        "CREATE INDEX deliveries_queued ON deliveries (created_at) WHERE state = 'queued'",
    ),
    6: (
        """CREATE TABLE charges (
            channel BLOB PRIMARY KEY REFERENCES channels(uid),
            charged BLOB NOT NULL,
            calls INTEGER NOT NULL
        ) WITHOUT ROWID""",
    ),
    7: (
        "PRAGMA defer_foreign_keys=ON",
        *_rebuilt("channels", V7_CHANNELS,
                  f"uid BLOB PRIMARY KEY, id BLOB NOT NULL, {_CHANNEL_COLUMNS}, signer TEXT, terms BLOB, inbox TEXT, "
                  "owner TEXT NOT NULL DEFAULT '', UNIQUE (owner, chain_id, escrow, id)",
                  ("CREATE INDEX channels_by_id ON channels (id)",
                   "CREATE INDEX channels_by_terms ON channels (terms)")),
        *_rebuilt("plans", V7_PLANS,
                  "hash BLOB NOT NULL, root BLOB NOT NULL, version INTEGER NOT NULL, "
                  "in_force INTEGER NOT NULL CHECK (in_force IN (0, 1)), document TEXT NOT NULL, "
                  "received_at REAL NOT NULL, owner TEXT NOT NULL DEFAULT '', PRIMARY KEY (owner, hash)",
                  ("CREATE INDEX plans_by_root ON plans (owner, root, version)",
                   "CREATE UNIQUE INDEX plans_in_force ON plans (owner, root, version) WHERE in_force = 1")),
        *_rebuilt("feedback", V7_FEEDBACK,
                  "hash BLOB NOT NULL, root BLOB NOT NULL, task_id TEXT NOT NULL, at INTEGER NOT NULL, "
                  "document TEXT NOT NULL, received_at REAL NOT NULL, owner TEXT NOT NULL DEFAULT '', "
                  "PRIMARY KEY (owner, hash)",
                  ("CREATE INDEX feedback_by_root ON feedback (owner, root, at)",)),
        *_rebuilt("cursors", "name, block",
                  "name TEXT NOT NULL, block INTEGER NOT NULL, owner TEXT NOT NULL DEFAULT '', "
                  "PRIMARY KEY (owner, name)"),
        "ALTER TABLE settlements ADD COLUMN owner TEXT NOT NULL DEFAULT ''",
    ),
}


def apply(db: Connection, version: int) -> None:
    """Run the steps of the migration to ``version`` on ``db``, inside the migrating transaction
    (the caller records the new version, each database its own way)."""
    for step in MIGRATIONS[version]:
        if isinstance(step, str):
            db.execute(step)
        else:
            step(db)
