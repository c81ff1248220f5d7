"""Old stores open as the current version with everything kept: a version-1 store (channels keyed
by id alone) is keyed by chain, escrow and id (version 2); a version-2 store gains each channel's
voucher signer (version 3), and the channels of a version-1 escrow move to the legacy tables; a
version-3 store gains each channel's terms, unknown until read (version 4), and empty plan and
feedback tables; a version-4 store gains an empty outbox (version 5)."""

import sqlite3
import threading
from dataclasses import replace

import pytest
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import keccak

from micropay import ChannelKey, StoreError, VoucherStore
from micropay.channel import ETH, ChannelRef
from micropay.ledger import TaskReceipt, extend_entries
from micropay.records import u256
from micropay.schema import MIGRATIONS, SCHEMA_VERSION
from micropay.voucher import sign_voucher

PAYER = Account.from_key(b"\x31" * 32)
ESCROW = "0x" + "ab" * 20


def version_one_store(path, chain_id=10):
    """A store file exactly as micropay wrote it before version 2: one channel with two paid
    tasks, and one pending settlement."""
    key = ChannelKey(PAYER.address, "0x" + "22" * 20, ETH, 7)
    entries = extend_entries(None, [TaskReceipt("a", 5), TaskReceipt("b", 7, note="n")])
    vouchers = [sign_voucher(PAYER, chain_id=chain_id, escrow=ESCROW, channel_id=key.id, amount=e.total,
                             ledger_root=e.root) for e in entries]
    db = sqlite3.connect(path)
    for statement in MIGRATIONS[1]:
        db.execute(statement)
    db.execute("INSERT INTO channels VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
               (key.id, chain_id, ESCROW, "payee", key.payer, key.payee, key.token, u256(key.salt), u256(100),
                u256(0), 2**31, 3600, 0, 1.0, 1, u256(0)))
    for i, entry in enumerate(entries):
        r = entry.receipt
        db.execute("INSERT INTO receipts VALUES (?,?,?,?,?,?,?,?)",
                   (key.id, i, r.task_id, u256(r.amount), r.deliverable, r.note, entry.root, u256(entry.total)))
    for count, voucher in enumerate(vouchers, start=1):
        db.execute("INSERT INTO vouchers VALUES (?,?,?,?,?,?)",
                   (key.id, u256(voucher.amount), voucher.ledger_root, voucher.signature, count, 0.0))
    db.execute("INSERT INTO settlements VALUES (?,?,?,?,?,?,?,?,?,?,?)",
               (b"\x55" * 32, b"raw", ESCROW, ETH, "pending", f'[["{key.id.hex()}", "12"]]', u256(12), None, None,
                None, 5.0))
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    return key, entries, vouchers


def test_a_version_one_store_is_migrated_with_everything_kept(tmp_path):
    path = tmp_path / "old.db"
    key, entries, vouchers = version_one_store(path)
    store = VoucherStore(path)
    assert store.schema_version == SCHEMA_VERSION == 7
    ref = ChannelRef(10, ESCROW, key.id)
    record = store.channel(ref)
    assert (record.key, record.deposit, record.expiry, record.role) == (key, 100, 2**31, "payee")
    assert store.channel(key.id) == record  # a bare id still finds it: it is unique in this store
    assert [e.receipt for e in store.ledger(ref)] == [e.receipt for e in entries]
    assert store.best_voucher(ref) == (vouchers[-1], 2)
    assert store.voucher_count(ref) == 2
    (settlement,) = store.settlements()
    assert (settlement.chain_id, settlement.status, settlement.items) == (10, "pending", [(key.id, 12)])


def test_the_migrated_store_takes_the_same_channel_id_on_another_chain(tmp_path):
    path = tmp_path / "old.db"
    key, _, _ = version_one_store(path)
    store = VoucherStore(path)
    other = ChannelRef(11, ESCROW, key.id)  # same escrow address and channel id, another chain
    record = store.channel(ChannelRef(10, ESCROW, key.id))
    store.add_channel(replace(record, chain_id=11))
    assert store.channel(other).chain_id == 11
    assert store.best_voucher(other) is None and store.ledger(other) == []  # nothing of chain 10 leaks in
    assert len(store.channels_with_id(key.id)) == 2
    with pytest.raises(StoreError, match="on 2 chains or escrows"):  # a bare id is now ambiguous
        store.channel(key.id)


