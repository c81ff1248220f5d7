"""A delegated inbox key: the payee's signature that another key may acknowledge payments for it.

A marketplace that hosts freelancers' inboxes should not hold their keys. The payee signs, once,
EIP-712 ``InboxDelegation(address payee, address key, uint64 until)`` under the escrow's domain
(chain id, escrow address): "``key`` may acknowledge payments to me on this escrow until
``until``". The inbox then signs each acknowledgment with ``key`` and sends the delegation with it;
a client accepts an acknowledgment signed by the payee, or by a key the payee delegated to on that
escrow that has not expired (:meth:`micropay.acknowledgment.Acknowledgment.verify`). A delegation
gives no power over money: it can only say that a payment is held. The freelancer still settles
with their own key, or through a relay request.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from eth_account.signers.local import LocalAccount

from micropay._utils.crypto import keccak, unsafe_sign_digest
from micropay.documents import (
    check_key_signature,
    checked_int,
    escrow_digest,
    escrow_typed_data,
    fields,
    hex_bytes,
    plan_address,
    recovered_signer,
)
from micropay.errors import InvalidAcknowledgment, MicropayValueError
from micropay.voucher import ECDSA_SIGNATURE_SIZE, MAX_CHAIN_ID

DELEGATION_TYPE = "InboxDelegation(address payee,address key,uint64 until)"
DELEGATION_TYPEHASH = keccak(DELEGATION_TYPE.encode())
DELEGATION_FIELDS = [{"name": "payee", "type": "address"}, {"name": "key", "type": "address"},
                     {"name": "until", "type": "uint64"}]
_KEYS = {"micropay", "chainId", "escrow", "payee", "key", "until", "signature"}


@dataclass(frozen=True)
class InboxDelegation:
    """``payee``'s signature that ``key`` may acknowledge payments on ``escrow`` of ``chain_id``
    until ``until`` (Unix time). Raises :class:`InvalidAcknowledgment` for a field of the wrong type or range."""

    chain_id: int
    escrow: str
    payee: str
    key: str
    until: int
    signature: bytes

    def __post_init__(self) -> None:
        try:
            checked_int(self.chain_id, "chain id", 1, MAX_CHAIN_ID)
            checked_int(self.until, "until", 0, 2**64 - 1)
            for name in ("escrow", "payee", "key"):
                object.__setattr__(self, name, plan_address(getattr(self, name), name))
            check_key_signature(self.signature, "a delegation")
        except InvalidAcknowledgment:
            raise
        except MicropayValueError as exc:
            raise InvalidAcknowledgment(f"bad inbox delegation: {exc}") from None

    def digest(self) -> bytes:
        """The EIP-712 digest the payee signed."""
        return delegation_digest(self.chain_id, self.escrow, self.payee, self.key, self.until)

    @cached_property
    def signer(self) -> str:
        """Who signed it. Raises :class:`InvalidAcknowledgment` if it recovers to no one."""
        return recovered_signer(self.digest(), self.signature, "delegation")

    def verify(self, payee: str, key: str, *, chain_id: int, escrow: str, now: int) -> None:
        """Raise :class:`InvalidAcknowledgment` unless ``payee`` signed this for ``key`` on that
        escrow and it runs at least until ``now``."""
        if (self.chain_id, self.escrow) != (chain_id, plan_address(escrow, "escrow")):
            raise InvalidAcknowledgment("the inbox delegation is for another escrow")
        if (self.payee, self.key) != (plan_address(payee, "payee"), plan_address(key, "key")):
            raise InvalidAcknowledgment(f"no delegation from the payee {payee} to the key {key}")
        if self.signer != self.payee:
            raise InvalidAcknowledgment(f"the inbox delegation is signed by {self.signer}, not by the payee")
        if self.until < now:
            raise InvalidAcknowledgment(f"the inbox delegation to {self.key} ran out at {self.until}")

    def typed_data(self) -> dict[str, object]:
        """The EIP-712 message, as ``eth_signTypedData_v4`` and eth-account take it."""
        return escrow_typed_data(self.chain_id, self.escrow, "InboxDelegation", {"InboxDelegation": DELEGATION_FIELDS},
                                 {"payee": self.payee, "key": self.key, "until": self.until})

    def to_dict(self) -> dict[str, object]:
        """The JSON form an inbox sends with its acknowledgments."""
        return {"micropay": "inbox-delegation", "chainId": self.chain_id, "escrow": self.escrow, "payee": self.payee,
                "key": self.key, "until": self.until, "signature": "0x" + self.signature.hex()}

    @classmethod
    def from_dict(cls, data: object) -> InboxDelegation:
        """Parse the JSON form. Raises :class:`InvalidAcknowledgment` for anything malformed."""
        try:
            values = fields(data, _KEYS, "inbox delegation")
            if values["micropay"] != "inbox-delegation":
                raise InvalidAcknowledgment("not an inbox delegation")
            return cls(checked_int(values["chainId"], "chain id", 1, MAX_CHAIN_ID),
                       plan_address(values["escrow"], "escrow"), plan_address(values["payee"], "payee"),
                       plan_address(values["key"], "key"), checked_int(values["until"], "until", 0, 2**64 - 1),
                       hex_bytes(values["signature"], ECDSA_SIGNATURE_SIZE, "signature"))
        except InvalidAcknowledgment:
            raise
        except MicropayValueError as exc:
            raise InvalidAcknowledgment(f"bad inbox delegation: {exc}") from None


def delegation_digest(chain_id: int, escrow: str, payee: str, key: str, until: int) -> bytes:
    """The EIP-712 digest of a delegation (fields unchecked: callers check them)."""
    struct_hash = keccak(DELEGATION_TYPEHASH + bytes(12) + bytes.fromhex(payee[2:]) + bytes(12)
                         + bytes.fromhex(key[2:]) + until.to_bytes(32, "big"))
    return escrow_digest(chain_id, escrow, struct_hash)


def delegate_inbox(payee: LocalAccount, key: str, *, chain_id: int, escrow: str, until: int) -> InboxDelegation:
    """The payee's delegation of acknowledgments on ``escrow`` to ``key`` until ``until``.
    Raises :class:`InvalidAcknowledgment` for bad fields."""
    escrow, key = plan_address(escrow, "escrow"), plan_address(key, "key")
    checked_int(until, "until", 0, 2**64 - 1)
    digest = delegation_digest(chain_id, escrow, payee.address, key, until)
    return InboxDelegation(chain_id, escrow, payee.address, key, until, unsafe_sign_digest(payee, digest))
