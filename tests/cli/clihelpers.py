"""People using the command in tests: a data directory with one key file each, run through
click's CliRunner on the in-process chain (see conftest.py)."""

from __future__ import annotations

import json
import re

from click.testing import CliRunner
from eth_account import Account

from micropay import keystore
from micropay.cli import main

PASSWORD = "correct horse battery staple"
# The in-process chain mines only when asked: no later block would confirm a transaction.
ENV = {"MICROPAY_PASSWORD": PASSWORD, "MICROPAY_CONFIRMATIONS": "0"}
PAYMENT = re.compile(r"mpp1[a-z2-7]+")


class Person:
    """One user of the command: a data directory with one key file."""

    def __init__(self, w3, tmp_path, name, fund=10**19):
        self.w3 = w3
        self.home = tmp_path / name
        self.runner = CliRunner()
        # A low scrypt work factor keeps each command fast; `account new` itself is tested too.
        account = Account.create()
        keystore.save_account(account, self.home / "keystores", PASSWORD, iterations=2**4)
        self.address = account.address
        if fund:
            w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(
                {"from": w3.eth.accounts[0], "to": self.address, "value": fund}))

    def run(self, *args, input=None, ok=True, env=None):
        result = self.runner.invoke(main, ["--home", str(self.home), *args], input=input, env={**ENV, **(env or {})})
        if ok:
            assert result.exit_code == 0, result.output + repr(result.exception)
        return result

    def json(self, *args, **kwargs):
        return json.loads(self.run(*args, "--json", **kwargs).stdout)  # progress lines go to stderr

    def pay(self, channel, price, task, *args):
        return self.run("pay", channel, price, task, *args).stdout.strip()

    def open(self, payee, deposit="0.05 ETH", *args):
        return self.json("open", payee, deposit, *args)["channel"]


def assert_clean_error(result, *fragments, code=1):
    """One line on stderr starting with "error: " (no traceback), holding every fragment."""
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error: ") and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]
    return lines[-1]
