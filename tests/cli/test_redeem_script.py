"""scripts/redeem_vouchers.py reads its arguments as its docstring has them: options, then the file."""

import pytest

from redeem_vouchers import command_line, run, wants_usage


@pytest.mark.parametrize(("args", "expected"), [
    (["payments.txt"], ["redeem", "payments.txt"]),
    (["--rpc", "http://node", "--escrow", "0xE5", "--keystore", "k.json", "payments.txt"],
     ["--rpc", "http://node", "--escrow", "0xE5", "--keystore", "k.json", "redeem", "payments.txt"]),
    (["--rpc", "http://node", "--min-net", "0.001 ETH", "--confirmations", "0", "p.txt"],
     ["--rpc", "http://node", "--confirmations", "0", "redeem", "--min-net", "0.001 ETH", "p.txt"]),
    (["--min-net=0.001 ETH", "--wei", "--debug", "p.txt"],
     ["--debug", "redeem", "--min-net=0.001 ETH", "--wei", "p.txt"]),
])
def test_options_first_then_the_file(args, expected):
    assert not wants_usage(args)
    assert command_line(args) == expected


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["--rpc", "http://node", "--help"], ["--help", "p.txt"]])
def test_help_is_the_scripts_own_usage_not_redeems(args, capsys):
    assert run(args) == 0
    out = capsys.readouterr().out
    assert "scripts/redeem_vouchers.py [--rpc URL]" in out and "payments.txt" in out
    assert "redeem [OPTIONS] FILE" not in out


@pytest.mark.parametrize("args", [[], ["--rpc", "http://node"], ["p.txt", "--wei"]])
def test_no_file_prints_the_usage_and_exits_2(args, capsys):
    assert run(args) == 2
    err = capsys.readouterr().err
    assert "scripts/redeem_vouchers.py [--rpc URL]" in err and "give the payments file last" in err
