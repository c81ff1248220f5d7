"""The PostgreSQL store's guards: a server without fsync is refused; every session commits
synchronously whatever the server's or the database's default; amounts keep all 256 bits and sort
as numbers; a password in the URL never shows in the store's location nor in its errors."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import traceback
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from eth_account import Account
from pghelpers import PASSWORD

from micropay import keystore
from micropay.channel import ETH, ChannelKey
from micropay.errors import StoreError
from micropay.records import ChannelRecord, SettlementRecord, store_key, u256
from micropay.store import VoucherStore
from micropay.voucher import sign_voucher
from pgcluster import free_port, new_schema, throwaway_cluster, with_search_path

MAX = 2**256 - 1
HALF = 2**255
#: Voucher amounts (a voucher holds at most 2**96 - 1) around byte boundaries, lowest first.
VOUCHERS = [1, 127, 128, 255, 256, 2**64 - 1, 2**64, 2**95 - 1, 2**95, 2**95 + 1, 2**96 - 2, 2**96 - 1]
#: Amounts the store's columns hold (32 bytes) on both sides of the top bit, lowest first.
WIDE = [1, 2**96, HALF - 1, HALF, HALF + 1, MAX - 1, MAX]


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{password}@{parts.hostname}:{parts.port}"))


# -- durability ------------------------------------------------------------------------------------

def test_a_server_running_without_fsync_is_refused_with_a_clear_error():
    with throwaway_cluster(fsync=False) as cluster:
        with psycopg.connect(cluster.url) as db:
            assert db.execute("SHOW fsync").fetchone() == ("off",)  # the server really runs without it
        url = new_schema(cluster.url)
        with pytest.raises(StoreError, match=r"fsync = 'off'.*lose payments") as refused:
            VoucherStore(url)
        assert "postgresql://micropay@127.0.0.1" in str(refused.value)  # says which server
        with psycopg.connect(url) as db:  # refused before it created anything there
            assert db.execute("SELECT to_regclass('channels')").fetchone() == (None,)


def test_every_store_session_commits_synchronously_even_where_the_database_default_is_not(pg_cluster):
    """The database's default is off, the role's there ``local`` (no wait for a standby either): the
    store's sessions, and the ones it opens again after losing them, say ``on``."""
    name = f"d_{uuid.uuid4().hex}"
    with psycopg.connect(pg_cluster.url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
        admin.execute(f"ALTER DATABASE {name} SET synchronous_commit = off")
        admin.execute(f"ALTER ROLE micropay IN DATABASE {name} SET synchronous_commit = local")  # wins over it
    url = with_database(pg_cluster.url, name)
    try:
        with psycopg.connect(url) as plain:  # what any other session of that database gets
            assert plain.execute("SHOW synchronous_commit").fetchone() == ("local",)
        with VoucherStore(url, owner=Account.create().address) as store:
            database = store.database
            with database.read() as db:
                assert db.execute("SHOW synchronous_commit").fetchall() == [("on",)]
            with database.write() as db:
                assert db.execute("SHOW synchronous_commit").fetchall() == [("on",)]
            # A connection the server dropped is opened again, with the same settings.
            with psycopg.connect(pg_cluster.url, autocommit=True) as admin:
                killed = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                       "WHERE datname = %s AND application_name = 'micropay'", (name,)).fetchone()
            assert killed[0] >= 1  # the store's sessions (its reads' and its writes')
            assert after_one_failure(database.write) == [("on",)]
            assert after_one_failure(database.read) == [("on",)]
            assert store.channels() == []  # and the store reads again
    finally:
        with psycopg.connect(pg_cluster.url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def after_one_failure(connection) -> list[tuple[object, ...]]:
    """``SHOW synchronous_commit`` on ``connection()`` (a store database's read or write), allowing
    the first use of a connection the server dropped to fail with a :class:`StoreError`."""
    try:
        with connection() as db:
            return db.execute("SHOW synchronous_commit").fetchall()
    except StoreError as exc:
        assert "terminat" in str(exc) or "closed" in str(exc) or "connection" in str(exc), exc
    with connection() as db:
        return db.execute("SHOW synchronous_commit").fetchall()


# -- amounts ---------------------------------------------------------------------------------------

def _fill(location: str, owner: str) -> dict[str, object]:
    """Store a channel whose deposit, claimed and issued amounts are at the top of uint256, its
    charges and a settlement too; vouchers (inserted out of order) around every byte boundary up to
    a voucher's largest amount (2**96 - 1); on a second channel, voucher rows and deliveries on both
    sides of 2**255. Return what reading it back gives."""
    payer, payee = Account.from_key(b"\x31" * 32), Account.from_key(b"\x32" * 32)
    escrow = "0x" + "ab" * 20
    key, wide = (ChannelKey(payer.address, payee.address, ETH, salt) for salt in (2**96 - 1, 5))
    record, other = (ChannelRecord(k, 31337, escrow, "payer", MAX, MAX - 1, 2**62, 86400, False, time.time(), 1,
                                   issued=MAX) for k in (key, wide))
    order = list(VOUCHERS)
    random.Random(7).shuffle(order)
    with VoucherStore(location, owner=owner) as store:
        with store.transaction() as tx:
            tx.add_channel(record)
            tx.add_channel(other)
            for amount in order:  # receipt count = its rank: what ordering by amount must give back
                voucher = sign_voucher(payer, chain_id=31337, escrow=escrow, channel_id=key.id, amount=amount,
                                       ledger_root=amount.to_bytes(32, "big"))
                tx.add_voucher(voucher, VOUCHERS.index(amount) + 1, record.ref)
            tx.set_charged(record.ref, MAX, 2**40)
            tx.add_settlement(SettlementRecord(b"\x07" * 32, None, escrow, ETH, "pending", [(key.id, MAX)], MAX,
                                               None, MAX - 2, None, 31337))
            for amount in random.Random(8).sample(WIDE, len(WIDE)):
                tx.queue_delivery(other.ref, amount)
            held = tx.delivery_held(other.ref, HALF, b"\x01" * 32, b"\x02" * 65)
        with store.database.write() as db:  # rows no Voucher can hold (above 2**96), as the store's SQL sees them
            uid = store_key(other.ref, store.owner)
            for amount in random.Random(9).sample(WIDE, len(WIDE)):
                db.execute("INSERT INTO vouchers VALUES (?,?,?,?,?,?)",
                           (uid, u256(amount), b"\x00" * 32, b"\x00" * 65, WIDE.index(amount) + 1, 0.0))
        ref = record.ref
        stored = store.channel(ref)
        best, count = store.best_voucher(ref)
        return {
            "amounts": (stored.deposit, stored.claimed, stored.issued),
            "best": (best.amount, best.ledger_root, count),
            "order": [count for count, _ in store.voucher_times(ref)],
            "below": [store.voucher_before(ref, amount) for amount in VOUCHERS],
            "at": [store.voucher_at(ref, amount)[0].amount for amount in VOUCHERS],
            "count": store.voucher_count(ref),
            "charged": store.charged(ref),
            "settlement": [(s.gross, s.fee, s.items) for s in store.settlements()],
            "held": (held, [(d.amount, d.state) for d in store.deliveries(other.ref)]),
            "wide order": [count for count, _ in store.voucher_times(other.ref)],
            "wide below": [store.voucher_before(other.ref, amount) for amount in WIDE],
        }


def test_uint256_amounts_round_trip_and_order_as_numbers_across_2_255(pg_store, tmp_path):
    owner = Account.create().address
    url = pg_store()
    got = _fill(url, owner)
    n = len(VOUCHERS)
    assert got["amounts"] == (MAX, MAX - 1, MAX)
    assert got["best"] == (2**96 - 1, (2**96 - 1).to_bytes(32, "big"), n)
    assert got["order"] == list(range(1, n + 1))  # lowest amount first
    assert got["below"] == [(0, 0)] + [(amount, i + 1) for i, amount in enumerate(VOUCHERS[:-1])]
    assert got["at"] == VOUCHERS
    assert got["count"] == n
    assert got["charged"] == (MAX, 2**40)
    assert got["settlement"] == [(MAX, MAX - 2, [(ChannelKey(Account.from_key(b"\x31" * 32).address,
                                                               Account.from_key(b"\x32" * 32).address, ETH,
                                                               2**96 - 1).id, MAX)])]
    # ``amount <= 2**255`` and ``ORDER BY amount`` across the top bit: compared as unsigned numbers.
    assert got["held"] == (WIDE.index(HALF) + 1, [(a, "held" if a <= HALF else "queued") for a in WIDE])
    assert got["wide order"] == list(range(1, len(WIDE) + 1))
    assert got["wide below"] == [(0, 0)] + [(amount, i + 1) for i, amount in enumerate(WIDE[:-1])]
    with psycopg.connect(url) as db:  # the server itself sorts them as numbers
        rows = db.execute("SELECT amount FROM vouchers ORDER BY amount").fetchall()
    assert sorted(int.from_bytes(amount, "big") for (amount,) in rows) == [int.from_bytes(a, "big") for (a,) in rows]
    assert len(rows) == n + len(WIDE)
    assert got == _fill(str(tmp_path / "same.db"), owner)  # and exactly as SQLite does


# -- passwords -------------------------------------------------------------------------------------

SECRET = "Pa55-w0rd-secret"


def test_a_password_in_the_url_is_never_in_the_location_nor_in_errors(pg_cluster, tmp_path):
    # A server that is not there: the error says where, without the password.
    closed = f"postgresql://micropay:{SECRET}@127.0.0.1:{free_port()}/postgres"
    with pytest.raises(StoreError) as refused:
        VoucherStore(closed)
    text = "".join(traceback.format_exception(refused.value))
    assert SECRET not in text
    assert "postgresql://micropay@127.0.0.1" in str(refused.value)
    assert refused.value.__cause__ is None  # the driver's error (which holds the URL's parts) is not chained

    # A server that is there (trust authentication: the password is not needed, but given).
    url = with_password(new_schema(pg_cluster.url), SECRET)
    with VoucherStore(url, owner=Account.create().address) as store:
        assert SECRET not in store.location
        assert store.location.startswith(f"postgresql://micropay@127.0.0.1:{pg_cluster.port}/postgres?")
        assert "search_path" in store.location  # the rest of the URL stays: it names the store
        schema = store.location.split("search_path%3D")[-1]
        with psycopg.connect(pg_cluster.url, autocommit=True) as admin:  # the store's tables vanish
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
        with pytest.raises(StoreError) as damaged:
            store.channels()
        assert SECRET not in "".join(traceback.format_exception(damaged.value))
        assert store.location in str(damaged.value)

    # The CLI reports the same way, even with --debug (tracebacks).
    home = tmp_path / "cli"
    keystore.save_account(Account.create(), home / "keystores", PASSWORD, iterations=2**4)
    done = subprocess.run([sys.executable, "-m", "micropay", "--home", str(home), "--debug", "--store", closed,
                           "status"], capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "MICROPAY_PASSWORD": PASSWORD})
    assert done.returncode != 0
    assert "cannot reach the voucher store postgresql://micropay@127.0.0.1" in done.stderr
    assert SECRET not in done.stderr + done.stdout


def test_a_search_path_in_the_url_is_where_the_store_lives(pg_cluster):
    """Two stores on one database, in two schemas, do not see each other (how the tests isolate them)."""
    owner = Account.create().address
    first, second = new_schema(pg_cluster.url), new_schema(pg_cluster.url)
    record = ChannelRecord(ChannelKey(owner, Account.create().address, ETH, 1), 1, "0x" + "cd" * 20, "payer", 5, 0,
                           2**40, 60, False, time.time(), 1)
    with VoucherStore(first, owner=owner) as store:
        store.add_channel(record)
    with VoucherStore(second, owner=owner) as store:
        assert store.channels() == []
    with VoucherStore(with_search_path(pg_cluster.url, first.split("%3D")[-1]), owner=owner) as store:
        assert [r.id for r in store.channels()] == [record.id]
