"""Fast decoding of RFC 4648 base32 (lowercase, unpadded) through Python's C integer parser.

``base64.b32decode`` is pure Python (~200 µs for one payment, on the freelancer's hot path); this
decodes the same text at C speed. Tests hold it equal to the standard library on random inputs.
Encoding happens once per payment on the client side and uses the standard library.
"""

from __future__ import annotations

import base64

_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_INT_DIGITS = "0123456789abcdefghijklmnopqrstuv"  # the digits int(x, 32) reads
_TO_INT = str.maketrans(_ALPHABET, _INT_DIGITS)


def encode(data: bytes) -> str:
    """Canonical unpadded lowercase base32 of ``data``. Never raises for bytes."""
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def decode(text: str) -> bytes | None:
    """The bytes of canonical unpadded lowercase base32 text, or None if it is not that.

    Never raises for a string: malformed text (wrong length, a character outside the alphabet,
    non-zero padding bits) gives None.
    """
    if not text:
        return b""
    size, spare = divmod(len(text) * 5, 8)
    # Check the text itself: after translation '0', '1', '8', '9' would pass as int digits.
    if spare >= 5 or text.strip(_ALPHABET):
        return None  # a length no byte string encodes to, or a character outside the alphabet
    value = int(text.translate(_TO_INT), 32)
    if value & ((1 << spare) - 1):
        return None  # non-zero padding bits: not what an encoder writes
    return (value >> spare).to_bytes(size, "big")
