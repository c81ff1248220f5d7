"""The text envelope vouchers and payments travel in: ``prefix`` + base32(payload + checksum).

Lowercase letters and digits 2-7 only, so a double click selects it and URLs, chat and mail
leave it alone; whitespace and case are ignored when reading (mail clients wrap lines). The
4-byte keccak checksum catches a mistyped character before any signature work.
"""

from __future__ import annotations

from micropay._utils import base32
from micropay._utils.crypto import keccak
from micropay.errors import InvalidVoucher

CHECKSUM_SIZE = 4


def wrap(prefix: str, payload: bytes) -> str:
    """``prefix`` + base32(``payload`` + its 4-byte keccak checksum). Never raises."""
    return prefix + base32.encode(payload + keccak(payload)[:CHECKSUM_SIZE])


#: The longest text :func:`unwrap` reads unless told otherwise: a payment with a few receipts
#: is under a kilobyte.
MAX_TEXT = 64 * 1024


def unwrap(text: object, prefix: str, what: str, max_chars: int = MAX_TEXT) -> bytes:
    """The payload inside ``text``.

    Raises InvalidVoucher, saying what is wrong and naming ``what``, if ``text`` is not a string,
    is longer than ``max_chars``, lacks ``prefix``, is not base32, is too short or fails the
    checksum."""
    if not isinstance(text, str):
        raise InvalidVoucher(f"{what} text must be a string, got {type(text).__name__}")
    if len(text) > max_chars:
        raise InvalidVoucher(f"{what} text is {len(text):,} characters, above the limit of {max_chars:,}")
    compact = "".join(text.split()).lower()
    if not compact.startswith(prefix):
        raise InvalidVoucher(f"{what} text must start with {prefix!r} (is this a micropay {what}?)")
    raw = base32.decode(compact[len(prefix):])
    if raw is None:
        raise InvalidVoucher(f"{what} text has characters outside a-z and 2-7, or was cut: it was mistyped")
    if len(raw) <= CHECKSUM_SIZE:
        raise InvalidVoucher(f"{what} text is too short: it was cut")
    payload, checksum = raw[:-CHECKSUM_SIZE], raw[-CHECKSUM_SIZE:]
    if keccak(payload)[:CHECKSUM_SIZE] != checksum:
        raise InvalidVoucher(f"{what} text checksum does not match: a character was changed")
    return payload
