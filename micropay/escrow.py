"""The MicropayEscrow contract: its shipped artifact, and :class:`Escrow`, a proxy to call it.

Every proxy method checks what it can in Python first (so users get a clear micropay error, not
a raw revert), estimates gas, signs locally, sends raw, waits for the receipt, and turns a
custom-error revert into the matching micropay exception.
"""

from __future__ import annotations

import enum
import functools
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from typing import Any, TypedDict

from web3 import Web3

from micropay._utils import tx
from micropay._utils.addresses import normalize, word
from micropay._utils.crypto import keccak
from micropay._utils.reverts import ErrorDecoder
from micropay._utils.tx import Sender, sender_address
from micropay.errors import (
    ArtifactError,
    ChannelExpired,
    ChannelFinal,
    ChannelNotExpired,
    ContractRevert,
    InsufficientFunds,
    InvalidSignature,
    MicropayError,
    MicropayValueError,
    NotParticipant,
    NothingToClaim,
    UnknownChannel,
    UnknownEscrow,
)
from micropay.types import MAX_AMOUNT
from micropay.voucher import Voucher

ARTIFACT_NAME = "MicropayEscrow.json"


class CompilerInfo(TypedDict):
    version: str
    settings: dict[str, Any]


class EscrowArtifact(TypedDict):
    contractName: str
    sourceName: str
    sourceSha256: str
    compiler: CompilerInfo
    abi: list[dict[str, Any]]
    bytecode: str
    deployedBytecode: str
    immutableReferences: list[list[int]]


@functools.cache
def _artifact_text() -> str:
    try:
        return (resources.files("micropay") / "artifacts" / ARTIFACT_NAME).read_text(encoding="utf-8")
    except OSError as exc:
        raise ArtifactError(f"contract artifact {ARTIFACT_NAME} is missing from the micropay package") from exc


def load_artifact() -> EscrowArtifact:
    """ABI, bytecode and compiler settings of the shipped escrow (a fresh copy each call)."""
    try:
        artifact: EscrowArtifact = json.loads(_artifact_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"contract artifact {ARTIFACT_NAME} is corrupt: {exc}") from exc
    missing = {"abi", "bytecode", "deployedBytecode", "immutableReferences"} - artifact.keys()
    if missing:
        raise ArtifactError(f"contract artifact {ARTIFACT_NAME} lacks {sorted(missing)}")
    return artifact


def matches_artifact(deployed_code: bytes) -> bool:
    """True if on-chain runtime code is the shipped escrow, ignoring the immutable values
    (this deployment's address, chain id and domain separator) that the constructor fills in."""
    artifact = load_artifact()
    expected = bytearray.fromhex(artifact["deployedBytecode"].removeprefix("0x"))
    actual = bytearray(deployed_code)
    if len(actual) != len(expected):
        return False
    for start, length in artifact["immutableReferences"]:
        actual[start : start + length] = expected[start : start + length] = bytes(length)
    return actual == expected


ETH = "0x0000000000000000000000000000000000000000"
MAX_SALT = 2**96 - 1


def _address(value: object, what: str) -> str:
    normalized = normalize(value) if isinstance(value, str) else None
    if normalized is None:
        raise MicropayValueError(f"{what} must be an address (with a correct checksum), got {value!r:.60}")
    return normalized[0]


@dataclass(frozen=True)
class ChannelKey:
    """What names a channel: its id is keccak256(abi.encode(payer, payee, token, salt))."""

    payer: str
    payee: str
    token: str
    salt: int

    def __post_init__(self) -> None:
        for name in ("payer", "payee", "token"):
            object.__setattr__(self, name, _address(getattr(self, name), name))
        if not isinstance(self.salt, int) or isinstance(self.salt, bool) or not 0 <= self.salt <= MAX_SALT:
            raise MicropayValueError("salt must be an integer in [0, 2**96)")

    @cached_property
    def id(self) -> bytes:
        """keccak256(abi.encode(payer, payee, token, salt)): four static 32-byte ABI words."""
        return keccak(word(self.payer) + word(self.payee) + word(self.token) + self.salt.to_bytes(32, "big"))

    def as_tuple(self) -> tuple[str, str, str, int]:
        return (self.payer, self.payee, self.token, self.salt)

    @property
    def is_eth(self) -> bool:
        return self.token == ETH


class ChannelStatus(str, enum.Enum):
    OPEN = "open"
    EXPIRED = "expired"  # past expiry: the payee can no longer claim, the payer may reclaim
    CLOSED = "closed"  # closed by the payee or reclaimed by the payer: final


