"""Relayed claims: a payee holding no ETH signs a request, and anyone submits it for a fee.

The payee signs the EIP-712 message ``RelayRequest(address payee, address token, bytes32 vouchers,
uint256 maxFee, uint256 deadline)`` under the escrow's domain (version "2"), where ``vouchers`` is
the keccak256 of the packed vouchers (:mod:`micropay.packing`) exactly as ``claimRelayed`` takes
them. A relayer (:class:`Relayer`) submits the request with a fee of its choosing up to ``maxFee``;
the escrow pays the relayer the fee and the payee the rest, in the same transaction. The escrow
redeems every voucher in full or reverts, and refuses a voucher above its deposit, so a request
can be used once: a replay finds nothing to claim.

A request travels as text like a voucher does: ``mpr1`` + base32(payload + 4-byte keccak
checksum), the payload being chain id (8) | escrow (20) | payee (20) | token (20) | max fee (32) |
deadline (8) | signature length (2) | signature | packed vouchers, at most :data:`MAX_PAYLOAD` bytes.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple

from micropay._utils import textform
from micropay._utils.addresses import normalize, word
from micropay._utils.crypto import keccak, unsafe_sign_digest
from micropay.channel import ChannelKey, ChannelState
from micropay.errors import (
    ChannelExpired,
    ChannelFinal,
    InvalidRelayRequest,
    InvalidSignature,
    InvalidVoucher,
    MicropayValueError,
    NothingToClaim,
    UnknownChannel,
)
from micropay.escrow import Escrow
from micropay.packing import CONTRACT_SIGNATURE, DELEGATED, expand_signature, pack_vouchers
from micropay.transactions import Receipt, Sender
from micropay.voucher import DOMAIN_NAME, DOMAIN_VERSION, EIP712_DOMAIN_FIELDS, MAX_CHAIN_ID, Voucher, domain_separator

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

__all__ = [
    "MAX_PAYLOAD",
    "RelayQuote",
    "RelayRequest",
    "RelayedVoucher",
    "Relayer",
    "authorize_relay",
    "relay_typed_data",
    "sign_relay_request",
]

_logger = logging.getLogger("micropay.relay")

TEXT_PREFIX = "mpr1"
#: The largest request payload read or built: about 460 vouchers signed by their payers' keys.
MAX_PAYLOAD = 64 * 1024
#: The longest request text read: the base32 of :data:`MAX_PAYLOAD` bytes, with room for line wraps.
MAX_TEXT = 2 * MAX_PAYLOAD
#: The longest payee signature carried (its length is two bytes): a Safe's, with many owners, fits.
MAX_SIGNATURE = 2**16 - 1
MAX_UINT256 = 2**256 - 1
#: Deadlines are unix times; bounded so the text form stays compact.
MAX_DEADLINE = 2**64 - 1
RELAY_TYPEHASH = keccak(b"RelayRequest(address payee,address token,bytes32 vouchers,uint256 maxFee,uint256 deadline)")
RELAY_FIELDS = [
    {"name": "payee", "type": "address"},
    {"name": "token", "type": "address"},
    {"name": "vouchers", "type": "bytes32"},
    {"name": "maxFee", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]
# chain id, escrow, payee, token, max fee, deadline, signature length
_HEADER = 8 + 20 + 20 + 20 + 32 + 8 + 2
#: Signature placeholder of a request being built, before it is signed.
_UNSIGNED = bytes(65)


@dataclass(frozen=True)
class RelayedVoucher:
    """One voucher inside a relay request, as a relayer sees it: its channel, amount, ledger root
    and signature (65 bytes ``r | s | v`` when the packed form carried ERC-2098, else the bytes
    the escrow checks with EIP-1271)."""

    key: ChannelKey
    amount: int
    ledger_root: bytes
    signature: bytes

    @property
    def channel_id(self) -> bytes:
        """The id of the voucher's channel."""
        return self.key.id


