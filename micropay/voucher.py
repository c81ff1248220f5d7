"""Vouchers: EIP-712 signed promises of a channel's new cumulative amount.

A voucher is the payment. The payer signs ``Voucher(bytes32 channelId, uint256 cumulativeAmount,
bytes32 ledgerRoot)`` under the escrow's domain ``{name: "MicropayEscrow", version: "2", chainId,
verifyingContract}``; the payee checks it, keeps the best one, and redeems it on chain.

The digest is built from a cached domain separator and the type hash, then signed and recovered
with libsecp256k1 (coincurve). Tests hold it byte for byte equal to eth-account's
``encode_typed_data`` + ``Account.sign_message`` and to the contract's ``voucherDigest``.

A signature is either a key's: 65 bytes ``r || s || v`` with ``v`` in {27, 28} and low ``s``,
exactly what the escrow accepts (wallets that report ``v`` as 0/1 are normalised by
:meth:`Voucher.from_typed_signature`); or a contract's (EIP-1271, a Safe's owners' signatures):
any other length from 1 to :data:`MAX_CONTRACT_SIGNATURE` bytes, which only the signer contract
can judge, so only the escrow checks it (:meth:`micropay.escrow.Escrow.is_signed_by`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.address import is_address

from micropay._utils import textform
from micropay._utils.addresses import normalize
from micropay._utils.crypto import SECP256K1_HALF_N, SECP256K1_N, keccak, recover_address, unsafe_sign_digest
from micropay.errors import DomainMismatch, InvalidSignature, InvalidVoucher
from micropay.types import MAX_AMOUNT, VoucherJSON

DOMAIN_NAME = "MicropayEscrow"
DOMAIN_VERSION = "2"
EIP712_DOMAIN_FIELDS = [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                        {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}]
VOUCHER_FIELDS = [{"name": "channelId", "type": "bytes32"}, {"name": "cumulativeAmount", "type": "uint256"},
                  {"name": "ledgerRoot", "type": "bytes32"}]
DOMAIN_TYPEHASH = keccak(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
VOUCHER_TYPEHASH = keccak(b"Voucher(bytes32 channelId,uint256 cumulativeAmount,bytes32 ledgerRoot)")

#: Chain ids are bounded so the text form stays compact (EIP-2294 proposes < 2**63 anyway).
MAX_CHAIN_ID = 2**64 - 1

#: An ECDSA signature's length; any other is a contract's (EIP-1271), at most this long.
ECDSA_SIGNATURE_SIZE = 65
MAX_CONTRACT_SIGNATURE = 4096

TEXT_PREFIX = "mpv1"
#: The fixed part of :meth:`Voucher.to_bytes` before the signature: chain id (8), escrow (20),
#: channel id (32), amount (12), ledger root (32).
HEADER_SIZE = 104


#: A :class:`Voucher`'s constructor arguments in order, as read from its bytes (not yet validated:
#: ``Voucher(*fields)`` validates them): chain id, escrow, channel id, amount, ledger root, signature.
VoucherFields = tuple[int, str, bytes, int, bytes, bytes]


@functools.lru_cache(maxsize=256)
def domain_separator(chain_id: int, escrow: bytes) -> bytes:
    """EIP-712 domain separator of an escrow (20-byte address) on a chain.

    Raises OverflowError if ``chain_id`` is negative or does not fit in a uint256."""
    return keccak(DOMAIN_TYPEHASH + keccak(DOMAIN_NAME.encode()) + keccak(DOMAIN_VERSION.encode())
                  + chain_id.to_bytes(32, "big") + escrow.rjust(32, b"\x00"))


def voucher_digest(chain_id: int, escrow: bytes, channel_id: bytes, amount: int, ledger_root: bytes) -> bytes:
    """The 32-byte EIP-712 digest a payer signs (the contract's ``voucherDigest``).

    Nothing is validated (callers do that); raises OverflowError only if ``chain_id`` or
    ``amount`` is negative or does not fit in a uint256."""
    struct_hash = keccak(VOUCHER_TYPEHASH + channel_id + amount.to_bytes(32, "big") + ledger_root)
    return keccak(b"\x19\x01" + domain_separator(chain_id, escrow) + struct_hash)


def _checked_address(value: object, what: str) -> ChecksumAddress:
    """The checksummed form of an address given as text or 20 bytes; InvalidVoucher otherwise."""
    normalized = normalize(value) if isinstance(value, (str, bytes)) else None
    if normalized is not None:
        return normalized[0]
    if isinstance(value, str) and is_address(value):
        raise InvalidVoucher(f"{what} {value} has a wrong EIP-55 checksum")
    raise InvalidVoucher(f"{what} must be a 20-byte address, got {value!r:.80}")


def _address_bytes(address: str) -> bytes:
    normalized = normalize(address)
    if normalized is None:
        raise InvalidVoucher(f"not an address: {address!r:.80}")
    return normalized[1]


def _check_bytes(value: object, size: int, what: str) -> bytes:
    if not isinstance(value, (bytes, bytearray)) or len(value) != size:
        raise InvalidVoucher(f"{what} must be {size} bytes, got {value!r:.80}")
    return bytes(value)


def _check_int(value: object, low: int, high: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidVoucher(f"{what} must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise InvalidVoucher(f"{what} {value} is outside [{low}, {high}]")
    return value


def check_signature_form(signature: bytes) -> None:
    """Reject what the escrow would reject: a 65-byte (ECDSA) signature with v not 27/28 or a
    zero or high r/s, or a contract signature that is empty or over :data:`MAX_CONTRACT_SIGNATURE`.

    Raises InvalidSignature (an InvalidVoucher) naming the first of those it finds."""
    if len(signature) != ECDSA_SIGNATURE_SIZE:
        if not 0 < len(signature) <= MAX_CONTRACT_SIGNATURE:
            raise InvalidSignature(f"signature must be 65 bytes (r, s, v) or a contract's of 1 to "
                                   f"{MAX_CONTRACT_SIGNATURE} bytes, got {len(signature)}")
        return
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    if signature[64] not in (27, 28):
        raise InvalidSignature(f"signature v must be 27 or 28, got {signature[64]}")
    if not 0 < r < SECP256K1_N or s == 0:
        raise InvalidSignature("signature r or s is zero or out of range")
    if s > SECP256K1_HALF_N:
        raise InvalidSignature("signature has a high s value (malleable form); the escrow rejects it")


@dataclass(frozen=True)
class Voucher:
    """A signed cumulative payment on one channel. Immutable and validated on construction.

    ``escrow`` may also be given as 20 bytes; it is stored checksummed. Raises InvalidVoucher if
    a field has the wrong type, size or range or the escrow has a wrong EIP-55 checksum, and
    InvalidSignature (an InvalidVoucher) if the signature is not in the form the escrow accepts
    (:func:`check_signature_form`). The signer is not checked here: see :meth:`verify` (a key's
    signature) and :meth:`micropay.escrow.Escrow.is_signed_by` (any)."""

    chain_id: int
    escrow: str
    channel_id: bytes
    amount: int
    ledger_root: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _check_int(self.chain_id, 1, MAX_CHAIN_ID, "chain id")
        object.__setattr__(self, "escrow", _checked_address(self.escrow, "escrow"))
        object.__setattr__(self, "channel_id", _check_bytes(self.channel_id, 32, "channel id"))
        _check_int(self.amount, 0, MAX_AMOUNT, "cumulative amount")
        object.__setattr__(self, "ledger_root", _check_bytes(self.ledger_root, 32, "ledger root"))
        if not isinstance(self.signature, (bytes, bytearray)):
            raise InvalidVoucher(f"signature must be bytes, got {type(self.signature).__name__}")
        check_signature_form(self.signature)
        object.__setattr__(self, "signature", bytes(self.signature))

    # -- hashing and signer --------------------------------------------------------------

    def digest(self) -> bytes:
        """The EIP-712 digest this voucher's signature is over. Never raises."""
        return voucher_digest(self.chain_id, self._escrow_bytes, self.channel_id, self.amount, self.ledger_root)

    @property
    def _escrow_bytes(self) -> bytes:
        return _address_bytes(self.escrow)

    @property
    def is_contract_signature(self) -> bool:
        """Whether the signature is a contract's (EIP-1271), not a 65-byte ECDSA signature."""
        return len(self.signature) != ECDSA_SIGNATURE_SIZE

    @cached_property
    def signer_bytes(self) -> bytes:
        """The recovered 20-byte signer of an ECDSA signature (recovered once, then cached).

        Raises InvalidSignature for a contract signature (it names no key) or a signature that
        recovers to no signer (or to the zero address)."""
        if self.is_contract_signature:
            raise InvalidSignature(f"a contract signature ({len(self.signature)} bytes) names no key: verify it "
                                   "through the escrow")
        signer = recover_address(self.digest(), self.signature)
        if signer is None or signer == bytes(20):
            raise InvalidSignature("signature does not recover to any signer")
        return signer

    @property
    def signer(self) -> ChecksumAddress:
        """The checksummed address that signed this voucher.

        Raises InvalidSignature if the signature recovers to no signer (see :attr:`signer_bytes`)."""
        return _checked_address(self.signer_bytes, "signer")

    def verify(self, expected_payer: str, *, chain_id: int | None = None, escrow: str | None = None) -> None:
        """Raise unless this voucher is signed by the key of ``expected_payer`` (and, if given, is
        for this chain and escrow). Returns nothing: a voucher that passes is good. ECDSA only: a
        contract's signature is checked through the escrow (:meth:`Escrow.is_signed_by`).

        Raises DomainMismatch if ``chain_id`` or ``escrow`` differs from the voucher's,
        InvalidSignature if another key signed it, it recovers to no one or it is a contract's, and
        InvalidVoucher if ``expected_payer`` or ``escrow`` is not an address (or has a wrong
        EIP-55 checksum). DomainMismatch and InvalidSignature are InvalidVoucher too."""
        if chain_id is not None and chain_id != self.chain_id:
            raise DomainMismatch(f"voucher is for chain {self.chain_id}, expected {chain_id}")
        if escrow is not None and _checked_address(escrow, "expected escrow") != self.escrow:
            raise DomainMismatch(f"voucher is for escrow {self.escrow}, expected {escrow}")
        if self.signer_bytes != _address_bytes(_checked_address(expected_payer, "expected payer")):
            raise InvalidSignature(f"voucher is signed by {self.signer}, not by the payer {expected_payer}")

    # -- EIP-712 for wallets ---------------------------------------------------------------

    def typed_data(self) -> dict[str, Any]:
        """The EIP-712 message of this voucher, as :func:`voucher_typed_data` builds it. Never raises."""
        return voucher_typed_data(self.chain_id, self.escrow, self.channel_id, self.amount, self.ledger_root)

    @classmethod
    def from_typed_signature(cls, typed_data: Mapping[str, Any], signature: bytes | str) -> Voucher:
        """Wrap a signature an external wallet made over :func:`voucher_typed_data` output
        (MetaMask's ``eth_signTypedData_v4``). A ``v`` of 0/1 is normalised to 27/28.

        Raises DomainMismatch if the typed data is for another EIP-712 domain name or version,
        InvalidVoucher if it is not a Voucher message or a field is missing or malformed (and
        whatever the constructor raises). The signer is not checked: call :meth:`verify`."""
        try:
            if typed_data["primaryType"] != "Voucher":
                raise InvalidVoucher("typed data is not a Voucher")
            if typed_data["types"].get("Voucher") != VOUCHER_FIELDS:
                raise InvalidVoucher("typed data has a different Voucher type")
            domain, message = typed_data["domain"], typed_data["message"]
            if (domain["name"], domain["version"]) != (DOMAIN_NAME, DOMAIN_VERSION):
                raise DomainMismatch(f"typed data is for domain {domain['name']!r} v{domain['version']!r}")
            raw = _from_hex(signature, "signature") if isinstance(signature, str) else bytes(signature)
            if len(raw) == ECDSA_SIGNATURE_SIZE and raw[64] in (0, 1):
                raw = raw[:64] + bytes([raw[64] + 27])
            return cls(
                chain_id=_as_int(domain["chainId"], "chainId"),
                escrow=domain["verifyingContract"],
                channel_id=_as_bytes(message["channelId"], "channelId"),
                amount=_as_int(message["cumulativeAmount"], "cumulativeAmount"),
                ledger_root=_as_bytes(message["ledgerRoot"], "ledgerRoot"),
                signature=raw,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidVoucher(f"typed data is missing or has a malformed field: {exc}") from exc

    # -- text and JSON forms --------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """chain id (8) | escrow (20) | channel id (32) | amount (12) | root (32): the
        :data:`HEADER_SIZE` bytes, then the signature to the end (65 bytes for a key's). Never raises."""
        return (self.chain_id.to_bytes(8, "big") + self._escrow_bytes + self.channel_id
                + self.amount.to_bytes(12, "big") + self.ledger_root + self.signature)

    @classmethod
    def from_bytes(cls, data: bytes) -> Voucher:
        """Parse :meth:`to_bytes` output. Raises InvalidVoucher (or InvalidSignature) as
        :meth:`fields_from_bytes` and the constructor do."""
        return cls(*cls.fields_from_bytes(data))

    @staticmethod
    def fields_from_bytes(data: bytes) -> VoucherFields:
        """The constructor arguments stored in :meth:`to_bytes` output, the escrow as checksummed
        text. Only the length is checked here: ``Voucher(*fields)`` validates the rest.

        Raises InvalidVoucher if ``data`` is not one voucher's bytes long."""
        if not HEADER_SIZE < len(data) <= HEADER_SIZE + MAX_CONTRACT_SIGNATURE:
            raise InvalidVoucher(f"voucher bytes must be {HEADER_SIZE + 1} to {HEADER_SIZE + MAX_CONTRACT_SIGNATURE} "
                                 f"long, got {len(data)}")
        return (
            int.from_bytes(data[:8], "big"),
            _checked_address(data[8:28], "escrow"),  # memoized: the checksum is computed once per escrow
            data[28:60],
            int.from_bytes(data[60:72], "big"),
            data[72:HEADER_SIZE],
            data[HEADER_SIZE:],
        )

    def encode(self) -> str:
        """One line of lowercase letters and digits 2-7: safe in URLs, chat and email, selectable
        with a double click. ``mpv1`` + base32(payload + 4-byte keccak checksum). Never raises."""
        return textform.wrap(TEXT_PREFIX, self.to_bytes())

    @classmethod
    def decode(cls, text: str) -> Voucher:
        """Parse :meth:`encode` output. Whitespace (line wraps in mail and chat) and case are
        ignored; a mistyped character fails the checksum before any signature work.

        Raises InvalidVoucher if the text is not a string, lacks the ``mpv1`` prefix, was cut,
        extended or mistyped, and whatever the constructor raises for its fields."""
        return cls.from_bytes(textform.unwrap(text, TEXT_PREFIX, "voucher"))

    def to_dict(self) -> VoucherJSON:
        """The voucher as JSON (:class:`~micropay.types.VoucherJSON`). Never raises."""
        return {
            "chainId": self.chain_id,
            "escrow": self.escrow,
            "channelId": "0x" + self.channel_id.hex(),
            "cumulativeAmount": str(self.amount),
            "ledgerRoot": "0x" + self.ledger_root.hex(),
            "signature": "0x" + self.signature.hex(),
        }

    @classmethod
    def from_dict(cls, data: object) -> Voucher:
        """Parse :meth:`to_dict` output (as it comes out of ``json.loads``).

        Raises InvalidVoucher if ``data`` is not an object with exactly the VoucherJSON keys, a
        value is malformed, or the constructor rejects a field."""
        if not isinstance(data, dict):
            raise InvalidVoucher(f"voucher JSON must be an object, got {type(data).__name__}")
        expected = set(VoucherJSON.__annotations__)
        if set(data) != expected:
            raise InvalidVoucher(f"voucher JSON must have exactly the keys {sorted(expected)}")
        amount = data["cumulativeAmount"]
        if not isinstance(amount, str) or not amount.isascii() or not amount.isdigit() or len(amount) > 78:
            raise InvalidVoucher("cumulativeAmount must be a decimal string")
        return cls(
            chain_id=data["chainId"],
            escrow=data["escrow"],
            channel_id=_from_hex(data["channelId"], "channelId"),
            amount=int(amount),
            ledger_root=_from_hex(data["ledgerRoot"], "ledgerRoot"),
            signature=_from_hex(data["signature"], "signature"),
        )


def voucher_typed_data(chain_id: int, escrow: str, channel_id: bytes, amount: int, ledger_root: bytes
                       ) -> dict[str, Any]:
    """The full EIP-712 message a wallet signs (JSON-ready: bytes as 0x-hex).

    A plain ``dict[str, Any]``, the type eth-account's ``encode_typed_data(full_message=...)``
    takes. Nothing is validated, so it never raises for bytes arguments."""
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN_FIELDS, "Voucher": VOUCHER_FIELDS},
        "primaryType": "Voucher",
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id,
                   "verifyingContract": escrow},
        "message": {"channelId": "0x" + channel_id.hex(), "cumulativeAmount": amount,
                    "ledgerRoot": "0x" + ledger_root.hex()},
    }


