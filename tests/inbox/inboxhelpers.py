"""What the inbox tests share: the chain, a freelancer with a key file, a real `micropay serve`
process on a free loopback port (``--port 0``: it says which), logs in files.

Stores live where a :class:`~pgcluster.StoreLocations` puts them (the ``store_locations``
fixture: a file on SQLite, a schema on PostgreSQL); without one, in files."""

from __future__ import annotations

import sys
from pathlib import Path

from chains import AnvilWorld
from micropay import Payer, keystore
from micropay.records import ChannelRecord
from micropay.store import VoucherStore
from pgcluster import StoreLocations
from serve_process import ServeProcess

PASSWORD = "inbox-tests"


class World(AnvilWorld):
    """An anvil with the escrow deployed (see :class:`chains.AnvilWorld`), and clients as library Payers."""

    def client(self, folder: Path, name: str = "client", locations: StoreLocations | None = None) -> Payer:
        """A funded client with its own store (in ``folder`` on SQLite), as a library Payer."""
        account = self.fund()
        store = f"{name}-{account.address}"
        return Payer(self.escrow, account, locations.make(folder, store) if locations else folder / f"{store}.db")


class Freelancer:
    """A freelancer's data directory with its key file. Its store is the data directory's own,
    ``home/micropay.db``, unless ``locations`` puts it elsewhere (a PostgreSQL schema): then every
    command gets ``--store``."""

    def __init__(self, world: World, home: Path, locations: StoreLocations | None = None) -> None:
        self.account = world.fund()
        self.home = home
        keystore.save_account(self.account, home / "keystores", PASSWORD, iterations=2**4)
        self.world = world
        default = str(home / "micropay.db")
        self.store_path = locations.make(home, "micropay") if locations else default
        self.store_args = () if self.store_path == default else ("--store", self.store_path)

    @property
    def address(self) -> str:
        return self.account.address

    def store(self) -> VoucherStore:
        """The freelancer's store: its account's rows (all there are in a file; on a shared PostgreSQL
        database, those `micropay serve` and the CLI write for this account)."""
        return VoucherStore.open(self.store_path, account=self.address)

    def serve(self, *args: str) -> Server:
        return Server(self, args)


class Server(ServeProcess):
    """The freelancer's `micropay serve` (see :class:`serve_process.ServeProcess`)."""

    def __init__(self, freelancer: Freelancer, args: tuple[str, ...]) -> None:
        argv = [sys.executable, "-m", "micropay", "--rpc", freelancer.world.anvil.url, "--home", str(freelancer.home),
                *freelancer.store_args, "--confirmations", "0", "serve", "--escrow", freelancer.world.escrow.address,
                "--port", "0", *args]
        super().__init__(argv, freelancer.home, PASSWORD)


def open_channel(payer: Payer, payee: str, deposit: int = 10**18) -> ChannelRecord:
    return payer.open_channel(payee, deposit)
