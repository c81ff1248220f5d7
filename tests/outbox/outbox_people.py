"""People typing ``micropay`` for the outbox tests: one data directory and key file each, run
through click's CliRunner on the in-process chain (the ``cli_node`` fixture puts it in place of
the node), as tests/cli does. A person's store is the data directory's own (``micropay.db``), or
where a :class:`~pgcluster.StoreLocations` puts it (a PostgreSQL schema: then every command gets
``--store``)."""

from __future__ import annotations

import json

from click.testing import CliRunner
from eth_account import Account

from micropay import keystore
from micropay.cli import main
from micropay.store import VoucherStore

PASSWORD = "outbox people"
ENV = {"MICROPAY_PASSWORD": PASSWORD, "MICROPAY_CONFIRMATIONS": "0"}


class Person:
    def __init__(self, w3, tmp_path, name, fund=10**19, locations=None):
        self.home = tmp_path / name
        default = str(self.home / "micropay.db")
        self.store_path = locations.make(self.home, "micropay") if locations else default
        self.store_args = () if self.store_path == default else ("--store", self.store_path)
        self.runner = CliRunner()
        self.account = Account.create()
        keystore.save_account(self.account, self.home / "keystores", PASSWORD, iterations=2**4)
        self.address = self.account.address
        if fund:
            w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(
                {"from": w3.eth.accounts[0], "to": self.address, "value": fund}))

    def run(self, *args, ok=True, code=0):
        result = self.runner.invoke(main, ["--home", str(self.home), *self.store_args, *args], env=ENV)
        if ok:
            assert result.exit_code == code, result.output + repr(result.exception)
        return result

    def json(self, *args, code=0):
        return json.loads(self.run(*args, "--json", code=code).stdout)

    def store(self):
        """This person's store as the CLI opens it: their account's rows (on PostgreSQL, a database
        holds many accounts'; a file is one account's)."""
        return VoucherStore.open(self.store_path, account=self.address)

    def inbox_of(self, channel_prefix):
        with self.store() as store:
            (record,) = [r for r in store.channels() if r.id.hex().startswith(channel_prefix.removeprefix("0x"))]
            return store.inbox(record.ref)


def last_error_line(result):
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error: ") and "Traceback" not in result.output, result.output
    return lines[-1]
