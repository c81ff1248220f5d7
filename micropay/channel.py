"""What names a channel and what the escrow holds for it: :class:`ChannelKey`, :class:`ChannelState`.

Both are plain values: building them makes no network call. The escrow proxy
(:mod:`micropay.escrow`) reads them from the chain; the store keeps them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import Protocol

from micropay._utils.addresses import normalize, word
from micropay._utils.crypto import keccak
from micropay.errors import MicropayValueError

#: The token address that means native ETH.
ETH = "0x0000000000000000000000000000000000000000"
#: Salts are uint96 in the escrow.
MAX_SALT = 2**96 - 1


def checked_address(value: object, what: str) -> str:
    """The EIP-55 checksummed form of ``value``.

    Raises :class:`MicropayValueError` if it is not an address or its mixed-case checksum is wrong.
    """
    normalized = normalize(value) if isinstance(value, str) else None
    if normalized is None:
        raise MicropayValueError(f"{what} must be an address (with a correct checksum), got {value!r:.60}")
    return normalized[0]


@dataclass(frozen=True)
class ChannelKey:
    """What names a channel: its id is keccak256(abi.encode(payer, payee, token, salt, signer)).

    ``signer`` is the key or contract the payer named at open to sign its vouchers; ``None`` (the
    default, committed as the zero address) means the payer signs them itself.

    Raises :class:`MicropayValueError` for a malformed address, a salt outside [0, 2**96), or a
    signer that is the payer or the payee.
    """

    payer: str
    payee: str
    token: str
    salt: int
    signer: str | None = None

    def __post_init__(self) -> None:
        for name in ("payer", "payee", "token"):
            object.__setattr__(self, name, checked_address(getattr(self, name), name))
        if not isinstance(self.salt, int) or isinstance(self.salt, bool) or not 0 <= self.salt <= MAX_SALT:
            raise MicropayValueError("salt must be an integer in [0, 2**96)")
        if self.signer is not None:
            signer: str | None = checked_address(self.signer, "signer")
            if signer == ETH:
                signer = None  # the zero address is how the escrow spells "the payer signs"
            elif signer in (self.payer, self.payee):
                raise MicropayValueError("the voucher signer must be neither the payer (leave it out) nor the payee")
            object.__setattr__(self, "signer", signer)

    @cached_property
    def id(self) -> bytes:
        """keccak256(abi.encode(payer, payee, token, salt, signer)): five static 32-byte ABI words."""
        return keccak(word(self.payer) + word(self.payee) + word(self.token) + self.salt.to_bytes(32, "big")
                      + word(self.signer or ETH))

    @property
    def voucher_signer(self) -> str:
        """Whose signature a voucher on this channel needs: the delegated signer, or the payer."""
        return self.signer or self.payer

    @property
    def signer_word(self) -> str:
        """The signer as the contract takes it: the zero address when the payer signs."""
        return self.signer or ETH

    def as_tuple(self) -> tuple[str, str, str, int, str]:
        """The key as the contract's ``ChannelKey`` struct argument."""
        return (self.payer, self.payee, self.token, self.salt, self.signer_word)

    def payer_args(self) -> tuple[str, str, int, str]:
        """(payee, token, salt, signer): how the payer's own calls (topUp, extend, requestClose,
        reclaim) name the channel; the payer is the sender."""
        return (self.payee, self.token, self.salt, self.signer_word)

    @property
    def is_eth(self) -> bool:
        """Whether the channel pays in native ETH rather than an ERC-20 token."""
        return self.token == ETH


@dataclass(frozen=True)
class ChannelRef:
    """Where a channel lives: its chain, its escrow and its id there. Channel ids are unique
    only per escrow, so this, not the id alone, is what a store keys a channel by."""

    chain_id: int
    escrow: str
    channel_id: bytes

    @cached_property
    def uid(self) -> bytes:
        """keccak256(chain id (32 bytes) || escrow (20 bytes) || channel id): the store's key."""
        return keccak(self.chain_id.to_bytes(32, "big") + bytes.fromhex(self.escrow[2:]) + self.channel_id)

    def __str__(self) -> str:
        return f"channel 0x{self.channel_id.hex()} on escrow {self.escrow} (chain {self.chain_id})"


class ChannelStatus(str, enum.Enum):
    """Where a channel is in its life, as :attr:`ChannelState.status` tells it."""

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
        """The channel's id (its key's)."""
        return self.key.id

    @property
    def status(self) -> ChannelStatus:
        """Open, expired or closed, as at block time ``observed_at``."""
        if self.closed:
            return ChannelStatus.CLOSED
        return ChannelStatus.EXPIRED if self.observed_at > self.expiry else ChannelStatus.OPEN

    # A transaction sent now lands in a later block, at least one second after `observed_at`.
    @property
    def claimable_next_block(self) -> bool:
        """Whether a claim sent now would still be in time: not closed, and not expired a second later."""
        return not self.closed and self.observed_at + 1 <= self.expiry

    @property
    def reclaimable_next_block(self) -> bool:
        """Whether a reclaim sent now would be allowed: not closed, and expired by a second later."""
        return not self.closed and self.observed_at + 1 > self.expiry


#: A length of time: a ``timedelta`` or whole seconds.
Duration = timedelta | int


def to_seconds(value: Duration) -> int:
    """Whole seconds of a duration given as a ``timedelta`` or an int."""
    return int(value.total_seconds()) if isinstance(value, timedelta) else int(value)


class Ending(Protocol):
    """What tells when a channel ends: a :class:`ChannelState` or a stored channel record."""

    @property
    def expiry(self) -> int: ...

    @property
    def window(self) -> int: ...

    @property
    def closed(self) -> bool: ...


def closing(channel: Ending, now: int) -> bool:
    """A channel that ends within one challenge window from ``now``: its payer requested the close
    (or its expiry is that near anyway), so the payee's claims must land before :attr:`expiry`."""
    return not channel.closed and now <= channel.expiry <= now + channel.window
