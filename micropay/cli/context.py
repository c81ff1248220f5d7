"""What a command runs with: the :class:`Session` built from the global flags.

Nothing here touches the network, a key file or the store until a command asks for it, so the
offline commands (``pay``, ``account``, ``export``...) stay offline. The key file is decrypted
only by commands that sign: the others read the account's address from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

import click
from eth_account.signers.local import LocalAccount
from web3 import Web3

from micropay import keystore
from micropay.chain import Chain
from micropay.channel import ETH, ChannelState, checked_address
from micropay.cli.output import Units, amount, safe, when
from micropay.cli.secrets import password
from micropay.cli.signers import kept_signer, load_signer
from micropay.config import Paths, load_deployments
from micropay.errors import (
    ChannelExpired,
    ChannelFinal,
    KeystoreError,
    MicropayValueError,
    NodeError,
    NotParticipant,
    StoreError,
)
from micropay.escrow import Escrow
from micropay.payer import Payer
from micropay.records import ChannelRecord
from micropay.store import VoucherStore
from micropay.transactions import TxOptions

__all__ = ["STARTS_STORE", "Session", "connect", "pass_session", "password"]

#: The commands that start a store where there is none: the others need the one a --store or
#: --home names to exist (a mistyped path is no new, empty store).
STARTS_STORE = frozenset({"open", "receive", "redeem", "import", "sync", "account", "deploy", "serve"})


def connect(rpc: str | None) -> Web3:
    """A Web3 for the node at ``rpc`` (no request is made here). Raises :class:`NodeError` for no
    URL, or one that is not http(s)."""
    if not rpc:
        raise NodeError("no Ethereum node: pass --rpc URL or set MICROPAY_RPC (try `micropay demo`)")
    if "://" not in rpc or urlsplit(rpc).scheme.lower() not in ("http", "https"):
        fix = f"add the scheme: --rpc http://{rpc}" if "://" not in rpc else "micropay talks to a node over HTTP"
        raise NodeError(f"--rpc {rpc} is not an http:// or https:// URL: {fix}")
    return Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 30}))


def _command_starts_store() -> bool:
    """Whether the command running (the top-level one: ``account new`` is ``account``) may start a
    store; True outside a command (the Session used as a library)."""
    ctx = click.get_current_context(silent=True)
    while ctx is not None and ctx.parent is not None and ctx.parent.parent is not None:
        ctx = ctx.parent
    return ctx is None or ctx.parent is None or ctx.command.name in STARTS_STORE


@dataclass
class Session:
    """What a command needs, built lazily from the flags (so offline commands stay offline)."""

    paths: Paths
    rpc: str | None = None
    escrow_address: str | None = None
    keystore_path: Path | None = None
    store_path: Path | str | None = None  # a str is a postgresql:// URL
    chain_id: int | None = None
    debug: bool = False
    options: TxOptions = field(default_factory=TxOptions)
    _units: dict[str, Units] = field(default_factory=lambda: {ETH: (18, "ETH")}, init=False, repr=False)
    _escrows: dict[str, Escrow] = field(default_factory=dict, init=False, repr=False)

    # -- the node ------------------------------------------------------------------------------

    @cached_property
    def _node(self) -> tuple[Web3, int]:
        """The node and its chain id, once it has answered (and is on ``--chain-id`` if given)."""
        w3 = connect(self.rpc)
        try:
            actual = Chain.connect(w3).chain_id
        except Exception as exc:  # noqa: BLE001 - requests/aiohttp/socket errors: all mean unreachable
            raise NodeError(f"cannot reach the node at {self.rpc}: {type(exc).__name__}") from None
        if self.chain_id is not None and actual != self.chain_id:
            raise NodeError(f"the node at {self.rpc} is on chain {actual}, not {self.chain_id}")
        return w3, actual

    @property
    def w3(self) -> Web3:
        return self._node[0]

    @cached_property
    def node(self) -> Chain:
        """The node, read through the library's typed proxy (balances, tokens, blocks)."""
        return Chain.connect(self.w3, self.options)

    @property
    def chain(self) -> int:
        """The chain id of the node."""
        return self._node[1]

    def live_state(self, record: ChannelRecord, after_expiry: str) -> tuple[Escrow, ChannelState]:
        """A stored channel's escrow and its state now. Raises :class:`ChannelFinal` if it is
        closed and :class:`ChannelExpired` (ending with ``after_expiry``) if it has expired."""
        escrow = self.escrow_for(record)
        state = escrow.channel(record.key)
        if state.closed:
            raise ChannelFinal(f"channel 0x{record.id.hex()[:10]} is already closed")
        if not state.claimable_next_block:
            raise ChannelExpired(f"channel 0x{record.id.hex()[:10]} expired on {when(state.expiry)}: {after_expiry}")
        return escrow, state

    def check_chain(self, record: ChannelRecord) -> None:
        """Offline commands' ``--chain-id`` check: refuse a stored channel on another chain."""
        if self.chain_id is not None and record.chain_id != self.chain_id:
            raise NodeError(f"channel 0x{record.id.hex()} is on chain {record.chain_id}, not on --chain-id "
                            f"{self.chain_id}: nothing was done")

    # -- the account ---------------------------------------------------------------------------

    @cached_property
    def key_path(self) -> Path:
        """``--keystore``, or the only key file in the data directory."""
        if self.keystore_path is not None:
            return self.keystore_path
        found = keystore.list_accounts(self.paths.keystores)
        if len(found) != 1:
            raise KeystoreError("choose a key file with --keystore PATH" if found else
                                "no key file yet: create one with `micropay account new` "
                                "(or bring yours with `micropay account import`)")
        return found[0][1]

    @cached_property
    def address(self) -> str:
        """This account's address, read from the key file without decrypting it."""
        return keystore.address_of(self.key_path)

    @cached_property
    def account(self) -> LocalAccount:
        """The key, decrypted with the password (only commands that sign ask for it)."""
        account = keystore.load_account(self.key_path, password())
        try:
            claimed = self.address
        except KeystoreError:  # a key file that names no address: the key itself says
            self.__dict__["address"] = claimed = account.address
        if account.address != claimed:
            raise KeystoreError(f"{self.key_path} says it holds {claimed} but its key is {account.address}")
        return account

    # -- the store -----------------------------------------------------------------------------

    @cached_property
    def store(self) -> VoucherStore:
        """``--store`` (whose folder must exist), or micropay.db in the data directory (created).
        Only the commands of :data:`STARTS_STORE` start a store at a path that was given."""
        self._check_store_path(must_exist=not _command_starts_store())
        if isinstance(self.store_path, str):  # a database shared by accounts: this account's rows
            return VoucherStore.open(self.store_path, account=self.address)
        if self.store_path is None:
            self.paths.home.mkdir(parents=True, exist_ok=True)
            return VoucherStore(self.paths.store)
        return VoucherStore(self.store_path)

    @property
    def read_store(self) -> VoucherStore:
        """The store, for what only reads: never started at a path that was given."""
        if "store" not in self.__dict__:
            self._check_store_path(must_exist=True)
        return self.store

    def _check_store_path(self, *, must_exist: bool) -> None:
        """Raises :class:`StoreError` for a ``--store`` folder that does not exist and, if
        ``must_exist``, a ``--store`` file that does not, or a ``--home`` with no store and no key
        file (mistyped paths). The default data directory's store is started by any command."""
        if isinstance(self.store_path, str):
            return  # a server: its database exists, or the connection says why not
        if self.store_path is not None and not self.store_path.parent.is_dir():
            raise StoreError(f"the folder {self.store_path.parent} does not exist: check the --store path "
                             "(micropay creates only its default data directory)")
        path = self.store_path or self.paths.store
        if not must_exist or path.exists():
            return
        if self.store_path is not None:
            raise StoreError(f"no store at {path} (a mistyped --store?)")
        if self.paths != Paths.default() and not self.paths.keystores.is_dir():
            raise StoreError(f"no store at {path} (a mistyped --home?)")

    # -- escrows -------------------------------------------------------------------------------

    def escrow_at(self, address: str) -> Escrow:
        """The escrow at ``address`` on the node's chain, after checking its code is the genuine
        micropay escrow (once per address)."""
        address = checked_address(address, "escrow address")
        if address not in self._escrows:
            self._escrows[address] = Escrow.at(self.w3, address, options=self.options)
        return self._escrows[address]

    def escrow_for(self, record: ChannelRecord) -> Escrow:
        """The escrow a stored channel lives on, read through this node. Raises
        :class:`NodeError` if the node is on another chain than the channel."""
        self.check_chain(record)
        if record.chain_id != self.chain:
            raise NodeError(f"channel 0x{record.id.hex()} is on chain {record.chain_id}, but the node at "
                            f"{self.rpc} is on chain {self.chain}: pass the --rpc of a chain-{record.chain_id} node")
        return self._known_escrow(record.escrow)

    def client_escrow(self) -> Escrow:
        """Where a client opens channels: ``--escrow``, or the one ``deploy`` recorded here."""
        address = self.escrow_address or load_deployments(self.paths.deployments).get(self.chain)
        if address is None:
            raise MicropayValueError(f"no escrow known on chain {self.chain}: pass --escrow ADDRESS (the one your "
                                     "freelancer uses), or deploy one with `micropay deploy`")
        return self.escrow_at(address)

    def freelancer_escrows(self) -> list[Escrow]:
        """Where a freelancer is paid: ``--escrow``, else every escrow of a received channel on the
        node's chain, else the one ``deploy`` recorded. Never suggests deploying: a freelancer
        uses the escrow its clients' payments name."""
        if self.escrow_address:
            return [self.escrow_at(self.escrow_address)]
        chain = self.chain
        stored = dict.fromkeys(r.escrow for r in self.store.channels("payee") if r.chain_id == chain)
        deployed = load_deployments(self.paths.deployments).get(chain)
        addresses = list(stored) or ([deployed] if deployed else [])
        if not addresses:
            raise MicropayValueError(f"no payment received yet on chain {chain}: receive one first (each payment "
                                     "names its escrow), or pass --escrow ADDRESS")
        return [self._known_escrow(address) for address in addresses]

    def _known_escrow(self, address: str) -> Escrow:
        """An escrow already trusted (stored channels live there, or `deploy` recorded it), unchecked."""
        if address not in self._escrows:
            self._escrows[address] = Escrow(self.w3, address, chain_id=self.chain, options=self.options)
        return self._escrows[address]

    # -- roles ---------------------------------------------------------------------------------

    def payer(self, record: ChannelRecord | None = None, *, signer: LocalAccount | None = None) -> Payer:
        """A payer on ``record``'s escrow (or the client's escrow, to open a channel), funding from
        this account's key; ``signer``, if given, is the hot key that signs a new channel's payments."""
        if record is not None and record.key.payer != self.address:  # the key file's address: no password yet
            raise NotParticipant(f"channel 0x{record.id.hex()[:10]} is funded by {record.key.payer}, not by this "
                                 f"account ({self.address}): only its payer can change its deposit or end it (a "
                                 "Safe: its owners, in the Safe app)")
        escrow = self.client_escrow() if record is None else self.escrow_for(record)
        return Payer(escrow, self.account, self.store, signer=signer)

    def offline_payer(self, record: ChannelRecord, signer_file: Path | None = None) -> Payer:
        """A payer that only signs ``record``'s vouchers: they need the store and the key that signs
        them, not a node. A channel with a hot signer signs with its key (kept by ``open
        --signer``, or ``signer_file``), and the funding key is never decrypted."""
        signer = record.key.signer
        if signer is None:
            return Payer(None, self.account, self.store)
        hot = kept_signer(self.paths, signer) if signer_file is None else load_signer(signer_file, signer)
        return Payer(None, record.key.payer, self.store, signer=hot)

    # -- amounts -------------------------------------------------------------------------------

    def units(self, token: str) -> Units:
        """Decimals and symbol of ``token``: ETH needs no node, a token asks the node once.
        Raises :class:`MicropayValueError` if there is no ERC-20 token at that address."""
        if token not in self._units:
            self._units[token] = self.node.token_units(token)
        return self._units[token]

    def show(self, value: int, token: str) -> str:
        """``value`` base units of ``token`` as people read them: "0.05 ETH"."""
        return amount(value, self.units(token))

    def symbol(self, token: str) -> str:
        return safe(self.units(token)[1])


pass_session = click.make_pass_decorator(Session)