def _address(value: object, what: str) -> str:
    normalized = normalize(value) if isinstance(value, (str, bytes)) else None
    if normalized is None:
        raise InvalidRelayRequest(f"{what} must be an address (with a correct checksum), got {value!r:.60}")
    return normalized[0]


def _int(value: object, low: int, high: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidRelayRequest(f"{what} must be an integer in [{low}, {high}], got {value!r:.80}")
    return value


def _unpack(data: bytes, payee: str, token: str) -> tuple[RelayedVoucher, ...]:
    """The vouchers in packed bytes, read exactly as the escrow reads them. Raises
    InvalidRelayRequest for bytes that are not whole vouchers or name a channel twice."""
    found: list[RelayedVoucher] = []
    at = 0
    while at < len(data):
        flags = data[at]
        if flags & ~(DELEGATED | CONTRACT_SIGNATURE):
            raise InvalidRelayRequest(f"voucher {len(found) + 1} has unknown flags {flags}")
        end = at + 33 + (20 if flags & DELEGATED else 0) + 44
        if end > len(data):
            raise InvalidRelayRequest(f"voucher {len(found) + 1} is cut short")
        payer, salt = data[at + 1 : at + 21], int.from_bytes(data[at + 21 : at + 33], "big")
        signer = data[at + 33 : at + 53] if flags & DELEGATED else None
        amount = int.from_bytes(data[end - 44 : end - 32], "big")
        root = data[end - 32 : end]
        if flags & CONTRACT_SIGNATURE:
            size = int.from_bytes(data[end : end + 2], "big")
            at, end = end + 2, end + 2 + size
            if end > len(data):
                raise InvalidRelayRequest(f"voucher {len(found) + 1}'s signature is cut short")
            signature = data[at:end]
        else:
            at, end = end, end + 64
            if end > len(data):
                raise InvalidRelayRequest(f"voucher {len(found) + 1}'s signature is cut short")
            signature = expand_signature(data[at:end])
        try:
            key = ChannelKey(_address(payer, "payer"), payee, token, salt,
                             None if signer is None else _address(signer, "signer"))
        except MicropayValueError as exc:
            raise InvalidRelayRequest(f"voucher {len(found) + 1} names no possible channel: {exc}") from exc
        if any(v.key == key for v in found):
            raise InvalidRelayRequest(f"channel 0x{key.id.hex()} appears twice: the escrow would refuse the request")
        found.append(RelayedVoucher(key, amount, root, signature))
        at = end
    return tuple(found)


@dataclass(frozen=True)
class RelayRequest:
    """A payee's signed permission for anyone to submit ``vouchers`` (packed, as ``claimRelayed``
    takes them) to ``escrow`` on ``chain_id`` until ``deadline`` (a unix time), keeping a fee of at
    most ``max_fee`` base units of ``token`` from the payout. Immutable and validated on
    construction; the signature is not checked here (the escrow, or :class:`Relayer`, does).

    Raises :class:`InvalidRelayRequest` for a field of the wrong type or range, packed vouchers
    that are malformed, empty or name a channel twice, or a request too large to send as text."""

    chain_id: int
    escrow: str
    payee: str
    token: str
    vouchers: bytes
    max_fee: int
    deadline: int
    signature: bytes

    def __post_init__(self) -> None:
        _int(self.chain_id, 1, MAX_CHAIN_ID, "chain id")
        for name in ("escrow", "payee", "token"):
            object.__setattr__(self, name, _address(getattr(self, name), name))
        _int(self.max_fee, 0, MAX_UINT256, "max fee")
        _int(self.deadline, 1, MAX_DEADLINE, "deadline")
        for name, size in (("vouchers", MAX_PAYLOAD), ("signature", MAX_SIGNATURE)):
            value = getattr(self, name)
            if not isinstance(value, (bytes, bytearray)) or not 0 < len(value) <= size:
                got = f"{len(value):,} bytes" if isinstance(value, (bytes, bytearray)) else type(value).__name__
                raise InvalidRelayRequest(f"{name} must be 1 to {size:,} bytes, got {got}")
            object.__setattr__(self, name, bytes(value))
        if _HEADER + len(self.signature) + len(self.vouchers) > MAX_PAYLOAD:
            raise InvalidRelayRequest(f"the request is above {MAX_PAYLOAD:,} bytes: relay fewer vouchers at once")
        _ = self._entries  # parsed (and so validated) once, now

    @cached_property
    def _entries(self) -> tuple[RelayedVoucher, ...]:
        return _unpack(self.vouchers, self.payee, self.token)

    def channels(self) -> tuple[RelayedVoucher, ...]:
        """The vouchers inside, in order: each channel and the cumulative amount it redeems. Never raises."""
        return self._entries

    @property
    def vouchers_hash(self) -> bytes:
        """keccak256 of the packed vouchers: what the signed message commits to. Never raises."""
        return keccak(self.vouchers)

    def digest(self) -> bytes:
        """The EIP-712 digest the payee signs (the contract's ``relayDigest``). Never raises."""
        struct_hash = keccak(RELAY_TYPEHASH + word(self.payee) + word(self.token) + self.vouchers_hash
                             + self.max_fee.to_bytes(32, "big") + self.deadline.to_bytes(32, "big"))
        escrow = bytes.fromhex(self.escrow[2:])
        return keccak(b"\x19\x01" + domain_separator(self.chain_id, escrow) + struct_hash)

    def typed_data(self) -> dict[str, Any]:
        """The EIP-712 message a wallet signs (``eth_signTypedData_v4``). Never raises."""
        return relay_typed_data(self.chain_id, self.escrow, self.payee, self.token, self.vouchers_hash,
                                self.max_fee, self.deadline)

    # -- text form ----------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The text form's payload (see the module's notes). Never raises."""
        return (self.chain_id.to_bytes(8, "big") + bytes.fromhex(self.escrow[2:]) + bytes.fromhex(self.payee[2:])
                + bytes.fromhex(self.token[2:]) + self.max_fee.to_bytes(32, "big") + self.deadline.to_bytes(8, "big")
                + len(self.signature).to_bytes(2, "big") + self.signature + self.vouchers)

    @classmethod
    def from_bytes(cls, data: bytes) -> RelayRequest:
        """Parse :meth:`to_bytes` output. Raises :class:`InvalidRelayRequest` if it is not one request."""
        if not _HEADER < len(data) <= MAX_PAYLOAD:
            raise InvalidRelayRequest(f"a relay request is {_HEADER + 1} to {MAX_PAYLOAD:,} bytes, got {len(data):,}")
        size = int.from_bytes(data[_HEADER - 2 : _HEADER], "big")
        if _HEADER + size >= len(data):
            raise InvalidRelayRequest(f"the request's signature ({size:,} bytes) leaves no room for vouchers")
        return cls(int.from_bytes(data[:8], "big"), _address(data[8:28], "escrow"), _address(data[28:48], "payee"),
                   _address(data[48:68], "token"), data[_HEADER + size :], int.from_bytes(data[68:100], "big"),
                   int.from_bytes(data[100:108], "big"), data[_HEADER : _HEADER + size])

    def encode(self) -> str:
        """One line of lowercase letters and digits 2-7: ``mpr1`` + base32(payload + checksum). Never raises."""
        return textform.wrap(TEXT_PREFIX, self.to_bytes())

    @classmethod
    def decode(cls, text: str) -> RelayRequest:
        """Parse :meth:`encode` output; whitespace and case are ignored. The text's length is
        bounded before anything is parsed.

        Raises :class:`InvalidRelayRequest` if the text is not a string, is too long, lacks the
        ``mpr1`` prefix, was cut or mistyped (checksum), or holds no valid request."""
        try:
            payload = textform.unwrap(text, TEXT_PREFIX, "relay request", max_chars=MAX_TEXT)
        except InvalidVoucher as exc:
            raise InvalidRelayRequest(str(exc)) from exc
        return cls.from_bytes(payload)


def relay_typed_data(chain_id: int, escrow: str, payee: str, token: str, vouchers_hash: bytes, max_fee: int,
                     deadline: int) -> dict[str, Any]:
    """The full EIP-712 message of a relay request (JSON-ready), as eth-account's
    ``encode_typed_data(full_message=...)`` takes it. Nothing is validated; never raises."""
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN_FIELDS, "RelayRequest": RELAY_FIELDS},
        "primaryType": "RelayRequest",
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id,
                   "verifyingContract": escrow},
        "message": {"payee": payee, "token": token, "vouchers": "0x" + vouchers_hash.hex(), "maxFee": max_fee,
                    "deadline": deadline},
    }


