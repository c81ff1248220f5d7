"""What a command runs with: the :class:`Session` built from the global flags, and the password.

Nothing here touches the network, a key file or the store until a command asks for it, so the
offline commands (``pay``, ``account``, ``export``...) stay offline.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import click
from eth_account.signers.local import LocalAccount
from web3 import Web3

from micropay import keystore
from micropay.channel import ETH
from micropay.cli.output import Units, amount
from micropay.config import Paths, load_deployments
from micropay.errors import KeystoreError, MicropayValueError, NodeError
from micropay.escrow import Escrow
from micropay.payee import Payee
from micropay.payer import Payer
from micropay.records import ChannelRecord
from micropay.store import VoucherStore
from micropay.token import Token
from micropay.transactions import TxOptions


def connect(rpc: str | None) -> Web3:
    """A Web3 for the node at ``rpc`` (no request is made here)."""
    if not rpc:
        raise NodeError("no Ethereum node: pass --rpc URL or set MICROPAY_RPC (try `micropay demo`)")
    return Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 30}))


def password(confirm: bool = False) -> str:
    """``MICROPAY_PASSWORD``, or a hidden prompt on stderr (never echoed, never an argument)."""
    value = os.environ.get("MICROPAY_PASSWORD")
    if value is None:
        value = str(click.prompt("password", hide_input=True, confirmation_prompt=confirm, err=True))
    return value


@dataclass
class Session:
    """What a command needs, built lazily from the flags (so offline commands stay offline)."""

    paths: Paths
    rpc: str | None = None
    escrow_address: str | None = None
    keystore_path: Path | None = None
    store_path: Path | None = None
    chain_id: int | None = None
    debug: bool = False
    options: TxOptions = field(default_factory=TxOptions)
    _units: dict[str, Units] = field(default_factory=lambda: {ETH: (18, "ETH")}, init=False, repr=False)
    _escrows: dict[str, Escrow] = field(default_factory=dict, init=False, repr=False)

    @cached_property
    def _node(self) -> tuple[Web3, int]:
        """The node and its chain id, once it has answered (and is on ``--chain-id`` if given)."""
        w3 = connect(self.rpc)
        try:
            actual = w3.eth.chain_id
        except Exception as exc:  # noqa: BLE001 - requests/aiohttp/socket errors: all mean unreachable
            raise NodeError(f"cannot reach the node at {self.rpc}: {type(exc).__name__}") from None
        if self.chain_id is not None and actual != self.chain_id:
            raise NodeError(f"the node at {self.rpc} is on chain {actual}, not {self.chain_id}")
        return w3, actual

    @property
    def w3(self) -> Web3:
        return self._node[0]

    @property
    def chain(self) -> int:
        """The chain id of the node."""
        return self._node[1]

    @cached_property
    def escrow(self) -> Escrow:
        """``--escrow``, or the escrow ``deploy`` recorded for the node's chain."""
        w3, chain = self._node
        address = self.escrow_address or load_deployments(self.paths.deployments).get(chain)
        if address is None:
            raise MicropayValueError(f"no escrow known on chain {chain}: pass --escrow ADDRESS "
                                     "or run `micropay deploy`")
        return Escrow.at(w3, address, options=self.options)

    @cached_property
    def account(self) -> LocalAccount:
        """``--keystore``, or the only key file in the data directory, opened with the password."""
        path = self.keystore_path
        if path is None:
            found = keystore.list_accounts(self.paths.keystores)
            if len(found) != 1:
                raise KeystoreError("choose a key file with --keystore PATH" if found else
                                    "no key file yet: create one with `micropay account new`")
            path = found[0][1]
        return keystore.load_account(path, password())

    @cached_property
    def store(self) -> VoucherStore:
        return VoucherStore(self.store_path or self.paths.store)

    def payer(self) -> Payer:
        return Payer(self.escrow, self.account, self.store)

    def offline_payer(self) -> Payer:
        """A payer that only signs: vouchers need the store and the key, not a node."""
        return Payer(None, self.account, self.store)

    def payee(self) -> Payee:
        return Payee(self.escrow, self.account, self.store)

    def escrow_for(self, record: ChannelRecord) -> Escrow:
        """The escrow a stored channel lives on, read through this node. Raises
        :class:`NodeError` if the node is on another chain than the channel."""
        w3, chain = self._node
        if record.chain_id != chain:
            raise NodeError(f"channel 0x{record.id.hex()} is on chain {record.chain_id}, but the node at "
                            f"{self.rpc} is on chain {chain}: pass the --rpc of a chain-{record.chain_id} node")
        if record.escrow not in self._escrows:
            self._escrows[record.escrow] = Escrow(w3, record.escrow, chain_id=chain, options=self.options)
        return self._escrows[record.escrow]

    def units(self, token: str) -> Units:
        """Decimals and symbol of ``token``: ETH needs no node, a token asks the node once."""
        if token not in self._units:
            erc20 = Token(self.w3, token)
            self._units[token] = (erc20.decimals, erc20.symbol)
        return self._units[token]

    def show(self, value: int, token: str) -> str:
        """``value`` base units of ``token`` as people read them: "0.05 ETH"."""
        return amount(value, self.units(token))


pass_session = click.make_pass_decorator(Session)