@dataclass(frozen=True)
class ChannelState:
    """A channel as the escrow holds it, at block time ``observed_at``."""

    key: ChannelKey
    deposit: int
    claimed: int
    expiry: int
    window: int
    closed: bool
    observed_at: int

    @property
    def id(self) -> bytes:
        return self.key.id

    payer = property(lambda self: self.key.payer)
    payee = property(lambda self: self.key.payee)
    token = property(lambda self: self.key.token)

    @property
    def status(self) -> ChannelStatus:
        if self.closed:
            return ChannelStatus.CLOSED
        return ChannelStatus.EXPIRED if self.observed_at > self.expiry else ChannelStatus.OPEN

    # A transaction sent now lands in a later block, at least one second after `observed_at`.
    @property
    def claimable_next_block(self) -> bool:
        return not self.closed and self.observed_at + 1 <= self.expiry

    @property
    def reclaimable_next_block(self) -> bool:
        return not self.closed and self.observed_at + 1 > self.expiry



_REVERT_TO_ERROR: dict[str, type[MicropayError]] = {
    "ChannelNotFound": UnknownChannel,
    "ChannelFinal": ChannelFinal,
    "ChannelExpired": ChannelExpired,
    "ChannelNotExpired": ChannelNotExpired,
    "NotPayer": NotParticipant,
    "NotPayee": NotParticipant,
    "NothingToClaim": NothingToClaim,
    "InvalidSignature": InvalidSignature,
    "InvalidPayee": MicropayValueError,
    "InvalidAmount": MicropayValueError,
    "InvalidExpiry": MicropayValueError,
    "InvalidWindow": MicropayValueError,
    "AmountTooLarge": MicropayValueError,
    "ERC20InsufficientBalance": InsufficientFunds,
    "ERC20InsufficientAllowance": InsufficientFunds,
}


def _map_revert(revert: ContractRevert) -> MicropayError:
    error_class = _REVERT_TO_ERROR.get(revert.name)
    if error_class is None:
        return revert
    error = error_class(str(revert))
    error.revert = revert  # type: ignore[attr-defined]
    return error