def sign_relay_request(account: LocalAccount, *, chain_id: int, escrow: str, payee: str, token: str,
                       vouchers: bytes, max_fee: int, deadline: int) -> RelayRequest:
    """A relay request signed with ``account``'s key: the payee's own, or the key that the payee
    (an EIP-1271 wallet) accepts signatures of. Raises :class:`InvalidRelayRequest` as the
    :class:`RelayRequest` constructor does."""
    unsigned = RelayRequest(chain_id, escrow, payee, token, vouchers, max_fee, deadline, _UNSIGNED)
    return dataclasses.replace(unsigned, signature=unsafe_sign_digest(account, unsigned.digest()))


def authorize_relay(escrow: Escrow, account: LocalAccount,
                    claimable: Sequence[tuple[ChannelKey, Voucher, ChannelState]], *, max_fee: int,
                    deadline: int | timedelta = timedelta(hours=1)) -> RelayRequest:
    """A relay request for the ``claimable`` vouchers (one payee, one token: see
    :meth:`micropay.settling.Settler.claimable`) that a relayed claim can redeem: only vouchers
    fully covered by their deposit, on channels that stay open until the deadline, the most
    valuable first, as many as fit in one request. Each voucher left out is logged (logger
    ``micropay.relay``, level WARNING) with the reason.

    ``deadline`` is a unix time, or a ``timedelta`` from the chain's latest block time.
    Raises :class:`InvalidRelayRequest` for a deadline already past or a bad ``max_fee``,
    :class:`MicropayValueError` if ``claimable`` mixes payees or tokens, and :class:`NothingToClaim`
    when no voucher can be relayed."""
    now = escrow.now()
    until = now + int(deadline.total_seconds()) if isinstance(deadline, timedelta) else deadline
    _int(until, now + 1, MAX_DEADLINE, "deadline (a unix time after the latest block's)")
    _int(max_fee, 0, MAX_UINT256, "max fee")
    if len({(key.payee, key.token) for key, _, _ in claimable}) > 1:
        raise MicropayValueError("one relay request is for one payee and one token")
    chosen: list[tuple[ChannelKey, Voucher]] = []
    room = MAX_PAYLOAD - _HEADER - len(_UNSIGNED)
    for key, voucher, state in sorted(claimable, key=lambda c: c[2].claimed - c[1].amount):  # most valuable first
        size = len(pack_vouchers([(key, voucher)]))
        why = (f"it is for {voucher.amount}, above its deposit {state.deposit} (a settlement claims what it can of it)"
               if voucher.amount > state.deposit else
               f"the channel expires at {state.expiry}, before the deadline {until}" if state.expiry < until else
               "the request is full" if size > room else None)
        if why is not None:
            _logger.warning("channel 0x%s left out of the relay request: %s", key.id.hex(), why)
            continue
        chosen.append((key, voucher))
        room -= size
    if not chosen:
        raise NothingToClaim("no voucher can be relayed: each is above its deposit or its channel expires "
                             "before the deadline" if claimable else "no channel has anything to claim")
    first = chosen[0][0]
    return sign_relay_request(account, chain_id=escrow.chain_id, escrow=escrow.address, payee=first.payee,
                              token=first.token, vouchers=pack_vouchers(chosen), max_fee=max_fee, deadline=until)


