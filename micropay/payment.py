"""Payment: a voucher plus the task receipts it adds, as a client sends it to a freelancer.

A voucher commits to the task ledger only through its root. So the payee can see (and check)
what it paid for, a payment carries the receipts from ``first_index`` on, usually just the one
new task. If the payee holds fewer receipts than ``first_index`` (a payment got lost), it answers
with :class:`~micropay.errors.LedgerGap` and the payer resends the latest payment from there:
vouchers are cumulative, so resending the latest is always harmless.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from micropay._utils import textform
from micropay.errors import InvalidVoucher, MicropayValueError
from micropay.ledger import TaskReceipt
from micropay.voucher import Voucher

TEXT_PREFIX = "mpp1"
_VOUCHER_SIZE = 169


@dataclass(frozen=True)
class Payment(Voucher):
    """A :class:`Voucher` that also carries receipts ``first_index`` .. end of its ledger."""

    receipts: tuple[TaskReceipt, ...] = field(default=())
    first_index: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.receipts, tuple) or not all(isinstance(r, TaskReceipt) for r in self.receipts):
            raise InvalidVoucher("payment receipts must be a tuple of TaskReceipt")
        if not isinstance(self.first_index, int) or isinstance(self.first_index, bool) or \
                not 0 <= self.first_index < 2**32:
            raise InvalidVoucher("payment first_index must be a non-negative integer")

    @classmethod
    def of(cls, voucher: Voucher, receipts: tuple[TaskReceipt, ...], first_index: int) -> Payment:
        return cls(voucher.chain_id, voucher.escrow, voucher.channel_id, voucher.amount, voucher.ledger_root,
                   voucher.signature, tuple(receipts), first_index)

    @property
    def voucher(self) -> Voucher:
        return Voucher(self.chain_id, self.escrow, self.channel_id, self.amount, self.ledger_root, self.signature)

    def encode(self) -> str:
        """``mpp1`` + base32(voucher, first index, receipts as JSON, 4-byte keccak checksum)."""
        receipts = json.dumps([r.to_dict() for r in self.receipts], separators=(",", ":"), ensure_ascii=False)
        return textform.wrap(TEXT_PREFIX, self.to_bytes() + self.first_index.to_bytes(4, "big") + receipts.encode())

    @classmethod
    def decode(cls, text: str) -> Payment:
        payload = textform.unwrap(text, TEXT_PREFIX, "payment")
        if len(payload) < _VOUCHER_SIZE + 4 + 2:
            raise InvalidVoucher("payment text is too short: it was cut")
        first_index = int.from_bytes(payload[_VOUCHER_SIZE:_VOUCHER_SIZE + 4], "big")
        try:
            items = json.loads(payload[_VOUCHER_SIZE + 4:].decode())
            if not isinstance(items, list):
                raise InvalidVoucher("payment receipts must be a list")
            receipts = tuple(TaskReceipt.from_dict(item) for item in items)
        except (UnicodeDecodeError, json.JSONDecodeError, MicropayValueError) as exc:
            raise InvalidVoucher(f"payment receipts are malformed: {exc}") from exc
        return cls(*Voucher.fields_from_bytes(payload[:_VOUCHER_SIZE]), receipts, first_index)


def parse_payment(value: object) -> Voucher:
    """A Payment or Voucher from an object or text (``mpp1…`` or ``mpv1…``)."""
    if isinstance(value, Voucher):
        return value
    if isinstance(value, str):
        if value.lstrip()[: len(TEXT_PREFIX)].lower() == TEXT_PREFIX:
            return Payment.decode(value)
        return Voucher.decode(value)
    raise InvalidVoucher(f"expected a voucher, a payment or their text, got {type(value).__name__}")
