"""Payment: a voucher plus the task receipts it adds, as a client sends it to a freelancer.

A voucher commits to the task ledger only through its root. So the payee can see (and check)
what it paid for, a payment carries the receipts from ``first_index`` on, usually just the one
new task. If the payee holds fewer receipts than ``first_index`` (a payment got lost), it answers
with :class:`~micropay.errors.LedgerGap` and the payer resends the latest payment from there:
vouchers are cumulative, so resending the latest is always harmless.

A bare voucher (``mpv1…``) is a payment that names no receipts (``first_index`` None): enough to
repeat one already held, never enough to add tasks.

Text forms: ``mpp1`` carries a voucher with a 65-byte (ECDSA) signature, as every micropay reads;
``mpp2``, used only for a contract's (EIP-1271) signature of another length, carries the
signature's length before it.
"""

from __future__ import annotations

from dataclasses import dataclass

from micropay._utils import bounded, textform
from micropay.errors import InvalidVoucher, MicropayValueError
from micropay.ledger import EMPTY_ROOT, InvalidReceipt, TaskReceipt
from micropay.voucher import ECDSA_SIGNATURE_SIZE, HEADER_SIZE, MAX_CONTRACT_SIGNATURE, Voucher

TEXT_PREFIX = "mpp1"
#: The prefix of a payment whose voucher carries a contract signature (not 65 bytes).
CONTRACT_TEXT_PREFIX = "mpp2"
#: Bytes of the voucher at the start of an ``mpp1`` payload (see :meth:`Voucher.to_bytes`).
VOUCHER_SIZE = HEADER_SIZE + ECDSA_SIGNATURE_SIZE


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
        """A payment of ``voucher`` with the receipts from index ``first_index`` on. Raises
        :class:`InvalidVoucher` if a part is of the wrong type or range."""
        return cls(voucher, tuple(receipts), first_index)

    @classmethod
    def bare(cls, voucher: Voucher) -> Payment:
        """A voucher sent on its own: it says how much, not for which tasks."""
        return cls(voucher, (), None)

    @property
    def is_bare(self) -> bool:
        """Whether this is a bare voucher, naming no receipts."""
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
        """``mpp1`` + base32(voucher, first index, receipts, 4-byte keccak checksum); a bare
        voucher encodes as its own ``mpv1`` text. Receipts are binary (:func:`pack_receipts`).
        A voucher with a contract signature makes it ``mpp2``: its voucher is the fixed header,
        the signature's length (2 bytes) and the signature. Never raises."""
        if self.first_index is None:
            return self.voucher.encode()
        tail = self.first_index.to_bytes(4, "big") + pack_receipts(self.receipts)
        voucher = self.voucher.to_bytes()
        if not self.voucher.is_contract_signature:
            return textform.wrap(TEXT_PREFIX, voucher + tail)
        signature = self.voucher.signature
        return textform.wrap(CONTRACT_TEXT_PREFIX, voucher[:HEADER_SIZE] + len(signature).to_bytes(2, "big")
                             + signature + tail)

    @classmethod
    def decode(cls, text: str, *, max_chars: int = textform.MAX_TEXT) -> Payment:
        """Parse ``mpp1…`` or ``mpp2…`` text, of the binary or the older JSON receipts form.
        Raises :class:`InvalidVoucher` for anything malformed or longer than ``max_chars``."""
        contract = isinstance(text, str) and text.lstrip()[: len(CONTRACT_TEXT_PREFIX)].lower() == CONTRACT_TEXT_PREFIX
        payload = textform.unwrap(text, CONTRACT_TEXT_PREFIX if contract else TEXT_PREFIX, "payment", max_chars)
        size = VOUCHER_SIZE
        voucher = payload[:size]
        if contract:
            length = int.from_bytes(payload[HEADER_SIZE:HEADER_SIZE + 2], "big")
            if not 0 < length <= MAX_CONTRACT_SIGNATURE or length == ECDSA_SIGNATURE_SIZE:
                raise InvalidVoucher(f"an mpp2 payment's signature length {length} is not a contract signature's")
            size = HEADER_SIZE + 2 + length
            voucher = payload[:HEADER_SIZE] + payload[HEADER_SIZE + 2:size]
        if len(payload) < size + 4 + 1:
            raise InvalidVoucher("payment text is too short: it was cut")
        first_index = int.from_bytes(payload[size:size + 4], "big")
        body = payload[size + 4:]
        try:
            receipts = unpack_receipts(body[1:]) if body[0] == _BINARY else _json_receipts(body, max_chars)
        except MicropayValueError as exc:
            raise InvalidVoucher(f"payment receipts are malformed: {exc}") from exc
        return cls(Voucher.from_bytes(voucher), receipts, first_index)


