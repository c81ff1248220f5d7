"""Address validation and normalisation, memoized.

eth-utils spends ~150 µs checksumming one address; a payee sees the same few addresses (its
escrow, its payers, itself) over and over, so each distinct input is normalised once.
"""

from __future__ import annotations

import functools

from eth_typing import ChecksumAddress
from eth_utils.address import is_address, to_canonical_address, to_checksum_address


@functools.lru_cache(maxsize=4096)
def normalize(value: str | bytes) -> tuple[ChecksumAddress, bytes] | None:
    """(checksummed, 20 bytes) for a valid address given as text or bytes, else None.

    Text in mixed case carries an EIP-55 checksum and is only valid if the checksum is right.
    Never raises for a hashable argument: anything that is not an address gives None.
    """
    if isinstance(value, bytes):
        return (to_checksum_address(value), value) if len(value) == 20 else None
    if not isinstance(value, str) or not is_address(value):
        return None
    digits, checksummed = value[2:], to_checksum_address(value)
    if digits not in (digits.lower(), digits.upper()) and checksummed != value:
        return None
    return checksummed, to_canonical_address(checksummed)


def word(address: str) -> bytes:
    """An already-validated address as a 32-byte ABI word.

    Raises ValueError if ``address`` is not an address (or has a wrong EIP-55 checksum).
    """
    normalized = normalize(address)
    if normalized is None:
        raise ValueError(f"not an address: {address!r}")
    return normalized[1].rjust(32, b"\x00")
