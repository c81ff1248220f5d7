"""Vouchers packed for the escrow: the compact bytes ``claim``, ``claimMany``, ``claimRelayed`` and
``close`` take, with no ABI padding or offsets::

    flags (1) | payer (20) | salt (12) | [signer (20)] | amount (12) | ledgerRoot (32) | signature

``DELEGATED`` (bit 0) says a signer address follows the salt; ``CONTRACT_SIGNATURE`` (bit 1)
says the signature is a 2-byte length and that many bytes, checked by the signer's EIP-1271
``isValidSignature`` (or as a 65-byte ECDSA signature), instead of a 64-byte ERC-2098 signature
``r | vs``; ``KEY_ONLY`` (bit 2, ``close`` only) says nothing follows the key. A voucher signed by
its payer's key is 141 bytes, one signed by a delegated key 161.
"""

from __future__ import annotations

from collections.abc import Iterable

from micropay._utils.addresses import normalize
from micropay._utils.crypto import recover_address
from micropay.channel import ChannelKey
from micropay.errors import InvalidVoucher
from micropay.voucher import Voucher

DELEGATED = 1
CONTRACT_SIGNATURE = 2
KEY_ONLY = 4
#: The longest contract signature the packed form can carry (its length is two bytes).
MAX_CONTRACT_SIGNATURE = 2**16 - 1


def _address(value: str) -> bytes:
    normalized = normalize(value)
    assert normalized is not None  # a ChannelKey holds checksummed addresses only
    return normalized[1]


def _key_bytes(key: ChannelKey, flags: int) -> bytes:
    delegated = key.signer is not None
    head = bytes([flags | (DELEGATED if delegated else 0)]) + _address(key.payer) + key.salt.to_bytes(12, "big")
    return head + (_address(key.signer) if key.signer is not None else b"")


def compact_signature(signature: bytes) -> bytes:
    """The ERC-2098 form ``r | vs`` of a 65-byte ``r | s | v`` signature (v 27 or 28, low s). Never raises
    for a signature :class:`~micropay.voucher.Voucher` accepted."""
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    return r + (s | ((v - 27) << 255)).to_bytes(32, "big")


def expand_signature(compact: bytes) -> bytes:
    """The 65-byte ``r | s | v`` form of an ERC-2098 signature. Raises InvalidVoucher if it is not 64 bytes."""
    if len(compact) != 64:
        raise InvalidVoucher(f"a compact signature is 64 bytes, got {len(compact)}")
    vs = int.from_bytes(compact[32:], "big")
    return compact[:32] + (vs & (2**255 - 1)).to_bytes(32, "big") + bytes([27 + (vs >> 255)])


def pack_voucher(key: ChannelKey, voucher: Voucher) -> bytes:
    """The packed bytes of ``voucher`` on channel ``key``.

    The 64-byte form is used when the signature is the channel signer's own ECDSA signature;
    anything else is sent whole for the escrow to check with EIP-1271. Raises InvalidVoucher if the
    voucher is for another channel or its signature is too long to pack."""
    if voucher.channel_id != key.id:
        raise InvalidVoucher(f"voucher is for channel 0x{voucher.channel_id.hex()}, not 0x{key.id.hex()}")
    signer = _address(key.voucher_signer)
    by_key = len(voucher.signature) == 65 and recover_address(voucher.digest(), voucher.signature) == signer
    if by_key:
        flags, signature = 0, compact_signature(voucher.signature)
    else:
        if len(voucher.signature) > MAX_CONTRACT_SIGNATURE:
            raise InvalidVoucher(f"a contract signature of {len(voucher.signature)} bytes is too long to send")
        flags, signature = CONTRACT_SIGNATURE, len(voucher.signature).to_bytes(2, "big") + voucher.signature
    return _key_bytes(key, flags) + voucher.amount.to_bytes(12, "big") + voucher.ledger_root + signature


def pack_vouchers(items: Iterable[tuple[ChannelKey, Voucher]]) -> bytes:
    """Several packed vouchers, concatenated, as ``claimMany`` and ``claimRelayed`` take them.
    Raises as :func:`pack_voucher`."""
    return b"".join(pack_voucher(key, voucher) for key, voucher in items)


def pack_key(key: ChannelKey) -> bytes:
    """The ``KEY_ONLY`` form ``close`` takes to end a channel without a final voucher. Never raises."""
    return _key_bytes(key, KEY_ONLY)
