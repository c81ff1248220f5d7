"""The task ledger: what each payment bought, committed in every voucher's ledger root.

Each paid task is a :class:`TaskReceipt`. The ledger root is a hash chain over the receipts in
order::

    root_0 = 0x00…00
    root_i = keccak256(abi.encode(root_{i-1}, receiptHash_i))
    receiptHash = keccak256(abi.encode(RECEIPT_TYPEHASH, keccak(taskId), amount, deliverable, keccak(note)))

Why a hash chain and not a Merkle tree: a ledger only ever grows by one receipt per voucher, and
the payee must check that each new voucher *extends* the ledger it already holds. With a chain
that check is one hash (``extend_root(previous_root, receipt) == voucher.ledger_root``), needs no
stored frontier, and the whole receipt list (which both sides keep anyway) proves every task a
settlement covered. A Merkle tree would only pay off for proving one task without the others,
which no party here needs. The receipt hash follows EIP-712 struct hashing, so a contract or a
wallet could recompute it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from micropay._utils.crypto import keccak
from micropay.errors import LedgerMismatch, MicropayValueError
from micropay.types import MAX_AMOUNT
from micropay.voucher import Voucher

EMPTY_ROOT = bytes(32)
RECEIPT_TYPEHASH = keccak(b"TaskReceipt(string taskId,uint256 amount,bytes32 deliverable,string note)")
MAX_TASK_ID_BYTES = 256
MAX_NOTE_BYTES = 2048


class InvalidReceipt(MicropayValueError):
    """A task receipt is malformed."""


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError as exc:  # a lone surrogate: text no UTF-8 document can carry
        raise InvalidReceipt(f"{what} is not valid Unicode text ({exc.reason} at {exc.start})") from None


@dataclass(frozen=True)
class TaskReceipt:
    """One paid task: its id, its price in base units, and optionally a deliverable hash and note."""

    task_id: str
    amount: int
    deliverable: bytes = EMPTY_ROOT
    note: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.task_id, str) or not self.task_id.strip():
            raise InvalidReceipt("task id must be a non-empty string")
        if len(_utf8(self.task_id, "task id")) > MAX_TASK_ID_BYTES:
            raise InvalidReceipt(f"task id is longer than {MAX_TASK_ID_BYTES} bytes")
        if not isinstance(self.amount, int) or isinstance(self.amount, bool) or not 0 < self.amount <= MAX_AMOUNT:
            raise InvalidReceipt(f"task amount must be an integer in [1, {MAX_AMOUNT}], got {self.amount!r}")
        if not isinstance(self.deliverable, (bytes, bytearray)) or len(self.deliverable) != 32:
            raise InvalidReceipt("deliverable must be a 32-byte hash (zero bytes for none)")
        object.__setattr__(self, "deliverable", bytes(self.deliverable))
        if not isinstance(self.note, str) or len(_utf8(self.note, "note")) > MAX_NOTE_BYTES:
            raise InvalidReceipt(f"note must be a string of at most {MAX_NOTE_BYTES} bytes")

    def hash(self) -> bytes:
        """EIP-712 hashStruct: keccak256(abi.encode(typehash, keccak(taskId), amount, deliverable,
        keccak(note))), five static 32-byte words."""
        return keccak(RECEIPT_TYPEHASH + keccak(self.task_id.encode()) + self.amount.to_bytes(32, "big")
                      + self.deliverable + keccak(self.note.encode()))

    def to_dict(self) -> dict[str, object]:
        """The receipt as JSON: ``taskId``, ``amount`` (a decimal string), ``deliverable`` (0x-hex), ``note``."""
        return {"taskId": self.task_id, "amount": str(self.amount), "deliverable": "0x" + self.deliverable.hex(),
                "note": self.note}

    @classmethod
    def from_dict(cls, data: object) -> TaskReceipt:
        """The receipt in :meth:`to_dict` JSON. Raises :class:`InvalidReceipt` for anything malformed."""
        if not isinstance(data, dict) or set(data) != {"taskId", "amount", "deliverable", "note"}:
            raise InvalidReceipt("task receipt JSON must have exactly taskId, amount, deliverable, note")
        amount, deliverable = data["amount"], data["deliverable"]
        if not isinstance(amount, str) or not amount.isascii() or not amount.isdigit() or len(amount) > 78:
            raise InvalidReceipt("task amount must be a decimal string of at most 78 digits (uint256)")
        if not isinstance(deliverable, str) or not deliverable.startswith("0x"):
            raise InvalidReceipt("deliverable must be 0x-hex")
        try:
            deliverable_bytes = bytes.fromhex(deliverable[2:])
        except ValueError as exc:
            raise InvalidReceipt("deliverable is not valid hex") from exc
        return cls(data["taskId"], int(amount), deliverable_bytes, data["note"])


def extend_root(root: bytes, receipt: TaskReceipt) -> bytes:
    """The ledger root after appending ``receipt`` to a ledger whose root is ``root``."""
    return keccak(root + receipt.hash())


@dataclass(frozen=True)
class LedgerEntry:
    """One receipt of a ledger with the root and running total after it."""

    receipt: TaskReceipt
    root: bytes
    total: int


def extend_entries(last: LedgerEntry | None, receipts: Iterable[TaskReceipt]) -> list[LedgerEntry]:
    """Ledger entries for ``receipts`` appended after ``last`` (None for an empty ledger): the one
    place a ledger's roots and totals are computed.

    Raises :class:`InvalidReceipt` if the running total would exceed the escrow's maximum.
    """
    root = last.root if last else EMPTY_ROOT
    total = last.total if last else 0
    entries = []
    for receipt in receipts:
        total += receipt.amount
        if total > MAX_AMOUNT:
            raise InvalidReceipt(f"ledger total {total} would exceed the escrow's maximum {MAX_AMOUNT}")
        root = extend_root(root, receipt)
        entries.append(LedgerEntry(receipt, root, total))
    return entries


def ledger_root(receipts: Iterable[TaskReceipt]) -> bytes:
    """The root of a ledger holding ``receipts`` in order."""
    entries = extend_entries(None, receipts)
    return entries[-1].root if entries else EMPTY_ROOT


@dataclass(frozen=True)
class Ledger:
    """An immutable list of receipts with its running total and root."""

    receipts: tuple[TaskReceipt, ...] = ()
    total: int = 0
    root: bytes = EMPTY_ROOT

    @classmethod
    def of(cls, receipts: Iterable[TaskReceipt]) -> Ledger:
        """The ledger of ``receipts``, in linear time. Raises :class:`InvalidReceipt` past the maximum."""
        items = tuple(receipts)
        entries = extend_entries(None, items)
        return cls(items, entries[-1].total, entries[-1].root) if entries else cls()

    def append(self, receipt: TaskReceipt) -> Ledger:
        """A new ledger with ``receipt`` at the end (copies the receipts: use :meth:`of` in bulk)."""
        (entry,) = extend_entries(LedgerEntry(receipt, self.root, self.total), [receipt])
        return Ledger((*self.receipts, receipt), entry.total, entry.root)


def verify_ledger(receipts: Sequence[TaskReceipt], voucher: Voucher) -> Ledger:
    """Check that ``receipts`` are exactly what ``voucher`` paid for: the amounts sum to its
    cumulative amount and the hash chain gives its ledger root. Returns the ledger.

    Raises :class:`LedgerMismatch` if they do not, :class:`InvalidReceipt` past the maximum."""
    ledger = Ledger.of(receipts)
    if ledger.total != voucher.amount:
        raise LedgerMismatch(f"receipts sum to {ledger.total}, the voucher promises {voucher.amount}")
    if ledger.root != voucher.ledger_root:
        raise LedgerMismatch("receipts do not hash to the voucher's ledger root (a task was changed, "
                             "added, dropped or reordered)")
    return ledger
