"""Untrusted inputs: a micropay error or success, never another exception, never a changed store."""

import contextlib
import json
import string

from click.testing import CliRunner
from eth_account import Account
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from micropay import VoucherStore, keystore
from micropay.cli import main
from micropay.errors import InvalidVoucher, KeystoreError, MicropayError, StoreError
from store_snapshot import store_state

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=15,
)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(content=st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode())))
def test_any_key_file_is_a_keystore_error(tmp_path, content):
    path = tmp_path / "key.json"
    path.write_bytes(content)
    with contextlib.suppress(KeystoreError):
        keystore.load_account(path, "pw")


@FUZZ
@given(data=st.data())
def test_a_mutated_real_key_file_never_escapes_the_hierarchy(tmp_path_factory, data):
    home = tmp_path_factory.mktemp("keys")
    path = keystore.save_account(Account.create(), home, "pw", iterations=2)
    document = json.loads(path.read_text())
    crypto = document["crypto"]
    field = data.draw(st.sampled_from(["cipher", "ciphertext", "kdf", "mac", "cipherparams", "kdfparams"]))
    crypto[field] = data.draw(json_values)
    path.write_text(json.dumps(document))
    with contextlib.suppress(KeystoreError):
        keystore.load_account(path, "pw")


@FUZZ
@given(data=st.data())
def test_a_mutated_bundle_is_refused_and_changes_nothing(tmp_path_factory, store_locations, data):
    from fuzz_bundle import BUNDLE  # a real exported bundle, built once

    bundle = json.loads(json.dumps(BUNDLE))
    channel = bundle["channels"][0]
    where = data.draw(st.sampled_from(["top", "channel", "voucher", "receipt"]))
    target = {"top": bundle, "channel": channel, "voucher": channel["voucher"],
              "receipt": channel["receipts"][0]}[where]
    target[data.draw(st.sampled_from(sorted(target)))] = data.draw(json_values)
    with VoucherStore(store_locations.make(tmp_path_factory.mktemp("s"), "s")) as store:  # a new one each time
        before = store_state(store)
        try:
            store.import_(bundle)
        except (StoreError, InvalidVoucher):
            assert store_state(store) == before
        except MicropayError as exc:  # any other micropay error is acceptable too, but must change nothing
            assert store_state(store) == before, exc


words = st.text(alphabet=string.ascii_letters + string.digits + "-_.:/ 0x", max_size=20)


@settings(max_examples=150, deadline=None)
@given(args=st.lists(st.one_of(words, st.sampled_from(
    ["status", "tasks", "pay", "receive", "settle", "open", "--json", "--min-net", "--token", "--rpc",
     "--escrow", "--chain-id", "--days", "0x" + "ab" * 32, "0.5 ETH", "-1", "999999999999999999999999"])),
    max_size=6))
def test_any_command_line_ends_cleanly(tmp_path_factory, args):
    home = tmp_path_factory.mktemp("cli")
    result = CliRunner().invoke(main, ["--home", str(home), "--rpc", "http://127.0.0.1:9", *args],
                                env={"MICROPAY_PASSWORD": "pw"})
    # 0: it worked; 1: a micropay error, reported in one line; 2: click's usage error.
    assert result.exit_code in (0, 1, 2), (args, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, repr(result.exception))
    if result.exit_code == 1:
        assert result.output.strip().splitlines()[-1].startswith("error: ")
