"""keccak256 and secp256k1 at libsecp256k1 speed, for the voucher fast path."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from coincurve import PrivateKey, PublicKey

if TYPE_CHECKING:  # eth-account is heavy to import, and only annotations need it here
    from eth_account.signers.local import LocalAccount

try:  # eth-hash's own pysha3 backend: ~2 µs for 96 bytes against ~13 µs for pycryptodome
    from sha3 import keccak_256 as _keccak_256  # untyped (no py.typed): see [tool.mypy] overrides
except ImportError:  # pragma: no cover - eth-hash picks whatever backend is installed
    from eth_hash.auto import keccak as _auto_keccak

    keccak: Callable[[bytes], bytes] = _auto_keccak
else:

    def _pysha3_keccak(data: bytes) -> bytes:
        digest: bytes = _keccak_256(data).digest()  # annotated: pysha3 returns an untyped object
        return digest

    keccak = _pysha3_keccak

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECP256K1_HALF_N = SECP256K1_N // 2


# Parsing a secret into a libsecp256k1 key pair costs more than signing with it, so each
# account's parsed key lives exactly as long as the account object does.
_parsed_keys: weakref.WeakKeyDictionary[LocalAccount, PrivateKey] = weakref.WeakKeyDictionary()


def unsafe_sign_digest(account: LocalAccount, digest: bytes) -> bytes:
    """65-byte r || s || v (v in {27, 28}) over a bare 32-byte digest, with an eth-account
    LocalAccount's key. libsecp256k1 always emits low-s.

    Unsafe: it signs whatever 32 bytes it is given. Callers must pass an EIP-712 digest they built
    themselves, never one received from someone else.

    Raises ValueError (from coincurve) if ``digest`` is not 32 bytes or the key is not a valid
    secp256k1 secret.
    """
    key = _parsed_keys.get(account)
    if key is None:
        key = PrivateKey(bytes(account.key))
        _parsed_keys[account] = key
    signature = key.sign_recoverable(digest, hasher=None)
    return signature[:64] + bytes([signature[64] + 27])


def recover_address(digest: bytes, signature: bytes) -> bytes | None:
    """The 20-byte signer of a canonical 65-byte signature, or None if it does not recover.

    Never raises for a 65-byte signature with v in {27, 28}; check the form first
    (:func:`micropay.voucher.check_signature_form`). Other lengths or v values may raise
    IndexError or ValueError.
    """
    try:
        public_key = PublicKey.from_signature_and_message(
            signature[:64] + bytes([signature[64] - 27]), digest, hasher=None
        )
    except Exception:  # noqa: BLE001 - coincurve raises bare Exception/ValueError for bad points
        return None
    return keccak(public_key.format(compressed=False)[1:])[-20:]
