"""A SQLite store and a PostgreSQL store at the same schema version have the same tables, with the
same columns in the same order, types, NOT NULLs, primary keys, unique keys and indexes.

What differs by design (micropay/schema_postgres.py): PostgreSQL keeps the version in a
``micropay_meta`` row (SQLite: ``PRAGMA user_version``), has a ``seq`` identity column where
SQLite has its rowid (and ``channels_by_owner`` over it), and no ``legacy_*`` tables."""

from __future__ import annotations

import sqlite3

import psycopg

from micropay.schema import SCHEMA_VERSION
from micropay.store import VoucherStore

#: SQLite's declared types and the PostgreSQL types they become.
TYPES = {"BLOB": "bytea", "INTEGER": "bigint", "TEXT": "text", "REAL": "double precision"}
PG_ONLY_TABLES = {"micropay_meta"}
PG_ONLY_INDEXES = {"channels_by_owner"}  # (owner, seq): SQLite orders by rowid


def sqlite_schema(path: str) -> dict[str, dict[str, object]]:
    db = sqlite3.connect(path)
    try:
        tables = [name for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name NOT LIKE 'legacy_%'")]
        schema: dict[str, dict[str, object]] = {}
        for table in tables:
            info = db.execute(f"PRAGMA table_info({table})").fetchall()  # cid, name, type, notnull, default, pk
            keys = db.execute(f"PRAGMA index_list({table})").fetchall()  # seq, name, unique, origin, partial
            unique = sorted(tuple(c[2] for c in db.execute(f"PRAGMA index_info({name})"))
                            for _, name, is_unique, origin, _ in keys if is_unique and origin == "u")
            indexes = {name: tuple(c[2] for c in db.execute(f"PRAGMA index_info({name})"))
                       for _, name, _, origin, _ in keys if origin == "c"}
            pk = tuple(name for _, name, *_ , position in sorted(info, key=lambda c: c[5]) if position)
            schema[table] = {
                "columns": [c[1] for c in info],
                "types": [TYPES[c[2]] for c in info],
                "not_null": sorted(c[1] for c in info if c[3] and c[1] not in pk),
                "primary_key": pk,
                "unique": unique,
                "indexes": indexes,
            }
        (version,) = db.execute("PRAGMA user_version").fetchone()
        schema["<version>"] = {"version": version}
        return schema
    finally:
        db.close()


def postgres_schema(url: str) -> dict[str, dict[str, object]]:
    with psycopg.connect(url) as db:
        (namespace,) = db.execute("SELECT current_schema()").fetchone()
        tables = [name for (name,) in db.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_type = 'BASE TABLE'",
            (namespace,))]
        schema: dict[str, dict[str, object]] = {}
        for table in tables:
            if table in PG_ONLY_TABLES:
                continue
            info = [row for row in db.execute(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position", (namespace, table))
                if row[0] != "seq"]
            constraints: dict[str, list[tuple[str, str]]] = {}
            for kind, name, column in db.execute(
                    "SELECT c.constraint_type, c.constraint_name, k.column_name "
                    "FROM information_schema.table_constraints c JOIN information_schema.key_column_usage k "
                    "ON k.constraint_schema = c.constraint_schema AND k.constraint_name = c.constraint_name "
                    "WHERE c.table_schema = %s AND c.table_name = %s "
                    "AND c.constraint_type IN ('PRIMARY KEY', 'UNIQUE') "
                    "ORDER BY c.constraint_name, k.ordinal_position", (namespace, table)):
                constraints.setdefault(kind, []).append((name, column))
            pk = tuple(column for _, column in constraints.get("PRIMARY KEY", []))
            unique: dict[str, tuple[str, ...]] = {}
            for name, column in constraints.get("UNIQUE", []):
                unique[name] = (*unique.get(name, ()), column)
            # Indexes made by CREATE INDEX (not those backing a key constraint), with their columns in order.
            indexes = {name: tuple(columns) for name, columns in db.execute(
                "SELECT i.relname, array_agg(a.attname ORDER BY k.n) FROM pg_index x "
                "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
                "JOIN pg_namespace s ON s.oid = t.relnamespace "
                "CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, n) "
                "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum "
                "WHERE s.nspname = %s AND t.relname = %s AND NOT EXISTS "
                "(SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) GROUP BY i.relname",
                (namespace, table)) if name not in PG_ONLY_INDEXES}
            schema[table] = {
                "columns": [name for name, _, _ in info],
                "types": [kind for _, kind, _ in info],
                "not_null": sorted(name for name, _, nullable in info if nullable == "NO" and name not in pk),
                "primary_key": pk,
                "unique": sorted(unique.values()),
                "indexes": indexes,
            }
        (version,) = db.execute("SELECT value FROM micropay_meta WHERE key = 'schema_version'").fetchone()
        schema["<version>"] = {"version": version}
        return schema


def test_sqlite_and_postgres_stores_at_one_version_have_the_same_tables_columns_and_keys(tmp_path, pg_store):
    path, url = str(tmp_path / "store.db"), pg_store()
    VoucherStore(path).close()
    with VoucherStore(url) as store:
        assert store.schema_version == SCHEMA_VERSION
    on_sqlite, on_postgres = sqlite_schema(path), postgres_schema(url)
    assert on_sqlite["<version>"] == on_postgres["<version>"] == {"version": SCHEMA_VERSION}
    assert sorted(on_sqlite) == sorted(on_postgres)
    assert {"channels", "receipts", "vouchers", "deliveries", "charges", "plans"} <= set(on_sqlite)
    for table in sorted(on_sqlite):
        for aspect in ("columns", "primary_key", "types", "not_null", "unique", "indexes"):
            assert on_sqlite[table].get(aspect) == on_postgres[table].get(aspect), (table, aspect)
    # The owner is part of every key that names an owned row, on both.
    assert on_postgres["plans"]["primary_key"] == ("owner", "hash")
    assert on_postgres["channels"]["unique"] == [("owner", "chain_id", "escrow", "id")]


def test_the_postgres_store_has_seq_columns_and_no_legacy_tables(pg_store):
    """The differences the comparison above ignores are exactly the documented ones."""
    url = pg_store()
    VoucherStore(url).close()
    with psycopg.connect(url) as db:
        tables = {name for (name,) in db.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")}
        seq = {table for (table,) in db.execute(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND column_name = 'seq' AND is_identity = 'YES'")}
    assert not {t for t in tables if t.startswith("legacy_")}
    assert "micropay_meta" in tables
    assert seq == {"channels", "plans"}
