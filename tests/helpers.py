"""Test helpers shared by the escrow tests: transactions, reverts, events, reference signing."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak
from web3 import Web3
from web3.logs import DISCARD

from micropay._utils.reverts import ErrorDecoder, revert_data
from micropay.channel import ChannelKey
from micropay.errors import ContractRevert

ETH = "0x0000000000000000000000000000000000000000"
ZERO32 = b"\x00" * 32
DAY = 86_400
HOUR = 3_600
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@dataclass(frozen=True)
class Key:
    """A channel key as the contract's ChannelKey struct; ``signer`` ETH (the zero address) means
    the payer signs its own vouchers."""

    payer: str
    payee: str
    token: str
    salt: int
    signer: str = ETH

    def tuple(self) -> tuple[str, str, str, int, str]:
        return (self.payer, self.payee, self.token, self.salt, self.signer)

    def id(self) -> bytes:
        return keccak(abi_encode(["address", "address", "address", "uint96", "address"], list(self.tuple())))

    def payer_args(self) -> tuple[str, str, int, str]:
        """(payee, token, salt, signer): how the payer's own calls name the channel."""
        return (self.payee, self.token, self.salt, self.signer)

    @property
    def voucher_signer(self) -> str:
        """Who must sign this channel's vouchers: the delegated signer, or the payer."""
        return self.payer if self.signer == ETH else self.signer

    def channel_key(self) -> ChannelKey:
        """The same key as micropay's ChannelKey (for micropay.packing)."""
        return ChannelKey(self.payer, self.payee, self.token, self.salt, None if self.signer == ETH else self.signer)


def transact(fn: Any, sender: str, value: int = 0) -> Any:
    """Send a contract call from a node-managed account; returns the (successful) receipt."""
    w3 = fn.w3
    tx_hash = fn.transact({"from": sender, "value": value})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    assert receipt.status == 1
    return receipt


@contextlib.contextmanager
def reverts(contract: Any, error: str, **expected_args: Any) -> Iterator[list[ContractRevert]]:
    """Expect the block to revert with `contract`'s custom error `error` (and these arguments)."""
    decoded: list[ContractRevert] = []
    with pytest.raises(Exception) as info:
        yield decoded
    revert = ErrorDecoder(contract.abi).from_exception(info.value)
    assert revert is not None, f"expected {error}, got undecodable {info.value!r}"
    assert revert.name == error, f"expected {error}, got {revert}"
    for name, value in expected_args.items():
        assert revert.args_by_name[name] == value, f"{name}: {revert.args_by_name[name]!r} != {value!r}"
    decoded.append(revert)


@contextlib.contextmanager
def reverts_with_reason(reason: str) -> Iterator[None]:
    """Expect a plain Error(string) revert whose data mentions `reason`, or a reason string."""
    with pytest.raises(Exception) as info:
        yield
    data = revert_data(info.value)
    text = str(info.value) if data is None else data.decode("latin-1")
    assert reason in text, f"expected revert mentioning {reason!r}, got {info.value!r}"


def events(contract: Any, receipt: Any, name: str) -> list[Any]:
    """Decoded `name` events that `contract` emitted in `receipt`, in order."""
    return list(getattr(contract.events, name)().process_receipt(receipt, errors=DISCARD))


def sign_voucher(
    private_key: bytes, *, chain_id: int, escrow: str, channel_id: bytes, amount: int, ledger_root: bytes
) -> bytes:
    """Reference EIP-712 signing through eth-account's full encode_typed_data path."""
    message = encode_typed_data(full_message=voucher_typed_data(chain_id, escrow, channel_id, amount, ledger_root))
    return bytes(Account.sign_message(message, private_key).signature)


def voucher_typed_data(chain_id: int, escrow: str, channel_id: bytes, amount: int, ledger_root: bytes) -> dict:
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Voucher": [
                {"name": "channelId", "type": "bytes32"},
                {"name": "cumulativeAmount", "type": "uint256"},
                {"name": "ledgerRoot", "type": "bytes32"},
            ],
        },
        "primaryType": "Voucher",
        "domain": {"name": "MicropayEscrow", "version": "2", "chainId": chain_id, "verifyingContract": escrow},
        "message": {"channelId": channel_id, "cumulativeAmount": amount, "ledgerRoot": ledger_root},
    }