class Escrow:
    """A proxy to one deployed MicropayEscrow. Creating it makes no network calls."""

    MIN_WINDOW = 3_600
    MAX_WINDOW = 30 * 86_400

    def __init__(self, w3: Web3, address: str, *, from_block: int = 0, chain_id: int | None = None,
                 options: tx.TxOptions | None = None) -> None:
        """``chain_id``, if given, is trusted instead of asked from the node (it is known offline).
        ``options`` set the fee cap, confirmations and timeout of every transaction."""
        artifact = load_artifact()
        if chain_id is not None:
            self.__dict__["chain_id"] = chain_id
        self.w3 = w3
        self.address = _address(address, "escrow address")
        self.contract = w3.eth.contract(address=self.address, abi=artifact["abi"])
        self.from_block = from_block
        self.options = options or tx.TxOptions()
        self._decoder = ErrorDecoder(artifact["abi"] + _ERC20_ERRORS)
        self._keys: dict[bytes, ChannelKey] = {}

    # -- construction ------------------------------------------------------------------

    @classmethod
    def deploy(cls, w3: Web3, account: Sender, **kwargs: Any) -> Escrow:
        artifact = load_artifact()
        factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        receipt = tx.send(w3, account, factory.constructor(), decoder=ErrorDecoder(artifact["abi"]),
                          map_revert=_map_revert, options=kwargs.get("options") or tx.TxOptions())
        return cls(w3, receipt.contractAddress, from_block=receipt.blockNumber, **kwargs)

    @classmethod
    def at(cls, w3: Web3, address: str, **kwargs: Any) -> Escrow:
        """The escrow at ``address``, after checking the code there is the shipped contract."""
        escrow = cls(w3, address, **kwargs)
        code = bytes(w3.eth.get_code(escrow.address))
        if not code:
            raise UnknownEscrow(f"no contract at {escrow.address} on chain {w3.eth.chain_id}")
        if not matches_artifact(code):
            raise UnknownEscrow(f"the contract at {escrow.address} is not the micropay escrow this version ships")
        return escrow

    @cached_property
    def chain_id(self) -> int:
        return self.w3.eth.chain_id

    # -- reads ---------------------------------------------------------------------------

    def now(self) -> int:
        return self.w3.eth.get_block("latest")["timestamp"]

    def key(self, channel_id: bytes) -> ChannelKey:
        """The key of a channel, from its ChannelOpened event (cached: keys never change)."""
        key = self._keys.get(channel_id)
        if key is None:
            logs = self.contract.events.ChannelOpened.get_logs(
                argument_filters={"channelId": channel_id}, from_block=self.from_block
            )
            if not logs:
                raise UnknownChannel(f"no channel 0x{channel_id.hex()} on escrow {self.address}")
            args = logs[0]["args"]
            key = ChannelKey(args["payer"], args["payee"], args["token"], args["salt"])
            self._keys[channel_id] = key
        return key

    def channel(self, channel_id: bytes | ChannelKey) -> ChannelState:
        key = channel_id if isinstance(channel_id, ChannelKey) else self.key(bytes(channel_id))
        block = self.w3.eth.get_block("latest")
        deposit, claimed, expiry, window, closed = self.contract.functions.channel(key.id).call(
            block_identifier=block["number"]
        )
        if expiry == 0:
            raise UnknownChannel(f"no channel 0x{key.id.hex()} on escrow {self.address}")
        return ChannelState(key, deposit, claimed, expiry, window, closed, block["timestamp"])

    def owed(self, account: str, token: str = ETH) -> int:
        return self.contract.functions.owed(_address(account, "account"), _address(token, "token")).call()

    def digest(self, voucher: Voucher) -> bytes:
        return self.contract.functions.voucherDigest(voucher.channel_id, voucher.amount, voucher.ledger_root).call()

    # -- payer ---------------------------------------------------------------------------

    def open(self, sender: Sender, payee: str, deposit: int, *, token: str | None = None, salt: int | None = None,
             expiry: int, window: int = 86_400) -> tuple[ChannelKey, Any]:
        """Open a channel; for a token, the escrow must already be approved for ``deposit``."""
        payer = sender_address(sender)
        token = ETH if token is None else _address(token, "token")
        payee = _address(payee, "payee")
        if payee in (payer, ETH):
            raise MicropayValueError("the payee must be another, non-zero address")
        _check_amount(deposit, "deposit")
        if not self.MIN_WINDOW <= window <= self.MAX_WINDOW:
            raise MicropayValueError(f"window must be {self.MIN_WINDOW}..{self.MAX_WINDOW} seconds, got {window}")
        if not isinstance(expiry, int) or expiry >= 2**32:
            raise MicropayValueError("expiry must be a unix time before 2106")
        if expiry <= self.now():
            raise MicropayValueError("expiry must be in the future")
        if salt is None:
            salt = secrets.randbits(64)
        key = ChannelKey(payer, payee, token, salt)
        if self.contract.functions.channel(key.id).call()[2] != 0:
            raise MicropayValueError(f"a channel with salt {salt} already exists to this payee; use another salt")
        if key.is_eth:
            balance = self.w3.eth.get_balance(payer)
            if balance < deposit:
                raise InsufficientFunds(f"{payer} holds {balance} wei, less than the deposit {deposit} (plus gas)")
            fn, value = self.contract.functions.open(payee, salt, expiry, window), deposit
        else:
            fn, value = self.contract.functions.openToken(payee, token, salt, deposit, expiry, window), 0
        receipt = self._send(sender, fn, value)
        self._keys[key.id] = key
        return key, receipt

    def top_up(self, sender: Sender, key: ChannelKey, amount: int) -> Any:
        self._require_role(sender, key.payer, "payer")
        _check_amount(amount, "top-up")
        state = self._live(key)
        if state.deposit + amount > MAX_AMOUNT:
            raise MicropayValueError("the deposit would exceed the escrow's maximum (2**96 - 1)")
        if not state.claimable_next_block:
            raise ChannelExpired("the channel has expired; reclaim it and open a new one")
        return self._send(sender, self.contract.functions.topUp(key.as_tuple(), amount), amount if key.is_eth else 0)

    def extend(self, sender: Sender, key: ChannelKey, new_expiry: int) -> Any:
        self._require_role(sender, key.payer, "payer")
        state = self._live(key)
        if new_expiry <= state.expiry or new_expiry >= 2**32:
            raise MicropayValueError(f"the new expiry must be later than {state.expiry} (and before 2106)")
        return self._send(sender, self.contract.functions.extend(key.as_tuple(), new_expiry))

    def request_close(self, sender: Sender, key: ChannelKey) -> Any:
        self._require_role(sender, key.payer, "payer")
        if not self._live(key).claimable_next_block:
            raise ChannelExpired("the channel already expired: reclaim instead")
        return self._send(sender, self.contract.functions.requestClose(key.as_tuple()))

    def reclaim(self, sender: Sender, key: ChannelKey) -> Any:
        self._require_role(sender, key.payer, "payer")
        state = self._live(key)
        if not state.reclaimable_next_block:
            raise ChannelNotExpired(f"the payee may claim until {state.expiry}; reclaim after that")
        return self._send(sender, self.contract.functions.reclaim(key.as_tuple()))

    # -- payee (or anyone) ---------------------------------------------------------------

    def claim(self, sender: Sender, key: ChannelKey, voucher: Voucher) -> Any:
        self._check_voucher(key, voucher)
        state = self._live(key)
        if not state.claimable_next_block:
            raise ChannelExpired(f"the channel expired at {state.expiry}: its vouchers can no longer be claimed")
        if min(voucher.amount, state.deposit) <= state.claimed:
            raise NothingToClaim(f"{state.claimed} is already claimed; this voucher adds nothing")
        fn = self.contract.functions.claim(key.as_tuple(), voucher.amount, voucher.ledger_root, voucher.signature)
        return self._send(sender, fn)

    def claim_many(self, sender: Sender, payee: str, token: str, items: Sequence[tuple[ChannelKey, Voucher]]) -> Any:
        payee, token = _address(payee, "payee"), _address(token, "token")
        for key, voucher in items:
            if (key.payee, key.token) != (payee, token):
                raise MicropayValueError("every voucher in one claimMany must be for the same payee and token")
            self._check_voucher(key, voucher)
        fn = self.claim_many_call(payee, token, items)
        return self._send(sender, fn)

    def claim_many_call(self, payee: str, token: str, items: Sequence[tuple[ChannelKey, Voucher]]) -> Any:
        entries = [(k.payer, k.salt, v.amount, v.ledger_root, v.signature) for k, v in items]
        return self.contract.functions.claimMany(payee, token, entries)

    def close(self, sender: Sender, key: ChannelKey, voucher: Voucher | None = None) -> Any:
        self._require_role(sender, key.payee, "payee")
        self._live(key)
        if voucher is None:
            fn = self.contract.functions.close(key.as_tuple(), 0, bytes(32), b"")
        else:
            self._check_voucher(key, voucher)
            fn = self.contract.functions.close(key.as_tuple(), voucher.amount, voucher.ledger_root, voucher.signature)
        return self._send(sender, fn)

    def withdraw(self, sender: Sender, token: str = ETH, to: str | None = None) -> Any:
        account = sender_address(sender)
        to = account if to is None else _address(to, "recipient")
        if self.owed(account, token) == 0:
            raise NothingToClaim("nothing is owed to this account in this token")
        return self._send(sender, self.contract.functions.withdraw(_address(token, "token"), to))

    # -- events --------------------------------------------------------------------------

    def events(self, name: str, receipt: Any) -> list[Any]:
        from web3.logs import DISCARD

        return list(getattr(self.contract.events, name)().process_receipt(receipt, errors=DISCARD))

    # -- internals -----------------------------------------------------------------------

    def _send(self, sender: Sender, fn: Any, value: int = 0) -> Any:
        return tx.send(self.w3, sender, fn, value=value, decoder=self._decoder, map_revert=_map_revert,
                       options=self.options)

    def _live(self, key: ChannelKey) -> ChannelState:
        state = self.channel(key)
        if state.closed:
            raise ChannelFinal(f"channel 0x{key.id.hex()} is closed")
        return state

    def _check_voucher(self, key: ChannelKey, voucher: Voucher) -> None:
        voucher.verify(key.payer, chain_id=self.chain_id, escrow=self.address)
        if voucher.channel_id != key.id:
            raise InvalidSignature("the voucher is for another channel")

    @staticmethod
    def _require_role(sender: Sender, expected: str, role: str) -> None:
        if sender_address(sender) != expected:
            raise NotParticipant(f"only the channel's {role} ({expected}) can do this")


def _check_amount(amount: object, what: str) -> None:
    if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount <= MAX_AMOUNT:
        raise MicropayValueError(f"{what} must be a positive integer in base units, at most 2**96 - 1")


# OpenZeppelin ERC-20 custom errors, so token reverts during open/topUp decode too.
_ERC20_ERRORS: list[dict[str, Any]] = [
    {"type": "error", "name": "ERC20InsufficientBalance", "inputs": [
        {"name": "sender", "type": "address"}, {"name": "balance", "type": "uint256"},
        {"name": "needed", "type": "uint256"}]},
    {"type": "error", "name": "ERC20InsufficientAllowance", "inputs": [
        {"name": "spender", "type": "address"}, {"name": "allowance", "type": "uint256"},
        {"name": "needed", "type": "uint256"}]},
]
