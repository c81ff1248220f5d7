"""Payment: a voucher plus the task receipts it adds, as a client sends it to a freelancer.

A voucher commits to the task ledger only through its root. So the payee can see (and check)
what it paid for, a payment carries the receipts from ``first_index`` on, usually just the one
new task. If the payee holds fewer receipts than ``first_index`` (a payment got lost), it answers
with :class:`~micropay.errors.LedgerGap` and the payer resends the latest payment from there:
vouchers are cumulative, so resending the latest is always harmless.

A bare voucher (``mpv1…``) is a payment that names no receipts (``first_index`` None): enough to
repeat one already held, never enough to add tasks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from micropay._utils import textform
from micropay.errors import InvalidVoucher, MicropayValueError
from micropay.ledger import TaskReceipt
from micropay.voucher import Voucher

TEXT_PREFIX = "mpp1"
#: Bytes of the voucher at the start of a payment payload (see :meth:`Voucher.to_bytes`).
VOUCHER_SIZE = 169


@dataclass(frozen=True)
class Payment:
    """A :class:`Voucher` with the receipts ``first_index`` .. end of its ledger.

    Raises :class:`InvalidVoucher` if the parts are of the wrong type or range."""

    voucher: Voucher
    receipts: tuple[TaskReceipt, ...] = ()
    first_index: int | None = 0

    def __post_init__(self) -> None:
        if not isinstance(self.voucher, Voucher):
            raise InvalidVoucher("a payment's voucher must be a Voucher")
        if not isinstance(self.receipts, tuple) or not all(isinstance(r, TaskReceipt) for r in self.receipts):
            raise InvalidVoucher("payment receipts must be a tuple of TaskReceipt")
        index = self.first_index
        if index is None:
            if self.receipts:
                raise InvalidVoucher("a bare voucher carries no receipts")
        elif not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 2**32:
            raise InvalidVoucher("payment first_index must be a non-negative integer")

    @classmethod
    def of(cls, voucher: Voucher, receipts: tuple[TaskReceipt, ...], first_index: int) -> Payment:
        return cls(voucher, tuple(receipts), first_index)

    @classmethod
    def bare(cls, voucher: Voucher) -> Payment:
        """A voucher sent on its own: it says how much, not for which tasks."""
        return cls(voucher, (), None)

    @property
    def is_bare(self) -> bool:
        return self.first_index is None

    @property
    def channel_id(self) -> bytes:
        """The voucher's channel (the rest of it is ``payment.voucher``)."""
        return self.voucher.channel_id

    @property
    def amount(self) -> int:
        """The voucher's cumulative amount."""
        return self.voucher.amount

    def encode(self) -> str:
        """``mpp1`` + base32(voucher, first index, receipts as JSON, 4-byte keccak checksum); a
        bare voucher encodes as its own ``mpv1`` text."""
        if self.first_index is None:
            return self.voucher.encode()
        receipts = json.dumps([r.to_dict() for r in self.receipts], separators=(",", ":"), ensure_ascii=False)
        return textform.wrap(TEXT_PREFIX, self.voucher.to_bytes() + self.first_index.to_bytes(4, "big")
                             + receipts.encode())

    @classmethod
    def decode(cls, text: str) -> Payment:
        """Parse ``mpp1…`` text. Raises :class:`InvalidVoucher` for anything malformed."""
        payload = textform.unwrap(text, TEXT_PREFIX, "payment")
        if len(payload) < VOUCHER_SIZE + 4 + 2:
            raise InvalidVoucher("payment text is too short: it was cut")
        first_index = int.from_bytes(payload[VOUCHER_SIZE:VOUCHER_SIZE + 4], "big")
        try:
            items = json.loads(payload[VOUCHER_SIZE + 4:].decode())
            if not isinstance(items, list):
                raise InvalidVoucher("payment receipts must be a list")
            receipts = tuple(TaskReceipt.from_dict(item) for item in items)
        except (UnicodeDecodeError, json.JSONDecodeError, MicropayValueError) as exc:
            raise InvalidVoucher(f"payment receipts are malformed: {exc}") from exc
        return cls(Voucher.from_bytes(payload[:VOUCHER_SIZE]), receipts, first_index)


def parse_payment(value: object) -> Payment:
    """A Payment from a Payment, a Voucher, or their text (``mpp1…`` or ``mpv1…``).

    Raises :class:`InvalidVoucher` for anything else or anything malformed."""
    if isinstance(value, Payment):
        return value
    if isinstance(value, Voucher):
        return Payment.bare(value)
    if isinstance(value, str):
        if value.lstrip()[: len(TEXT_PREFIX)].lower() == TEXT_PREFIX:
            return Payment.decode(value)
        return Payment.bare(Voucher.decode(value))
    raise InvalidVoucher(f"expected a voucher, a payment or their text, got {type(value).__name__}")