def high_s(signature: bytes) -> bytes:
    """The malleable twin of a valid signature: s' = n - s, v flipped. ecrecover accepts it."""
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    return r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])


def eth_balance(w3: Web3, address: str) -> int:
    return w3.eth.get_balance(address)


def gas_cost(receipt: Any) -> int:
    return receipt.gasUsed * receipt.effectiveGasPrice


def store_bytes(path: Path) -> str:
    """Digest of a voucher store's files (the database and its write-ahead log)."""
    digest = hashlib.sha256()
    for suffix in ("", "-wal"):
        f = Path(str(path) + suffix)
        digest.update(f.read_bytes() if f.exists() else b"")
    return digest.hexdigest()


class WalletSigner:
    """A micropay DigestSigner for an OwnerWallet (tests/contracts): the owner's key signs the
    voucher digest, 65 bytes, which the wallet accepts through EIP-1271."""

    def __init__(self, wallet: Any, owner: Any) -> None:
        self.address, self.owner = wallet.address, owner

    def sign_digest(self, digest: bytes) -> bytes:
        return bytes(self.owner.unsafe_sign_hash(digest).signature)


class SafeSigner:
    """A micropay DigestSigner for a Safe (tests/safe.py): ``owners`` sign the voucher digest as
    a SafeMessage, 65 bytes per owner, which the Safe accepts through EIP-1271."""

    def __init__(self, safe: Any, owners: Any) -> None:
        self.address, self.safe, self.owners = safe.address, safe, owners

    def sign_digest(self, digest: bytes) -> bytes:
        return bytes(self.safe.sign_message(digest, self.owners))


def count_signature_checks(monkeypatch: Any, escrow: Any) -> list[tuple[str, bytes, bytes]]:
    """Wrap the escrow proxy's ``is_signed_by`` (the chain call a contract signature costs) to
    record each (signer, digest, signature) it is asked about; the list fills as it is called."""
    calls: list[tuple[str, bytes, bytes]] = []
    real = escrow.is_signed_by

    def is_signed_by(signer: str, digest: bytes, signature: bytes) -> bool:
        calls.append((signer, digest, signature))
        return bool(real(signer, digest, signature))

    monkeypatch.setattr(escrow, "is_signed_by", is_signed_by)
    return calls


def agree_and_open(payer: Any, payee: Any, freelancer: Any, title: str, tasks: tuple[Any, ...],
                   **plan_fields: Any) -> tuple[Any, Any, Any]:
    """A plan the freelancer proposes and the client accepts (the freelancer takes the acceptance),
    and the channel the client opens under it: (plan, signed acceptance, channel record)."""
    import time

    from micropay.plan import Plan

    fields = {"proposed_at": int(time.time())} | plan_fields
    plan = Plan(title, payer.address, freelancer.address, payee.escrow.chain_id, payee.escrow.address,
                "0x" + "00" * 20, tasks, freelancer.address, **fields)
    accepted = payer.plans.accept(payee.plans.propose(plan, freelancer).encode(), payer.account)
    payee.plans.take(accepted.encode())
    return plan, accepted, payer.open_for_plan(accepted.hash)


def signed_payments(payer: Any, channel: Any, count: int, amount: int = 10**12, prefix: str = "t") -> list[str]:
    """The channel's next ``count`` payments (tasks ``t0``, ``t1``…), signed ahead, one receipt each:
    payment ``n`` is for the cumulative ``amount * (n + 1)``."""
    from micropay.ledger import EMPTY_ROOT, TaskReceipt, extend_entries
    from micropay.payment import Payment
    from micropay.voucher import sign_voucher as sign

    texts, last = [], None
    for n in range(count):
        (entry,) = extend_entries(last, [TaskReceipt(f"{prefix}{n}", amount, EMPTY_ROOT, "")])
        voucher = sign(payer.account, chain_id=channel.chain_id, escrow=channel.escrow, channel_id=channel.id,
                       amount=entry.total, ledger_root=entry.root)
        texts.append(Payment.of(voucher, (entry.receipt,), n).encode())
        last = entry
    return texts