class DigestSigner(Protocol):
    """A voucher signer that is not a local key: a contract wallet (a Safe, whose owners sign the
    digest as an EIP-1271 message) or a remote signer. ``address`` is what a channel names as its
    signer; ``sign_digest`` returns a signature the escrow accepts for it over a voucher digest."""

    @property
    def address(self) -> str: ...  # pragma: no cover - a protocol

    def sign_digest(self, digest: bytes) -> bytes: ...  # pragma: no cover - a protocol


def sign_voucher(account: LocalAccount | DigestSigner, *, chain_id: int, escrow: str, channel_id: bytes,
                 amount: int, ledger_root: bytes) -> Voucher:
    """Sign a voucher with an eth-account ``LocalAccount`` (libsecp256k1 fast path), or with a
    :class:`DigestSigner` (a contract wallet's signature: checked only by the escrow).

    This signs blindly: it does not know what was signed before. :class:`micropay.Payer` is what
    guarantees a cumulative amount is never signed twice.

    Raises InvalidVoucher if a field has the wrong type, size or range, or the escrow is not an
    address (or has a wrong EIP-55 checksum), InvalidSignature if a DigestSigner's signature is
    not in a form the escrow accepts.
    """
    escrow = _checked_address(escrow, "escrow")
    _check_int(chain_id, 1, MAX_CHAIN_ID, "chain id")
    _check_int(amount, 0, MAX_AMOUNT, "cumulative amount")
    channel_id = _check_bytes(channel_id, 32, "channel id")
    ledger_root = _check_bytes(ledger_root, 32, "ledger root")
    digest = voucher_digest(chain_id, _address_bytes(escrow), channel_id, amount, ledger_root)
    if isinstance(account, LocalAccount):
        signature = unsafe_sign_digest(account, digest)
    else:
        signature = bytes(account.sign_digest(digest))
    return Voucher(chain_id, escrow, channel_id, amount, ledger_root, signature)


def _from_hex(value: object, what: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise InvalidVoucher(f"{what} must be a 0x-prefixed hex string")
    try:
        return bytes.fromhex(value[2:])
    except ValueError as exc:
        raise InvalidVoucher(f"{what} is not valid hex") from exc


def _as_bytes(value: object, what: str) -> bytes:
    return bytes(value) if isinstance(value, (bytes, bytearray)) else _from_hex(value, what)


def _as_int(value: object, what: str) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 78:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise InvalidVoucher(f"{what} must be an integer")
