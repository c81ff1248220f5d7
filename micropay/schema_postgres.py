"""The voucher store's schema on PostgreSQL: version 7 of :mod:`micropay.schema`, created in one go.

No PostgreSQL store was ever at an older version, so it starts from version 7 with the same tables,
columns (in the same order), keys, checks and indexes as a SQLite store migrated to 7
(``tests/api/test_store_schemas.py`` compares the two). The types map one to one: a blob is
``bytea`` (32-byte big-endian amounts compare byte by byte on both, so ``ORDER BY amount`` and
``amount < ?`` agree), an integer ``bigint``, a real ``double precision``. What differs:

- the version is a row of ``micropay_meta``, not ``PRAGMA user_version``;
- ``channels`` and ``plans`` have a ``seq`` identity column where SQLite has its ``rowid``: the
  order rows were added in (the queries say ``rowid``; the PostgreSQL connection reads ``seq``);
- the two ``legacy_*`` tables of version 3 do not exist (they hold version-1 escrows' channels).

Migrations after version 7 are shared: :data:`micropay.schema.MIGRATIONS` from 8 on run on both.
"""

from __future__ import annotations

META = "CREATE TABLE micropay_meta (key text PRIMARY KEY, value bigint NOT NULL)"

BASELINE_VERSION = 7

BASELINE = (
    META,
    """CREATE TABLE channels (
        uid bytea PRIMARY KEY,
        id bytea NOT NULL,
        chain_id bigint NOT NULL,
        escrow text NOT NULL,
        role text NOT NULL CHECK (role IN ('payer', 'payee')),
        payer text NOT NULL,
        payee text NOT NULL,
        token text NOT NULL,
        salt bytea NOT NULL,
        deposit bytea NOT NULL,
        claimed bytea NOT NULL,
        expiry bigint NOT NULL,
        "window" bigint NOT NULL,
        closed bigint NOT NULL DEFAULT 0,
        checked_at double precision NOT NULL,
        observed_at bigint NOT NULL,
        issued bytea NOT NULL,
        signer text,
        terms bytea,
        inbox text,
        owner text NOT NULL DEFAULT '',
        seq bigint GENERATED ALWAYS AS IDENTITY,
        UNIQUE (owner, chain_id, escrow, id)
    )""",
    "CREATE INDEX channels_by_id ON channels (id)",
    "CREATE INDEX channels_by_terms ON channels (terms)",
    "CREATE INDEX channels_by_owner ON channels (owner, seq)",
    """CREATE TABLE receipts (
        channel bytea NOT NULL REFERENCES channels(uid),
        idx bigint NOT NULL,
        task_id text NOT NULL,
        amount bytea NOT NULL,
        deliverable bytea NOT NULL,
        note text NOT NULL,
        root bytea NOT NULL,
        total bytea NOT NULL,
        PRIMARY KEY (channel, idx)
    )""",
    """CREATE TABLE vouchers (
        channel bytea NOT NULL REFERENCES channels(uid),
        amount bytea NOT NULL,
        ledger_root bytea NOT NULL,
        signature bytea NOT NULL,
        receipt_count bigint NOT NULL,
        created_at double precision NOT NULL,
        PRIMARY KEY (channel, amount)
    )""",
    """CREATE TABLE settlements (
        tx_hash bytea PRIMARY KEY,
        raw_tx bytea,
        escrow text NOT NULL,
        token text NOT NULL,
        status text NOT NULL CHECK (status IN ('pending', 'confirmed', 'failed')),
        items text NOT NULL,
        gross bytea NOT NULL,
        gas_used bigint,
        fee bytea,
        block bigint,
        created_at double precision NOT NULL,
        chain_id bigint NOT NULL DEFAULT 0,
        owner text NOT NULL DEFAULT ''
    )""",
    """CREATE TABLE cursors (
        name text NOT NULL,
        block bigint NOT NULL,
        owner text NOT NULL DEFAULT '',
        PRIMARY KEY (owner, name)
    )""",
    """CREATE TABLE plans (
        hash bytea NOT NULL,
        root bytea NOT NULL,
        version bigint NOT NULL,
        in_force bigint NOT NULL CHECK (in_force IN (0, 1)),
        document text NOT NULL,
        received_at double precision NOT NULL,
        owner text NOT NULL DEFAULT '',
        seq bigint GENERATED ALWAYS AS IDENTITY,
        PRIMARY KEY (owner, hash)
    )""",
    "CREATE INDEX plans_by_root ON plans (owner, root, version)",
    "CREATE UNIQUE INDEX plans_in_force ON plans (owner, root, version) WHERE in_force = 1",
    """CREATE TABLE feedback (
        hash bytea NOT NULL,
        root bytea NOT NULL,
        task_id text NOT NULL,
        at bigint NOT NULL,
        document text NOT NULL,
        received_at double precision NOT NULL,
        owner text NOT NULL DEFAULT '',
        PRIMARY KEY (owner, hash)
    )""",
    "CREATE INDEX feedback_by_root ON feedback (owner, root, at)",
    """CREATE TABLE deliveries (
        channel bytea NOT NULL REFERENCES channels(uid),
        amount bytea NOT NULL,
        state text NOT NULL CHECK (state IN ('queued', 'held')),
        attempts bigint NOT NULL DEFAULT 0,
        last_error text,
        last_attempt double precision,
        ack_amount bytea,
        ack_root bytea,
        ack_signature bytea,
        acked_at double precision,
        created_at double precision NOT NULL,
        PRIMARY KEY (channel, amount)
    )""",
    "CREATE INDEX deliveries_queued ON deliveries (created_at) WHERE state = 'queued'",
    """CREATE TABLE charges (
        channel bytea PRIMARY KEY REFERENCES channels(uid),
        charged bytea NOT NULL,
        calls bigint NOT NULL
    )""",
)
