"""Acknowledgments: the freelancer's signed word that a payment is held.

When an inbox (``micropay serve``) has stored a payment durably, it answers with the payee's
EIP-712 signature over ``Acknowledgment(bytes32 channelId, uint256 cumulativeAmount, bytes32
ledgerRoot)`` under the escrow's own domain (chain id and escrow address): the client's proof that
the freelancer holds a voucher for that cumulative amount and that ledger. Its type differs from
the voucher's only in name, so the two digests never coincide: an acknowledgment cannot be
redeemed, and a voucher cannot pass as an acknowledgment.

Tests hold the digest equal to eth-account's ``encode_typed_data``. Signing uses libsecp256k1
over a digest built here (:func:`~micropay._utils.crypto.unsafe_sign_digest`): one signature per
acknowledged payment, so it must be cheap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property

from eth_account.signers.local import LocalAccount

from micropay._utils.crypto import keccak, unsafe_sign_digest
from micropay.delegation import InboxDelegation
from micropay.documents import (
    check_key_signature,
    checked_int,
    decimal,
    escrow_digest,
    escrow_typed_data,
    fields,
    hex_bytes,
    plan_address,
    recovered_signer,
)
from micropay.errors import InvalidAcknowledgment, MicropayValueError
from micropay.types import MAX_AMOUNT
from micropay.voucher import ECDSA_SIGNATURE_SIZE, MAX_CHAIN_ID

ACKNOWLEDGMENT_TYPE = "Acknowledgment(bytes32 channelId,uint256 cumulativeAmount,bytes32 ledgerRoot)"
ACKNOWLEDGMENT_TYPEHASH = keccak(ACKNOWLEDGMENT_TYPE.encode())
ACKNOWLEDGMENT_FIELDS = [{"name": "channelId", "type": "bytes32"}, {"name": "cumulativeAmount", "type": "uint256"},
                         {"name": "ledgerRoot", "type": "bytes32"}]
_KEYS = {"micropay", "chainId", "escrow", "channelId", "cumulativeAmount", "ledgerRoot", "signer", "signature"}


@dataclass(frozen=True)
class Acknowledgment:
    """The payee's (or its inbox key's) signature that it holds ``amount`` on ``channel_id`` with
    ledger ``ledger_root``. Raises :class:`InvalidAcknowledgment` if a field is of the wrong type or range."""

    chain_id: int
    escrow: str
    channel_id: bytes
    amount: int
    ledger_root: bytes
    signature: bytes
    #: When an inbox key, not the payee, signed it: the payee's delegation to that key.
    delegation: InboxDelegation | None = None

    def __post_init__(self) -> None:
        try:
            if self.delegation is not None and not isinstance(self.delegation, InboxDelegation):
                raise InvalidAcknowledgment("an acknowledgment's delegation is an InboxDelegation")
            checked_int(self.chain_id, "chain id", 1, MAX_CHAIN_ID)
            checked_int(self.amount, "cumulative amount", 0, MAX_AMOUNT)
            object.__setattr__(self, "escrow", plan_address(self.escrow, "escrow"))
            for value, what in ((self.channel_id, "channel id"), (self.ledger_root, "ledger root")):
                if not isinstance(value, bytes) or len(value) != 32:
                    raise InvalidAcknowledgment(f"an acknowledgment's {what} is 32 bytes")
            check_key_signature(self.signature, "an acknowledgment")
        except InvalidAcknowledgment:
            raise
        except MicropayValueError as exc:
            raise InvalidAcknowledgment(f"bad acknowledgment: {exc}") from None

    def digest(self) -> bytes:
        """The EIP-712 digest the signature is over."""
        return acknowledgment_digest(self.chain_id, self.escrow, self.channel_id, self.amount, self.ledger_root)

    @cached_property
    def signer(self) -> str:
        """The checksummed address that signed it. Raises :class:`InvalidAcknowledgment` if it recovers to no one."""
        return recovered_signer(self.digest(), self.signature, "acknowledgment")

    def verify(self, payee: str, *, chain_id: int, escrow: str, channel_id: bytes, now: int | None = None) -> None:
        """Raise :class:`InvalidAcknowledgment` unless this is signed for that channel by ``payee``,
        or by a key ``payee`` delegated to on that escrow, running at least until ``now`` (default: now)."""
        if (self.chain_id, self.escrow, self.channel_id) != (chain_id, plan_address(escrow, "escrow"), channel_id):
            raise InvalidAcknowledgment("the acknowledgment is for another channel")
        if self.signer == plan_address(payee, "payee"):
            return
        if self.delegation is None:
            raise InvalidAcknowledgment(f"the acknowledgment is signed by {self.signer}, not by the payee {payee}")
        self.delegation.verify(payee, self.signer, chain_id=chain_id, escrow=escrow,
                               now=int(time.time()) if now is None else now)

    def typed_data(self) -> dict[str, object]:
        """The EIP-712 message, as ``eth_signTypedData_v4`` and eth-account take it."""
        types = {"Acknowledgment": ACKNOWLEDGMENT_FIELDS}
        return escrow_typed_data(self.chain_id, self.escrow, "Acknowledgment", types,
                                 {"channelId": "0x" + self.channel_id.hex(), "cumulativeAmount": self.amount,
                                  "ledgerRoot": "0x" + self.ledger_root.hex()})

    def to_dict(self) -> dict[str, object]:
        """The JSON form an inbox answers with (amounts as decimal strings, bytes as 0x-hex)."""
        return {"micropay": "acknowledgment", "chainId": self.chain_id, "escrow": self.escrow,
                "channelId": "0x" + self.channel_id.hex(), "cumulativeAmount": str(self.amount),
                "ledgerRoot": "0x" + self.ledger_root.hex(), "signer": self.signer,
                "signature": "0x" + self.signature.hex(),
                **({"delegation": self.delegation.to_dict()} if self.delegation is not None else {})}

    @classmethod
    def from_dict(cls, data: object) -> Acknowledgment:
        """Parse the JSON form. Raises :class:`InvalidAcknowledgment` for anything malformed, or
        whose ``signer`` is not who the signature recovers to."""
        try:
            delegated = isinstance(data, dict) and "delegation" in data
            values = fields(data, _KEYS | {"delegation"} if delegated else _KEYS, "acknowledgment")
            if values["micropay"] != "acknowledgment":
                raise InvalidAcknowledgment("not an acknowledgment")
            ack = cls(checked_int(values["chainId"], "chain id", 1, MAX_CHAIN_ID),
                      plan_address(values["escrow"], "escrow"), hex_bytes(values["channelId"], 32, "channel id"),
                      decimal(values["cumulativeAmount"], "cumulative amount"),
                      hex_bytes(values["ledgerRoot"], 32, "ledger root"),
                      hex_bytes(values["signature"], ECDSA_SIGNATURE_SIZE, "signature"),
                      InboxDelegation.from_dict(values["delegation"]) if delegated else None)
            if ack.signer != plan_address(values["signer"], "signer"):
                raise InvalidAcknowledgment("the acknowledgment's signer is not who signed it")
        except InvalidAcknowledgment:
            raise
        except MicropayValueError as exc:
            raise InvalidAcknowledgment(f"bad acknowledgment: {exc}") from None
        return ack


def acknowledgment_digest(chain_id: int, escrow: str, channel_id: bytes, amount: int, ledger_root: bytes) -> bytes:
    """The EIP-712 digest of an acknowledgment (fields unchecked: callers check them)."""
    struct_hash = keccak(ACKNOWLEDGMENT_TYPEHASH + channel_id + amount.to_bytes(32, "big") + ledger_root)
    return escrow_digest(chain_id, escrow, struct_hash)


def sign_acknowledgment(account: LocalAccount, *, chain_id: int, escrow: str, channel_id: bytes, amount: int,
                        ledger_root: bytes, delegation: InboxDelegation | None = None) -> Acknowledgment:
    """The acknowledgment of a payment held, signed by ``account`` (the payee, or its inbox key).
    Sign only after the payment is durably stored. Raises :class:`InvalidAcknowledgment` for bad fields."""
    escrow = plan_address(escrow, "escrow")
    checked_int(amount, "cumulative amount", 0, MAX_AMOUNT)
    digest = acknowledgment_digest(chain_id, escrow, channel_id, amount, ledger_root)
    return Acknowledgment(chain_id, escrow, channel_id, amount, ledger_root, unsafe_sign_digest(account, digest),
                          delegation)