def test_a_store_opened_by_two_processes_migrates_once(tmp_path):
    path = tmp_path / "old.db"
    version_one_store(path)
    first, second = VoucherStore(path), VoucherStore(path)  # the second finds it migrated already
    assert first.schema_version == second.schema_version == SCHEMA_VERSION
    assert len(second.channels()) == 1


def version_two_store(path, chain_id=10):
    """A store file exactly as micropay wrote it at version 2 (escrow version 1): one channel of a
    version-2 escrow (its id hashes the zero signer) with a paid task, and one of a version-1
    escrow (its id hashes four words), paid too."""
    db = sqlite3.connect(path)
    for version in (1, 2):
        for step in MIGRATIONS[version]:
            db.execute(step) if isinstance(step, str) else step(db)
    current = ChannelKey(PAYER.address, "0x" + "22" * 20, ETH, 7)
    old_id = keccak(abi_encode(["address", "address", "address", "uint96"], [PAYER.address, current.payee, ETH, 8]))
    (entry,) = extend_entries(None, [TaskReceipt("a", 5)])
    for channel_id, salt in ((current.id, 7), (old_id, 8)):
        uid = ChannelRef(chain_id, ESCROW, channel_id).uid
        db.execute("INSERT INTO channels VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                   (uid, channel_id, chain_id, ESCROW, "payee", PAYER.address, current.payee, ETH, u256(salt),
                    u256(100), u256(0), 2**31, 3600, 0, 1.0, 1, u256(0)))
        r = entry.receipt
        db.execute("INSERT INTO receipts VALUES (?,?,?,?,?,?,?,?)",
                   (uid, 0, r.task_id, u256(r.amount), r.deliverable, r.note, entry.root, u256(entry.total)))
        voucher = sign_voucher(PAYER, chain_id=chain_id, escrow=ESCROW, channel_id=channel_id, amount=5,
                               ledger_root=entry.root)
        db.execute("INSERT INTO vouchers VALUES (?,?,?,?,?,?)", (uid, u256(5), entry.root, voucher.signature, 1, 0.0))
    db.execute("PRAGMA user_version=2")
    db.commit()
    db.close()
    return current, old_id


def test_a_version_two_store_gains_signers_and_sets_version_one_escrow_channels_aside(tmp_path):
    path = tmp_path / "v2.db"
    key, old_id = version_two_store(path)
    store = VoucherStore(path)
    assert store.schema_version == SCHEMA_VERSION
    (record,) = store.channels()  # the version-1 escrow's channel is out of the way
    assert record.key == key and record.key.signer is None and store.best_voucher(record.ref)[0].amount == 5
    assert store.find_channel(old_id) is None
    db = sqlite3.connect(path)
    assert db.execute("SELECT id FROM legacy_channels").fetchall() == [(old_id,)]
    assert len(db.execute("SELECT * FROM legacy_receipts").fetchall()) == 1
    assert len(db.execute("SELECT * FROM legacy_vouchers").fetchall()) == 1
    assert db.execute("SELECT COUNT(*) FROM vouchers").fetchone() == (1,)
    # A channel whose vouchers a delegated key signs is stored with its signer from now on.
    hot = Account.create()
    delegated = replace(record, key=ChannelKey(PAYER.address, key.payee, ETH, 9, hot.address))
    store.add_channel(delegated)
    assert store.channel(delegated.ref).key.voucher_signer == hot.address
    assert VoucherStore(path).channel(delegated.ref) == delegated  # and read back as it was


def test_a_row_whose_signer_was_edited_is_refused_as_altered(tmp_path):
    path = tmp_path / "v2.db"
    version_two_store(path)
    VoucherStore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE channels SET signer = ?", (Account.create().address,))
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="altered"):
        VoucherStore(path).channels()


