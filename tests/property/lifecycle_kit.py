"""The lifecycle test's model and reference encodings (see test_lifecycle.py): what the escrow
should hold per channel, a relayed claim as submitted, the packed voucher layout and the EIP-712
relay digest written from the contract's notes (independent of micropay), and off-chain forgeries.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from hypothesis import event

from helpers import high_s
from micropay.channel import ChannelKey
from micropay.errors import InvalidVoucher, MicropayError
from micropay.packing import CONTRACT_SIGNATURE, DELEGATED, compact_signature
from micropay.payment import Payment
from micropay.records import ChannelRecord
from micropay.voucher import Voucher, sign_voucher

SEEN: Counter[str] = Counter()
# Who signs a channel's vouchers: its EOA payer (through the library), a hot key the payer named
# at open, or an EIP-1271 wallet (the payer) whose owner's key signs for it.
SELF, DELEGATED_KEY, WALLET = "payer", "delegated", "wallet"
PAID_OUT = {SELF: "a payer-signed voucher paid out", DELEGATED_KEY: "a delegated voucher paid out",
            WALLET: "a contract-signed voucher paid out"}
RELAY_TYPEHASH = keccak(b"RelayRequest(address payee,address token,bytes32 vouchers,uint256 maxFee,uint256 deadline)")
#: The storage slot of the escrow's `_channels` mapping: after OpenZeppelin EIP712's two fallback strings.
CHANNELS_SLOT = 2
#: The storage slot of OpenZeppelin ERC20's `_balances` mapping in the test token.
TOKEN_BALANCES_SLOT = 0
DOMAIN_TYPEHASH = keccak(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")


def seen(what: str) -> None:
    """Record that a behaviour happened (the test fails if a key one never does)."""
    SEEN[what] += 1
    event(what)


@dataclass
class Model:
    """What the escrow should hold for one channel."""

    key: ChannelKey
    deposit: int
    expiry: int
    window: int
    kind: str = SELF
    signer: LocalAccount | None = None  # the key that signs (hot key, wallet owner); None: the Payer's store
    claimed: int = 0
    refunded: int = 0
    closed: bool = False
    signed: int = 0  # highest cumulative the payer signed
    acknowledged: int = 0  # highest cumulative the payee acknowledged
    submitted_in_time: int = 0  # highest voucher submitted on chain while claimable
    vouchers: list[Voucher] = field(default_factory=list)  # kinds other than SELF: every one the payee holds
    last_signed: Voucher | None = None  # kinds other than SELF: the latest voucher signed


@dataclass(frozen=True)
class Relay:
    """A relayed claim as submitted: claimRelayed's arguments."""

    payee: str
    token: str
    packed: bytes
    max_fee: int
    deadline: int
    fee: int
    signature: bytes

    def args(self) -> tuple:
        return (self.payee, self.token, self.packed, self.max_fee, self.deadline, self.fee, self.signature)


def pack(key: ChannelKey, amount: int, root: bytes, signature: bytes, *, contract: bool,
         signer: str | None = None) -> bytes:
    """The packed voucher, written from the contract's notes (independent of micropay.packing):
    flags | payer | salt | [signer] | amount | root | signature; ``signer`` overrides the key's."""
    signer = signer or key.signer
    flags = (DELEGATED if signer else 0) | (CONTRACT_SIGNATURE if contract else 0)
    head = bytes([flags]) + bytes.fromhex(key.payer[2:]) + key.salt.to_bytes(12, "big")
    head += bytes.fromhex(signer[2:]) if signer else b""
    tail = len(signature).to_bytes(2, "big") + signature if contract else compact_signature(signature)
    return head + amount.to_bytes(12, "big") + root + tail


def unpack_channel(word: int) -> tuple[int, int, int, int, bool]:
    """(deposit, claimed, expiry, window, closed) from a Channel's packed storage word."""
    return (word & (2**96 - 1), word >> 96 & (2**96 - 1), word >> 192 & (2**32 - 1), word >> 224 & (2**24 - 1),
            bool(word >> 248))


def relay_digest(chain_id: int, escrow: str, payee: str, token: str, vouchers: bytes, max_fee: int,
                 deadline: int) -> bytes:
    """The EIP-712 digest of a RelayRequest, from the EIP's rules (independent of micropay.relay)."""
    domain = keccak(DOMAIN_TYPEHASH + keccak(b"MicropayEscrow") + keccak(b"2") + chain_id.to_bytes(32, "big")
                    + bytes(12) + bytes.fromhex(escrow[2:]))
    struct = keccak(RELAY_TYPEHASH + bytes(12) + bytes.fromhex(payee[2:]) + bytes(12) + bytes.fromhex(token[2:])
                    + vouchers + max_fee.to_bytes(32, "big") + deadline.to_bytes(32, "big"))
    return keccak(b"\x19\x01" + domain + struct)


def revert_name(exc: MicropayError) -> str:
    """The escrow's custom error behind a micropay error."""
    revert = getattr(exc, "revert", None) or exc
    return getattr(revert, "name", type(exc).__name__)


def payer_record(escrow, state) -> ChannelRecord:
    """The payer's store record of a channel just opened (its state read from the chain)."""
    return ChannelRecord(state.key, escrow.chain_id, escrow.address, "payer", state.deposit, state.claimed,
                         state.expiry, state.window, state.closed, time.time(), state.observed_at)


def wall() -> float:
    """The wall clock, which the payer's store checks expiry against (the chain's clock travels)."""
    return time.time()


def forge(best, kind, channels, m, account):
    """A payment the payee must refuse: stale, tampered, for another channel, chain or escrow, or high s."""
    if kind == "stale":
        return sign_voucher(account, chain_id=best.chain_id, escrow=best.escrow, channel_id=best.channel_id,
                            amount=max(0, best.amount - 1), ledger_root=best.ledger_root)
    if kind == "tampered":
        return Payment.of(best, (), 0).encode()[:-3] + "aaa"
    if kind == "other channel":
        other = next((c for c in channels if c is not m), None)
        target = other.key.id if other else b"\x42" * 32
        return Voucher(best.chain_id, best.escrow, target, best.amount, best.ledger_root, best.signature)
    if kind == "wrong chain":
        return sign_voucher(account, chain_id=best.chain_id + 1, escrow=best.escrow, channel_id=best.channel_id,
                            amount=best.amount + 1, ledger_root=best.ledger_root)
    if kind == "other escrow":
        return sign_voucher(account, chain_id=best.chain_id, escrow="0x" + "99" * 20, channel_id=best.channel_id,
                            amount=best.amount + 1, ledger_root=best.ledger_root)
    try:
        return Voucher(best.chain_id, best.escrow, best.channel_id, best.amount, best.ledger_root,
                       high_s(best.signature))
    except InvalidVoucher:
        return best.encode()[:-2] + "zz"  # the library refuses to even build it; send garbage instead