class RelayQuote(NamedTuple):
    """What submitting a request would do: its gas limit (with margin), the total the vouchers
    pay, the payee's fee limit, and the fee that would be taken."""

    gas: int
    total: int
    max_fee: int
    fee: int


class Relayer:
    """Submits payees' relay requests to ``escrow`` from ``account``, for their fees."""

    def __init__(self, escrow: Escrow, account: Sender) -> None:
        self.escrow = escrow
        self.account = account

    def quote(self, request: RelayRequest, fee: int | None = None) -> RelayQuote:
        """Check ``request`` against the chain now and estimate its gas, sending nothing. ``fee``
        defaults to the request's ``max_fee``, capped at the payout.

        Raises :class:`InvalidRelayRequest` (another chain or escrow, expired, a voucher above its
        deposit, a fee above the limit or the payout), :class:`InvalidSignature` (not the payee's
        signature, or a voucher's), :class:`UnknownChannel`, :class:`ChannelFinal`,
        :class:`ChannelExpired`, :class:`NothingToClaim` (already redeemed: a replay)."""
        total, fee = self._check(request, fee)
        return RelayQuote(self.escrow.claim_relayed_gas(self.account, request, fee), total, request.max_fee, fee)

    def submit(self, request: RelayRequest, fee: int | None = None) -> Receipt:
        """Check ``request`` as :meth:`quote` does, then submit it and wait for the receipt. Raises
        what :meth:`quote` raises, and what the transaction raises (a revert as its micropay error)."""
        _, fee = self._check(request, fee)
        return self.escrow.claim_relayed(self.account, request, fee)

    def _check(self, request: RelayRequest, fee: int | None) -> tuple[int, int]:
        """(total payout, fee) of ``request`` now; raises as :meth:`quote` says."""
        if (request.chain_id, request.escrow) != (self.escrow.chain_id, self.escrow.address):
            raise InvalidRelayRequest(f"the request is for escrow {request.escrow} on chain {request.chain_id}, not "
                                      f"{self.escrow.address} on chain {self.escrow.chain_id}")
        if self.escrow.now() + 1 > request.deadline:
            raise InvalidRelayRequest(f"the request expired at {request.deadline}: ask the payee for a new one")
        if not self.escrow.is_signed_by(request.payee, request.digest(), request.signature):
            raise InvalidSignature(f"the request is not signed by its payee {request.payee}")
        inside = request.channels()
        total = 0
        for voucher, state in zip(inside, self.escrow.channels([v.key for v in inside]), strict=True):
            total += _payout(voucher, state)
        fee = min(request.max_fee, total) if fee is None else fee
        _int(fee, 0, request.max_fee, "the fee (at most the request's max fee)")
        if fee > total:
            raise InvalidRelayRequest(f"the fee {fee} is above the payout {total}")
        return total, fee


def _payout(voucher: RelayedVoucher, state: ChannelState | None) -> int:
    """What a relayed claim of ``voucher`` pays now. Raises the error the escrow would revert with."""
    name = f"channel 0x{voucher.channel_id.hex()}"
    if state is None:
        raise UnknownChannel(f"{name} does not exist on this escrow")
    if state.closed:
        raise ChannelFinal(f"{name} is closed")
    if not state.claimable_next_block:
        raise ChannelExpired(f"{name} expired at {state.expiry}")
    if voucher.amount > state.deposit:
        raise InvalidRelayRequest(f"{name}: the voucher for {voucher.amount} is above the deposit {state.deposit}")
    if voucher.amount <= state.claimed:
        raise NothingToClaim(f"{name}: {state.claimed} is already claimed (was the request submitted already?)")
    return voucher.amount - state.claimed
