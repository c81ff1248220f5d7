"""The voucher store's SQLite schema: its version and the statements that migrate to each version.

A store records its version in ``PRAGMA user_version``; :class:`~micropay.store.VoucherStore`
applies every migration above it in one transaction when it opens the file.
"""

from __future__ import annotations

from collections.abc import Sequence

SCHEMA_VERSION = 1

MIGRATIONS: dict[int, Sequence[str]] = {
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
