"""Backups, recovery and damaged stores as the command handles them (issue 12, items 5, 14 and 16)."""

import gc
import json

from click.testing import CliRunner
from clihelpers import ENV, Person, assert_clean_error

from micropay.cli import main
from micropay.cli.errors import STORE_HINT


def test_import_refuses_channels_of_other_accounts(people, w3, tmp_path):
    client, freelancer, _ = people
    client.pay(client.open(freelancer.address), "0.01 ETH", "logo")
    bundle = tmp_path / "client.json"
    bundle.write_text(client.run("export").stdout)
    stranger = Person(w3, tmp_path, "stranger", fund=0)
    message = assert_clean_error(stranger.run("import", str(bundle), ok=False), "not this account")
    assert stranger.json("status") == [] and message
    restored = client.run("--store", str(tmp_path / "restored.db"), "import", str(bundle)).stdout
    assert "1 channel(s) imported or updated" in restored


def test_a_client_pays_on_straight_after_restoring_a_backup(people, tmp_path):
    client, freelancer, _ = people
    channel = client.open(freelancer.address)
    client.pay(channel, "0.01 ETH", "logo")
    bundle = tmp_path / "client.json"
    bundle.write_text(client.run("export").stdout)
    restored = str(tmp_path / "restored.db")
    client.run("--store", restored, "import", str(bundle))
    assert client.run("--store", restored, "pay", channel, "0.01 ETH", "palette").stdout.startswith("mpp1")


def test_import_without_a_key_file_says_why_it_needs_one_and_writes_nothing(people, w3, tmp_path):
    client, freelancer, _ = people
    client.pay(client.open(freelancer.address), "0.01 ETH", "logo")
    bundle = tmp_path / "client.json"
    bundle.write_text(client.run("export").stdout)
    empty = tmp_path / "lost-machine"
    empty.mkdir()
    result = CliRunner().invoke(main, ["--home", str(empty), "import", str(bundle)], env=ENV)
    assert result.exit_code == 1
    assert "import accepts only this account's channels, so it needs this account's key file" in result.stderr
    assert not (empty / "micropay.db").exists()


def test_a_mistyped_store_path_creates_no_folder(people, tmp_path):
    client, _, _ = people
    mistyped = tmp_path / "no-such-folder" / "deeper" / "micropay.db"
    assert_clean_error(client.run("--store", str(mistyped), "status", ok=False), "does not exist", "--store")
    assert not (tmp_path / "no-such-folder").exists()


def test_the_default_data_directory_is_created(tmp_path, monkeypatch):
    home = tmp_path / "fresh-home"  # the user data directory: no --home
    monkeypatch.setattr("micropay.config.user_data_dir", lambda *args, **kwargs: str(home))
    result = CliRunner().invoke(main, ["status", "--json"], env={**ENV, "MICROPAY_HOME": None, "MICROPAY_STORE": None})
    assert result.exit_code == 0, result.output
    assert (home / "micropay.db").exists()


def test_an_empty_store_file_is_not_taken_for_a_new_one(people, tmp_path):
    client, _, _ = people
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    assert_clean_error(client.run("--store", str(empty), "status", ok=False))


def damage(path):
    """Overwrite the store's pages after the first with garbage (a bad disk, a half-copied file)."""
    data = bytearray(path.read_bytes())
    data[4096:] = b"\xa5" * (len(data) - 4096)
    path.write_bytes(bytes(data))
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def test_a_damaged_store_is_one_line_that_says_what_to_do(people, tmp_path):
    client, freelancer, _ = people
    store = tmp_path / "damaged.db"
    channel = client.json("--store", str(store), "open", freelancer.address, "0.05 ETH")["channel"]
    client.run("--store", str(store), "pay", channel, "0.01 ETH", "logo")
    gc.collect()  # the commands' store connections are closed, as when their processes end
    damage(store)
    for args in (("status",), ("export",), ("settle",), ("pay", channel, "0.01 ETH", "x")):
        result = client.run("--store", str(store), *args, ok=False)
        message = assert_clean_error(result)
        assert "micropay sync" in message and "import" in message, message


def test_store_hint_names_both_ways_back():
    assert "`micropay sync`" in STORE_HINT and "`micropay import FILE`" in STORE_HINT


def test_sync_rebuilds_a_lost_store_from_the_chain(people, tmp_path):
    client, freelancer, escrow = people
    channel = client.open(freelancer.address)
    freelancer.run("receive", client.pay(channel, "0.01 ETH", "logo"))
    fresh = tmp_path / "rebuilt.db"
    rebuilt = client.run("--store", str(fresh), "sync").stdout
    assert f"escrow {escrow}: 1 channel(s) added, 0 updated" in rebuilt
    assert f"channel {channel[:12]} with freelancer {freelancer.address}: deposit 0.05 ETH, open" in rebuilt
    (row,) = json.loads(client.run("--store", str(fresh), "status", "--json").stdout)
    assert (row["channel"], row["role"]) == (channel, "payer")
    again = client.run("--store", str(fresh), "sync").stdout
    assert "0 channel(s) added" in again

    lost = tmp_path / "freelancer-rebuilt.db"
    assert_clean_error(freelancer.run("--store", str(lost), "sync", ok=False), "--escrow")
    found = freelancer.run("--store", str(lost), "--escrow", escrow, "sync").stdout
    assert f"channel {channel[:12]} with client {client.address}" in found
