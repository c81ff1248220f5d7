"""VoucherStore: private file, versioned schema, lossless amounts, verified export and import.

The tests of the SQLite file itself (its mode, its schema version, a file that is not a store, a
failed COMMIT forced through SQLite's PRAGMA) run on SQLite only; the rest on every backend."""

import json
import os
import sqlite3
import stat

import pytest

from micropay import VoucherStore
from micropay.errors import StoreError
from micropay.records import from_u256, u256
from micropay.schema import SCHEMA_VERSION
from store_snapshot import store_state


def test_new_store_is_private_and_versioned(tmp_path):
    store = VoucherStore(tmp_path / "new.db")
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert store.schema_version == SCHEMA_VERSION
    tables = sqlite3.connect(store.path).execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    assert {row[0] for row in tables} >= {
        "channels", "vouchers", "receipts", "settlements", "cursors"}


def test_store_from_a_newer_micropay_is_refused(tmp_path):
    path = tmp_path / "future.db"
    VoucherStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="schema"):
        VoucherStore(path)


def test_a_file_that_is_not_a_store_is_refused(tmp_path):
    path = tmp_path / "notes.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError):
        VoucherStore(path)


def test_amounts_are_lossless_and_ordered():
    for value in (0, 1, 2**96 - 1, 2**255 + 12345, 2**256 - 1):
        assert from_u256(u256(value)) == value
    assert sorted([u256(2**90), u256(3), u256(2**64)]) == [u256(3), u256(2**64), u256(2**90)]


def test_export_and_import_carry_everything(clients, freelancer, make_payer, payee, store_at):
    payer = make_payer(clients[0])
    channel = payer.open_channel(freelancer.address, 10**16)
    for n in range(3):
        payee.receive(payer.pay(channel.id, 10 + n, task=f"t{n}"))
    bundle = json.loads(json.dumps(payee.store.export()))  # survives a trip through a file
    restored = VoucherStore(store_at("restored"))
    assert restored.import_(bundle) == 1
    best, count = restored.best_voucher(channel.id)
    assert (best.amount, count) == (33, 3)
    assert [e.receipt.task_id for e in restored.ledger(channel.id)] == ["t0", "t1", "t2"]
    assert restored.import_(bundle) == 0  # importing again changes nothing


@pytest.mark.parametrize("tamper", [
    lambda b: b["channels"][0]["voucher"].update(cumulativeAmount="999999"),
    lambda b: b["channels"][0]["receipts"][0].update(taskId="edited"),
    lambda b: b.update(version=3),
    lambda b: b["channels"].append({"nonsense": True}),
])
def test_tampered_bundle_is_rejected_and_changes_nothing(clients, freelancer, make_payer, payee, store_at, tamper):
    payer = make_payer(clients[0])
    channel = payer.open_channel(freelancer.address, 10**16)
    payee.receive(payer.pay(channel.id, 10, task="t0"))
    bundle = payee.store.export()
    target = VoucherStore(store_at("target"))
    before = store_state(target)
    tamper(bundle)
    with pytest.raises(StoreError):
        target.import_(bundle)
    assert store_state(target) == before


def test_resigned_bundle_with_a_forged_voucher_is_rejected(clients, freelancer, make_payer, payee, store_at):
    from micropay.bundle import bundle_digest
    from micropay.errors import InvalidVoucher

    payer = make_payer(clients[0])
    channel = payer.open_channel(freelancer.address, 10**16)
    payee.receive(payer.pay(channel.id, 10, task="t0"))
    bundle = payee.store.export()
    bundle["channels"][0]["payer"] = clients[1].address  # claims another payer signed it
    bundle["sha256"] = bundle_digest(bundle)  # and fixes the checksum
    with pytest.raises((StoreError, InvalidVoucher)):
        VoucherStore(store_at("t")).import_(bundle)


def test_a_failed_commit_is_rolled_back_and_the_store_still_works(tmp_path):
    store = VoucherStore(tmp_path / "store.db")
    with pytest.raises(StoreError, match="could not commit"), store.transaction() as tx:
        # A deferred foreign-key violation passes every statement and fails only at COMMIT,
        # which leaves SQLite's transaction open unless the store rolls it back. The unit of
        # work offers no raw SQL, so the fault is injected on its connection directly.
        tx._db.execute("PRAGMA defer_foreign_keys=ON")
        tx.set_cursor("kept?", 1)
        tx._db.execute("INSERT INTO vouchers VALUES (?, ?, ?, ?, 0, 0)", (b"\x01" * 32, b"\x00" * 32, b"", b""))
    assert store.cursor("kept?") is None
    with store.transaction() as tx:
        tx.set_cursor("later", 2)
    assert store.cursor("later") == 2


def test_import_for_an_account_refuses_a_bundle_with_someone_elses_channels(clients, freelancer, make_payer, payee,
                                                                            store_at):
    payer = make_payer(clients[0])
    channel = payer.open_channel(freelancer.address, 10**16)
    payee.receive(payer.pay(channel.id, 10, task="t0"))
    bundle = payee.store.export()
    target = VoucherStore(store_at("someone-else"))
    with pytest.raises(StoreError, match=r"1 channel\(s\) that are not this account's"):
        target.import_(bundle, account=clients[1].address)
    assert target.channels() == []
    assert target.import_(bundle, account=freelancer.address) == 1


def test_a_bundle_from_before_signers_is_still_read(clients, freelancer, make_payer, payee, store_at):
    from micropay.bundle import bundle_digest

    payer = make_payer(clients[0])
    channel = payer.open_channel(freelancer.address, 10**16)
    payee.receive(payer.pay(channel.id, 10, task="t0"))
    bundle = payee.store.export()
    assert bundle["version"] == 1  # no channel has a signer: every micropay reads it
    del bundle["channels"][0]["signer"]  # as micropay wrote it before signers existed
    bundle["sha256"] = bundle_digest(bundle)
    restored = VoucherStore(store_at("old-bundle"))
    assert restored.import_(bundle) == 1
    assert restored.channel(channel.ref).key == channel.key and channel.key.signer is None


def test_a_hot_keys_store_imports_the_channels_it_signs(lib_escrow, clients, freelancer, store_at):
    from eth_account import Account

    from micropay import Payer

    hot = Account.create()
    payer = Payer(lib_escrow, clients[1], store_at("c"), signer=hot)
    channel = payer.open_channel(freelancer.address, 10**16)
    payer.pay(channel.id, 10, task="t0")
    bundle = payer.store.export()
    assert bundle["version"] == 2
    for account in (clients[1].address, hot.address):  # the funding account's, or the signer's own store
        assert VoucherStore(store_at(account)).import_(bundle, account=account) == 1
    with pytest.raises(StoreError, match="not this account's"):
        VoucherStore(store_at("other")).import_(bundle, account=freelancer.address)
    forged = json.loads(json.dumps(bundle))
    forged["channels"][0]["signer"] = Account.create().address  # another signer: another channel id
    from micropay.bundle import bundle_digest

    forged["sha256"] = bundle_digest(forged)
    with pytest.raises(StoreError, match="another channel"):
        VoucherStore(store_at("forged")).import_(forged)