def version_three_store(path, chain_id=10):
    """A store file exactly as micropay wrote it at version 3: a channel whose vouchers a delegated
    key signs, with two paid tasks and a voucher for each (in WAL mode, as micropay keeps every store)."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    for version in (1, 2, 3):
        for step in MIGRATIONS[version]:
            db.execute(step) if isinstance(step, str) else step(db)
    hot = Account.from_key(b"\x32" * 32)
    key = ChannelKey(PAYER.address, "0x" + "22" * 20, ETH, 7, hot.address)
    ref = ChannelRef(chain_id, ESCROW, key.id)
    entries = extend_entries(None, [TaskReceipt("a", 5), TaskReceipt("b", 7, note="n")])
    vouchers = [sign_voucher(hot, chain_id=chain_id, escrow=ESCROW, channel_id=key.id, amount=e.total,
                             ledger_root=e.root) for e in entries]
    db.execute("INSERT INTO channels VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
               (ref.uid, key.id, chain_id, ESCROW, "payee", key.payer, key.payee, ETH, u256(key.salt), u256(100),
                u256(0), 2**31, 3600, 0, 1.0, 1, u256(0), hot.address))
    for i, entry in enumerate(entries):
        r = entry.receipt
        db.execute("INSERT INTO receipts VALUES (?,?,?,?,?,?,?,?)",
                   (ref.uid, i, r.task_id, u256(r.amount), r.deliverable, r.note, entry.root, u256(entry.total)))
    for count, voucher in enumerate(vouchers, start=1):
        db.execute("INSERT INTO vouchers VALUES (?,?,?,?,?,?)",
                   (ref.uid, u256(voucher.amount), voucher.ledger_root, voucher.signature, count, float(count)))
    db.execute("PRAGMA user_version=3")
    db.commit()
    db.close()
    return ref, key, entries, vouchers


def test_a_version_three_store_gains_terms_and_empty_plan_tables(tmp_path):
    path = tmp_path / "v3.db"
    ref, key, entries, vouchers = version_three_store(path)
    store = VoucherStore(path)
    assert store.schema_version == SCHEMA_VERSION == 7
    (record,) = store.channels()
    assert record.ref == ref and record.key == key and record.key.voucher_signer == key.signer
    assert (record.deposit, record.expiry, record.role, record.observed_at) == (100, 2**31, "payee", 1)
    assert record.terms is None  # not known until read from the chain
    assert store.ledger(ref) == entries
    assert store.best_voucher(ref) == (vouchers[-1], 2)
    assert store.voucher_times(ref) == [(1, 1.0), (2, 2.0)]
    assert store.plan_roots() == [] and store.plans(b"\x01" * 32) == [] and store.feedback(b"\x01" * 32) == []
    db = sqlite3.connect(path)
    assert db.execute("SELECT COUNT(*) FROM plans").fetchone() == db.execute(
        "SELECT COUNT(*) FROM feedback").fetchone() == (0,)
    # The new column and tables are written and read back like any other.
    with store.transaction() as tx:
        tx.set_terms(ref, b"\x07" * 32)
    assert VoucherStore(path).channel(ref).terms == b"\x07" * 32


def test_a_version_three_store_opened_twice_at_once_migrates_once(tmp_path):
    for attempt in range(5):  # each a fresh race: both usually read version 3 before either migrates
        path = tmp_path / f"v3-{attempt}.db"
        ref, _, entries, _ = version_three_store(path)
        start = threading.Barrier(2)
        opened, failed = [], []

        def open_store(path=path, start=start, opened=opened, failed=failed):
            start.wait()
            try:
                opened.append(VoucherStore(path))
            except StoreError as exc:  # a second migration would fail: "duplicate column name: terms"
                failed.append(exc)

        threads = [threading.Thread(target=open_store) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failed == [] and len(opened) == 2
        assert [s.schema_version for s in opened] == [SCHEMA_VERSION] * 2
        for store in opened:
            assert [r.ref for r in store.channels()] == [ref] and store.ledger(ref) == entries
            store.close()
        db = sqlite3.connect(path)
        columns = [row[1] for row in db.execute("PRAGMA table_info(channels)")]
        assert columns.count("terms") == 1
        assert db.execute("SELECT COUNT(*) FROM sqlite_master WHERE name IN ('plans', 'feedback')").fetchone() == (2,)
        db.close()


def migrate_by_hand(path, *, up_to: int) -> None:
    """Apply the migrations after version 3 up to ``up_to`` to a version-3 file, as that micropay did."""
    db = sqlite3.connect(path)
    for version in range(4, up_to + 1):
        for step in MIGRATIONS[version]:
            db.execute(step)
    db.execute(f"PRAGMA user_version={up_to}")
    db.commit()
    db.close()


def test_a_version_four_store_gains_an_empty_outbox_and_no_channel_has_an_inbox(tmp_path):
    path = tmp_path / "v3.db"
    ref, _key, _entries, vouchers = version_three_store(path)
    migrate_by_hand(path, up_to=4)
    store = VoucherStore(path)
    assert store.schema_version == 7
    assert store.inbox(ref) is None and store.deliveries() == []
    # The outbox works on the migrated file: queue two payments, fail one attempt, hold both under one ack.
    with store.transaction() as tx:
        tx.set_inbox(ref, "https://inbox.example/")
        for voucher in vouchers:
            tx.queue_delivery(ref, voucher.amount)
        tx.delivery_failed(ref, vouchers[0].amount, "connection refused")
    queued = store.deliveries(ref, queued_only=True)
    assert [(d.amount, d.attempts, d.last_error) for d in queued] == [(5, 1, "connection refused"), (12, 0, None)]
    with store.transaction() as tx:
        assert tx.delivery_held(ref, 12, vouchers[1].ledger_root, b"\x01" * 65) == 2
    held = store.deliveries(ref)
    assert [(d.state, d.ack_amount) for d in held] == [("held", 12), ("held", 12)]
    assert store.inbox(ref) == "https://inbox.example/" and store.deliveries(queued_only=True) == []


def test_a_version_five_store_gains_an_empty_charges_table_that_keeps_uint256_totals(tmp_path):
    path = tmp_path / "v5.db"
    ref, _key, entries, _vouchers = version_three_store(path)
    migrate_by_hand(path, up_to=5)
    store = VoucherStore(path)
    assert store.schema_version == 7
    with store.transaction() as tx:
        assert tx.charged(ref) == (0, 0)
        tx.set_charged(ref, 2**256 - 1, 3)
    with store.transaction() as tx:
        assert tx.charged(ref) == (2**256 - 1, 3)
        tx.set_charged(ref, 7, 4)
    with VoucherStore(path).transaction() as tx:
        assert tx.charged(ref) == (7, 4)
    assert store.ledger(ref) == entries


def test_a_version_six_store_keeps_every_row_as_its_only_account_and_can_then_share_the_file(tmp_path):
    """Version 7 rebuilds the owned tables (new keys) with every row kept under the owner ''; the
    outbox, charges, plans, feedback, cursors and settlements survive, and a second account's
    rows for the same channel then sit beside them."""
    path = tmp_path / "v6.db"
    ref, key, entries, vouchers = version_three_store(path)
    migrate_by_hand(path, up_to=6)
    db = sqlite3.connect(path)
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("UPDATE channels SET inbox = 'https://inbox.example' WHERE uid = ?", (ref.uid,))
    db.execute("INSERT INTO deliveries (channel, amount, state, created_at) VALUES (?, ?, 'queued', 1.0)",
               (ref.uid, u256(12)))
    db.execute("INSERT INTO charges VALUES (?, ?, 2)", (ref.uid, u256(2**256 - 1)))
    db.execute("INSERT INTO plans VALUES (?, ?, 1, 1, '{}', 2.0)", (b"\x01" * 32, b"\x01" * 32))
    db.execute("INSERT INTO feedback VALUES (?, ?, 'a', 3, '{}', 3.0)", (b"\x02" * 32, b"\x01" * 32))
    db.execute("INSERT INTO cursors VALUES ('watch', 41)")
    db.execute("INSERT INTO settlements VALUES (?, NULL, ?, ?, 'pending', '[]', ?, NULL, NULL, NULL, 4.0, 10)",
               (b"\x55" * 32, ESCROW, ETH, u256(12)))
    db.commit()
    db.close()
    store = VoucherStore(path)
    assert store.schema_version == 7
    assert store.ledger(ref) == entries and store.best_voucher(ref)[0] == vouchers[-1]
    assert [(d.channel, d.amount, d.state) for d in store.deliveries()] == [(ref.uid, 12, "queued")]
    assert store.inbox(ref) == "https://inbox.example" and store.charged(ref) == (2**256 - 1, 2)
    assert store.plan_roots() == [b"\x01" * 32] and store.cursor("watch") == 41
    assert [s.tx_hash for s in store.settlements()] == [b"\x55" * 32]
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA foreign_key_check").fetchall() == []
    assert {row[0] for row in raw.execute("SELECT owner FROM channels UNION SELECT owner FROM plans "
                                          "UNION SELECT owner FROM cursors "
                                          "UNION SELECT owner FROM settlements")} == {""}
    raw.close()
    # Another account's store in the same file: the same channel and cursor name, apart.
    other = VoucherStore(path, owner=key.payer)
    assert other.channels() == [] and other.cursor("watch") is None and other.plan_roots() == []
    record = store.channel(ref)
    with other.transaction() as tx:
        tx.add_channel(replace(record, role="payer"))
        tx.set_cursor("watch", 7)
    assert [r.role for r in other.channels()] == ["payer"] and [r.role for r in store.channels()] == ["payee"]
    assert (store.cursor("watch"), other.cursor("watch")) == (41, 7)
    assert other.ledger(ref) == [] and store.ledger(ref) == entries