# The receipts of a payment: a format byte, then each receipt as
#   flags (1: has a deliverable, 2: has a note) | task id length (2) | task id (UTF-8)
#   | amount length (1) | amount (big-endian, no leading zeros) | [deliverable (32)] | [note length (2) | note]
# Older payments carry the receipts as a JSON list instead, which starts with "[".
_BINARY = 1
_HAS_DELIVERABLE, _HAS_NOTE = 1, 2


def pack_receipts(receipts: tuple[TaskReceipt, ...]) -> bytes:
    """The compact binary form of receipts in a payment (empty fields are left out)."""
    out = bytearray([_BINARY])
    for r in receipts:
        task, note = r.task_id.encode(), r.note.encode()
        amount = r.amount.to_bytes((r.amount.bit_length() + 7) // 8, "big")
        flags = (_HAS_DELIVERABLE if r.deliverable != EMPTY_ROOT else 0) | (_HAS_NOTE if note else 0)
        out += bytes([flags]) + len(task).to_bytes(2, "big") + task + bytes([len(amount)]) + amount
        if flags & _HAS_DELIVERABLE:
            out += r.deliverable
        if flags & _HAS_NOTE:
            out += len(note).to_bytes(2, "big") + note
    return bytes(out)


def unpack_receipts(data: bytes) -> tuple[TaskReceipt, ...]:
    """Read :func:`pack_receipts` output (without its format byte). Raises
    :class:`MicropayValueError` (:class:`InvalidReceipt`) for anything malformed or cut."""
    receipts, at = [], 0

    def take(size: int) -> bytes:
        nonlocal at
        if size < 0 or at + size > len(data):
            raise InvalidReceipt("the receipts were cut")
        chunk, at = data[at : at + size], at + size
        return chunk

    while at < len(data):
        flags = take(1)[0]
        if flags & ~(_HAS_DELIVERABLE | _HAS_NOTE):
            raise InvalidReceipt(f"unknown receipt flags {flags:#x}")
        task = take(int.from_bytes(take(2), "big"))
        amount = int.from_bytes(take(take(1)[0]), "big")
        deliverable = take(32) if flags & _HAS_DELIVERABLE else EMPTY_ROOT
        note = take(int.from_bytes(take(2), "big")) if flags & _HAS_NOTE else b""
        try:
            receipts.append(TaskReceipt(task.decode(), amount, deliverable, note.decode()))
        except UnicodeDecodeError as exc:
            raise InvalidReceipt(f"a task id or note is not UTF-8: {exc.reason}") from None
    return tuple(receipts)


def _json_receipts(body: bytes, max_bytes: int) -> tuple[TaskReceipt, ...]:
    items = bounded.loads(body, what="payment's receipts", max_bytes=max_bytes, error=InvalidReceipt)
    if not isinstance(items, list):
        raise InvalidReceipt("payment receipts must be a list")
    return tuple(TaskReceipt.from_dict(item) for item in items)


def parse_payment(value: object, *, max_chars: int = textform.MAX_TEXT) -> Payment:
    """A Payment from a Payment, a Voucher, or their text (``mpp1…``, ``mpp2…`` or ``mpv1…``, at
    most ``max_chars`` long).

    Raises :class:`InvalidVoucher` for anything else, anything malformed or too long."""
    if isinstance(value, Payment):
        return value
    if isinstance(value, Voucher):
        return Payment.bare(value)
    if isinstance(value, str):
        if len(value) > max_chars:
            raise InvalidVoucher(f"payment text is {len(value):,} characters, above the limit of {max_chars:,}")
        if value.lstrip()[: len(TEXT_PREFIX)].lower() in (TEXT_PREFIX, CONTRACT_TEXT_PREFIX):
            return Payment.decode(value, max_chars=max_chars)
        return Payment.bare(Voucher.decode(value))
    raise InvalidVoucher(f"expected a voucher, a payment or their text, got {type(value).__name__}")
