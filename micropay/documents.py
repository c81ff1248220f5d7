"""Signed micropay documents (plans, feedback): checked fields, a canonical form, a text form.

Each document is a JSON object with a ``micropay`` field naming its kind. It travels as a file
(the JSON itself) or as text: a prefix and base32 of its canonical JSON (sorted keys, no spaces,
UTF-8) in the checksummed envelope payments use. :func:`read_document` takes either, bounded in
size and nesting before anything is parsed. The field checkers raise :class:`InvalidPlan`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TypeVar

from micropay._utils import bounded, textform
from micropay._utils.addresses import normalize
from micropay._utils.crypto import keccak, recover_address
from micropay.errors import InvalidAcknowledgment, InvalidPlan, InvalidVoucher, MicropayValueError
from micropay.voucher import (
    DOMAIN_NAME,
    DOMAIN_VERSION,
    ECDSA_SIGNATURE_SIZE,
    EIP712_DOMAIN_FIELDS,
    check_signature_form,
    domain_separator,
)

#: Asks whether ``signature`` by ``address`` over ``digest`` is valid (EIP-1271 for a contract).
SignatureCheck = Callable[[str, bytes, bytes], bool]

#: The longest document read: a plan of 256 tasks with the longest fields fits.
MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_TEXT = 2 * MAX_DOCUMENT_BYTES
#: Text prefixes of the documents :func:`read_document` reads, and the kind each holds.
DOCUMENT_PREFIXES = {"mpl1": "plan", "mpf1": "feedback"}
PREFIX_OF_KIND = {kind: prefix for prefix, kind in DOCUMENT_PREFIXES.items()}


def utf8(text: object, what: str, limit: int, *, required: bool = False) -> bytes:
    """``text`` as UTF-8, checked. Raises :class:`InvalidPlan` if it is not a string, is empty
    when ``required``, has a lone surrogate, or is longer than ``limit`` bytes."""
    if not isinstance(text, str):
        raise InvalidPlan(f"{what} must be a string, got {type(text).__name__}")
    if required and not text.strip():
        raise InvalidPlan(f"{what} must not be empty")
    try:
        data = text.encode()
    except UnicodeEncodeError:
        raise InvalidPlan(f"{what} is not valid Unicode text") from None
    if len(data) > limit:
        raise InvalidPlan(f"{what} is {len(data):,} bytes, above the limit of {limit:,}")
    return data


def checked_int(value: object, what: str, low: int, high: int) -> int:
    """``value`` if it is an int in [low, high]; :class:`InvalidPlan` otherwise."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidPlan(f"{what} must be an integer in [{low}, {high}], got {value!r:.80}")
    return value


def plan_address(value: object, what: str) -> str:
    """The checksummed form of an address; :class:`InvalidPlan` otherwise."""
    normalized = normalize(value) if isinstance(value, str) else None
    if normalized is None:
        raise InvalidPlan(f"{what} must be an address (with a correct checksum), got {value!r:.80}")
    return normalized[0]


def hex_bytes(value: object, size: int, what: str) -> bytes:
    """``0x``-hex text of exactly ``size`` bytes; :class:`InvalidPlan` otherwise."""
    if not isinstance(value, str) or not value.startswith("0x") or len(value) != 2 + 2 * size:
        raise InvalidPlan(f"{what} must be 0x and {2 * size} hex digits")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise InvalidPlan(f"{what} is not valid hex") from None


def decimal(value: object, what: str) -> int:
    """A uint256 given as a decimal string, as the JSON forms write amounts."""
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() or len(value) > 78:
        raise InvalidPlan(f"{what} must be a decimal string of at most 78 digits")
    return int(value)


def fields(data: object, names: set[str], what: str) -> dict[str, object]:
    """``data`` if it is a JSON object with exactly ``names``; :class:`InvalidPlan` otherwise."""
    if not isinstance(data, dict) or set(data) != names:
        raise InvalidPlan(f"{what} JSON must have exactly the fields {', '.join(sorted(names))}")
    return data


def recovered_signer(digest: bytes, signature: bytes, what: str) -> str:
    """The checksummed address whose key signed ``digest``. Raises :class:`InvalidAcknowledgment`
    if the signature recovers to no one (``what``: the document, for the message)."""
    signer = recover_address(digest, signature)
    if signer is None or signer == bytes(20):
        raise InvalidAcknowledgment(f"the {what}'s signature recovers to no signer")
    return plan_address("0x" + signer.hex(), "signer")


def check_key_signature(signature: object, what: str) -> None:
    """Raises :class:`InvalidAcknowledgment` unless ``signature`` is a key's: 65 bytes (``what``: the
    document, with its article, for the message); then what :func:`check_signature_form` raises."""
    if not isinstance(signature, bytes) or len(signature) != ECDSA_SIGNATURE_SIZE:
        raise InvalidAcknowledgment(f"{what}'s signature is 65 bytes (r, s, v)")
    check_signature_form(signature)


