"""Reference encodings for the escrow tests, written from the contract's notes and independent of
micropay: the packed voucher layout, ERC-2098 signatures, relay requests, error selectors.

    flags (1) | payer (20) | salt (12) | [signer (20)] | amount (12) | ledgerRoot (32) | signature
"""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from helpers import ETH, Key

DELEGATED, CONTRACT_SIGNATURE, KEY_ONLY = 1, 2, 4
ROOT = b"\x11" * 32
# Actor.Mode
ACCEPT, REVERT, REENTER, BURN_GAS, REVERT_HUGE = 0, 1, 2, 3, 4


def selector(signature: str) -> bytes:
    """The 4-byte selector of an error or function signature."""
    return keccak(text=signature)[:4]


def compact(signature: bytes) -> bytes:
    """ERC-2098 ``r | vs`` (vs = yParity << 255 | s) of a 65-byte ``r | s | v`` signature."""
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    return r + (((v - 27) << 255) | s).to_bytes(32, "big")


def head(key: Key, flags: int) -> bytes:
    """flags | payer | salt | [signer, if flags has DELEGATED]."""
    signer = bytes.fromhex(key.signer[2:]) if flags & DELEGATED else b""
    return bytes([flags]) + bytes.fromhex(key.payer[2:]) + key.salt.to_bytes(12, "big") + signer


def pack(key: Key, amount: int, root: bytes, signature: bytes, *, contract: bool = False,
         flags: int | None = None) -> bytes:
    """A packed voucher. ``signature`` is 65 bytes (made compact unless ``contract``) or already 64;
    with ``contract`` it is sent whole behind its 2-byte length. ``flags`` overrides the flags
    byte (DELEGATED follows the key unless given)."""
    if flags is None:
        flags = (DELEGATED if key.signer != ETH else 0) | (CONTRACT_SIGNATURE if contract else 0)
    if contract:
        tail = len(signature).to_bytes(2, "big") + signature
    else:
        tail = compact(signature) if len(signature) == 65 else signature
    return head(key, flags) + amount.to_bytes(12, "big") + root + tail


def key_only(key: Key) -> bytes:
    """The KEY_ONLY form close takes to end a channel without a voucher."""
    return head(key, KEY_ONLY | (DELEGATED if key.signer != ETH else 0))


def relay_typed_data(chain_id: int, escrow: str, payee: str, token: str, vouchers: bytes, max_fee: int,
                     deadline: int) -> dict[str, Any]:
    """The EIP-712 RelayRequest a payee signs (eth_signTypedData_v4 form)."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "RelayRequest": [
                {"name": "payee", "type": "address"},
                {"name": "token", "type": "address"},
                {"name": "vouchers", "type": "bytes32"},
                {"name": "maxFee", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "RelayRequest",
        "domain": {"name": "MicropayEscrow", "version": "2", "chainId": chain_id, "verifyingContract": escrow},
        "message": {"payee": payee, "token": token, "vouchers": keccak(vouchers), "maxFee": max_fee,
                    "deadline": deadline},
    }


def relay_digest(*args: Any) -> bytes:
    """The EIP-712 hash of :func:`relay_typed_data` (same arguments), as eth-account computes it."""
    signable = encode_typed_data(full_message=relay_typed_data(*args))
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def sign_relay(private_key: Any, *args: Any) -> bytes:
    """The 65-byte signature of :func:`relay_typed_data` (same arguments) by ``private_key``."""
    message = encode_typed_data(full_message=relay_typed_data(*args))
    return bytes(Account.sign_message(message, private_key).signature)


def local_account(name: str) -> LocalAccount:
    """A fixed key nobody funds (so failures reproduce)."""
    return Account.from_key(keccak(text=f"micropay escrow test {name}"))
