"""How the command reads amounts and writes text, without a chain: escaping, units, error lines."""


import pytest

from micropay.cli.errors import describe, one_line, reword
from micropay.cli.output import safe, table
from micropay.cli.secrets import NO_TERMINAL
from micropay.errors import (
    InsufficientDeposit,
    InsufficientFunds,
    MicropayValueError,
    StoreError,
    TransactionError,
)
from micropay.store import VoucherStore
from micropay.units import format_amount, format_approx, parse_amount


@pytest.mark.parametrize(("text", "shown"), [
    ("logo draft 1", "logo draft 1"),
    ("a\rb", "a\\rb"),
    ("\x1b[2J", "\\x1b[2J"),
    ("line\nnext\ttab", "line\\nnext\\ttab"),
    ("exe.\u202egnp", "exe.\\u202egnp"),
    ("".join(map(chr, range(0x202A, 0x202F))), "\\u202a\\u202b\\u202c\\u202d\\u202e"),
    ("".join(map(chr, range(0x2066, 0x206A))), "\\u2066\\u2067\\u2068\\u2069"),
    ("zero\u200bwidth", "zero\\u200bwidth"),
    ("bell\x07 del\x7f", "bell\\x07 del\\x7f"),
    ("surrogate \ud800", "surrogate \\ud800"),
    ("café ✓ 日本", "café ✓ 日本"),  # printable text from anywhere stays as it is
])
def test_safe_makes_what_a_terminal_would_act_on_visible(text, shown):
    assert safe(text) == shown


def test_tables_and_error_lines_are_safe():
    out = table([["1", "over\rwritten"]], ["#", "task"])
    assert "\r" not in out and "over\\rwritten" in out
    assert one_line("bad task 'x\x1b[31m'\n") == "bad task 'x\\x1b[31m'"


@pytest.mark.parametrize(("text", "value"), [
    ("0.05 ETH", 5 * 10**16), ("0.05 eth", 5 * 10**16), ("0.05ETH", 5 * 10**16),
    ("0.05 ether", 5 * 10**16), ("20 gwei", 20 * 10**9), ("1.5 GWEI", 15 * 10**8),
    ("7 wei", 7), ("0", 0), ("0 ETH", 0),
])
def test_eth_amounts(text, value):
    assert parse_amount(text, 18, "ETH") == value


def test_a_bare_integer_needs_wei():
    with pytest.raises(MicropayValueError, match="--wei"):
        parse_amount("1", 18, "ETH")
    assert parse_amount("1", 18, "ETH", bare=True) == 1
    assert parse_amount("12", 6, "USDC", bare=True) == 12


@pytest.mark.parametrize(("text", "error"), [
    ("1 gwei", "unit of ETH"), ("0.1 ether", "unit of ETH"), ("1 ETH", "pays in USDC"), ("1.5", "add the unit"),
    ("1.0000001 USDC", "more decimals"), ("1.5 units", "whole numbers"), ("-1 USDC", "cannot read"),
    ("9" * 300, "cannot read"),
])
def test_token_amounts_refused(text, error):
    with pytest.raises(MicropayValueError, match=error):
        parse_amount(text, 6, "USDC", bare=True)


@pytest.mark.parametrize(("value", "shown"), [
    (0, "0 ETH"), (10**18, "1 ETH"), (123456789012345, "~0.0001235 ETH"), (5 * 10**13, "0.00005 ETH"),
    (12_345_678 * 10**12, "~12.35 ETH"), (1234 * 10**18 + 1, "~1234 ETH"), (1, "0.000000000000000001 ETH"),
])
def test_approximate_amounts_for_fees(value, shown):
    assert format_approx(value, 18, "ETH") == shown
    assert (format_amount(value, 18, "ETH") == shown) is (not shown.startswith("~"))  # exact unless marked


def test_reword_keeps_the_class_and_its_numbers():
    original = InsufficientDeposit("paying 5 would bring it to 12, above 10", shortfall=2)
    new = reword(original, "top up at least 0.000000000000000002 ETH")
    assert type(new) is InsufficientDeposit and new.shortfall == 2 and new.__cause__ is original
    assert str(new) == "top up at least 0.000000000000000002 ETH"


def test_describe_words_what_reaches_the_top(tmp_path):
    raw = InsufficientFunds("not enough ETH for the value plus gas: {'code': -32003, 'message': 'Insufficient'}")
    assert describe(raw, "0.5 ETH") == ("the account does not hold enough ETH for this transaction and its gas "
                                        "(it holds 0.5 ETH): send it some ETH first")
    worded = InsufficientFunds("0xabc holds 0.1 ETH; watching needs at least 0.2 ETH")
    assert describe(worded, None) == str(worded)
    fee = TransactionError("the network's base fee (35000000000 wei/gas) is at or above your cap (30000000000): wait")
    assert describe(fee, None).startswith("the network's base fee (35 gwei per gas) is at or above your "
                                          "--max-fee-gwei (30 gwei)")
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)  # a header, then garbage
    with pytest.raises(StoreError) as raised:
        VoucherStore(broken)
    damaged = describe(raised.value, None)
    assert "not a database" in damaged and "micropay sync" in damaged and "micropay import" in damaged
    assert describe(KeyError("x"), None) == "unexpected KeyError: 'x' (run with --debug for the traceback)"
    assert "MICROPAY_PASSWORD" in NO_TERMINAL
