"""What the PostgreSQL tests share: an anvil chain with micropay's escrow, funded accounts, real
`micropay serve` processes on a PostgreSQL store (payments signed ahead: helpers.signed_payments).

Like tests/inbox/inboxhelpers.py, but a server here always gets ``--store`` (a URL) and may host
several freelancers (``--delegation`` twice), so it reports every inbox it listens for."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from eth_account.signers.local import LocalAccount

from chains import AnvilWorld
from micropay import Payer, keystore
from micropay.records import ChannelRecord
from serve_process import ServeProcess

PASSWORD = "postgres-tests"
#: No rate limits: the tests post as fast as they can from one address.
UNLIMITED = ("--client-rate", "0", "--channel-rate", "0")
AMOUNT = 10**12


class World(AnvilWorld):
    """An anvil with the escrow deployed (see :class:`chains.AnvilWorld`), and library Payers."""

    def payer(self, store: str | os.PathLike[str], account: LocalAccount | None = None) -> Payer:
        """A library Payer for ``account`` (default: a new funded one) with its store at ``store``."""
        return Payer(self.escrow, account or self.fund(), store)

    def open(self, payer: Payer, payee: str, deposit: int = 10**18) -> ChannelRecord:
        return payer.open_channel(payee, deposit)


def home_with_key(world: World, home: Path, account: LocalAccount | None = None) -> LocalAccount:
    """A data directory holding a key file for ``account`` (default: a new funded one)."""
    account = account or world.fund()
    keystore.save_account(account, home / "keystores", PASSWORD, iterations=2**4)
    return account


class Served(ServeProcess):
    """`micropay serve --store URL` from ``home``'s key, with no rate limits (see
    :class:`serve_process.ServeProcess`); ``inboxes``: how many freelancers it hosts."""

    def __init__(self, world: World, home: Path, store: str, *args: str, inboxes: int = 1) -> None:
        argv = [sys.executable, "-m", "micropay", "--rpc", world.anvil.url, "--home", str(home), "--store", store,
                "--confirmations", "0", "serve", "--escrow", world.escrow.address, "--port", "0", *UNLIMITED, *args]
        super().__init__(argv, home, PASSWORD, inboxes=inboxes, timeout=60)
