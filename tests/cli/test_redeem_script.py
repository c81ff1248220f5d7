"""scripts/redeem_vouchers.py reads its arguments as its docstring has them: options, then the file."""

import pytest

from redeem_vouchers import command_line


@pytest.mark.parametrize(("args", "expected"), [
    (["payments.txt"], ["redeem", "payments.txt"]),
    (["--rpc", "http://node", "--escrow", "0xE5", "--keystore", "k.json", "payments.txt"],
     ["--rpc", "http://node", "--escrow", "0xE5", "--keystore", "k.json", "redeem", "payments.txt"]),
    (["--rpc", "http://node", "--min-net", "0.001 ETH", "--confirmations", "0", "p.txt"],
     ["--rpc", "http://node", "--confirmations", "0", "redeem", "--min-net", "0.001 ETH", "p.txt"]),
    (["--min-net=0.001 ETH", "--wei", "--debug", "p.txt"],
     ["--debug", "redeem", "--min-net=0.001 ETH", "--wei", "p.txt"]),
    ([], ["redeem", "--help"]),
    (["--help"], ["redeem", "--help"]),
    (["--rpc", "http://node", "--help"], ["--rpc", "http://node", "redeem", "--help"]),
])
def test_options_first_then_the_file(args, expected):
    assert command_line(args) == expected