def is_valid_signature(address: str, digest: bytes, signature: bytes, is_signed_by: SignatureCheck | None) -> bool:
    """Whether ``signature`` over ``digest`` is by ``address``: an ECDSA signature that recovers
    to it, or one ``is_signed_by`` (EIP-1271) accepts."""
    if len(signature) == 65:
        try:
            check_signature_form(signature)
        except InvalidVoucher:
            return False
        if recover_address(digest, signature) == bytes.fromhex(address[2:]):
            return True
    return is_signed_by is not None and is_signed_by(address, digest, signature)


def signature_hex(data: bytes) -> str:
    """0x-hex of a signature; empty text for none."""
    return "0x" + data.hex() if data else ""


def signature_bytes(value: object) -> bytes:
    """The signature in :func:`signature_hex` text. Raises :class:`InvalidPlan` if malformed."""
    if value == "":
        return b""
    if not isinstance(value, str) or not value.startswith("0x") or len(value) > 2 + 2 * 4096 or len(value) % 2:
        raise InvalidPlan("a signature must be 0x-hex of at most 4096 bytes, or empty")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise InvalidPlan("a signature is not valid hex") from None


def canonical(document: Mapping[str, object]) -> bytes:
    """The canonical bytes of a JSON document: sorted keys, no spaces, UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def read_document(text: str | bytes, *, max_chars: int = MAX_TEXT) -> dict[str, object]:
    """The JSON document in ``text``: its ``mpl1…`` / ``mpf1…`` text form, or the JSON itself
    (a file). Raises :class:`InvalidPlan` for anything too long, mistyped or malformed."""
    if isinstance(text, bytes):
        if len(text) > max_chars:
            raise InvalidPlan(f"the document is {len(text):,} bytes, above the limit of {max_chars:,}")
        try:
            text = text.decode()
        except UnicodeDecodeError:
            raise InvalidPlan("the document is not UTF-8 text") from None
    if not isinstance(text, str):
        raise InvalidPlan(f"expected a micropay document, got {type(text).__name__}")
    if len(text) > max_chars:
        raise InvalidPlan(f"the document is {len(text):,} characters, above the limit of {max_chars:,}")
    stripped = text.lstrip()
    if stripped.startswith("{"):
        data: object = bounded.loads(stripped, what="document", max_bytes=MAX_DOCUMENT_BYTES, error=InvalidPlan)
    else:
        prefix = stripped[:4].lower()
        if prefix not in DOCUMENT_PREFIXES:
            raise InvalidPlan("not a micropay plan or feedback: it starts with neither mpl1, mpf1 nor {")
        try:
            payload = textform.unwrap(text, prefix, DOCUMENT_PREFIXES[prefix], max_chars)
        except InvalidVoucher as exc:
            raise InvalidPlan(str(exc)) from None
        data = bounded.loads(payload, what="document", max_bytes=MAX_DOCUMENT_BYTES, error=InvalidPlan)
        if not isinstance(data, dict) or PREFIX_OF_KIND.get(str(data.get("micropay"))) != prefix:
            raise InvalidPlan(f"the {DOCUMENT_PREFIXES[prefix]} text holds another kind of document")
    if not isinstance(data, dict):
        raise InvalidPlan("a micropay document is a JSON object")
    return data






def wrap(document: Mapping[str, object]) -> str:
    """The text form of ``document``: its kind's prefix and its canonical JSON, checksummed."""
    return textform.wrap(PREFIX_OF_KIND[str(document["micropay"])], canonical(document))


def pretty(document: Mapping[str, object]) -> str:
    """``document`` as indented JSON, for a file."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def escrow_digest(chain_id: int, escrow: str, struct_hash: bytes) -> bytes:
    """The EIP-712 digest of a struct under the escrow's domain (what both sides sign)."""
    return keccak(b"\x19\x01" + domain_separator(chain_id, bytes.fromhex(escrow[2:])) + struct_hash)


def escrow_typed_data(chain_id: int, escrow: str, primary: str, types: dict[str, list[dict[str, str]]],
                      message: dict[str, object]) -> dict[str, object]:
    """Typed data under the escrow's domain, as ``eth_signTypedData_v4`` and eth-account take it."""
    return {"types": {"EIP712Domain": EIP712_DOMAIN_FIELDS, **types}, "primaryType": primary,
            "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id,
                       "verifyingContract": escrow},
            "message": message}


Document = TypeVar("Document")


def parse_document(value: object, kind: type[Document], from_dict: Callable[[object], Document], what: str, *,
                   max_chars: int = MAX_TEXT) -> Document:
    """A ``kind`` from itself, its text form or its JSON document (via ``from_dict``). Raises
    :class:`InvalidPlan` for anything else, naming ``what`` it expected."""
    if isinstance(value, kind):
        return value
    if not isinstance(value, (str, bytes)):
        raise InvalidPlan(f"expected {what} or its text, got {type(value).__name__}")
    try:
        return from_dict(read_document(value, max_chars=max_chars))
    except MicropayValueError as exc:
        if isinstance(exc, InvalidPlan):
            raise
        raise InvalidPlan(str(exc)) from None
