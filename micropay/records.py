"""What the voucher store holds, as frozen values, and how each maps to a SQLite row.

Amounts are 32-byte big-endian blobs (PostgreSQL: ``bytea``): lossless for uint256 and ordered
correctly by both databases' byte comparison.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from micropay._utils.crypto import keccak
from micropay.channel import ChannelKey, ChannelRef, ChannelState
from micropay.documents import read_document
from micropay.errors import MicropayValueError, StoreError
from micropay.feedback import SignedFeedback
from micropay.ledger import LedgerEntry, TaskReceipt
from micropay.plan import SignedPlan

Role = Literal["payer", "payee"]
SettlementStatus = Literal["pending", "confirmed", "failed"]
#: A value SQLite hands back for a column.
SqlValue = bytes | str | int | float | None
Row = Sequence[SqlValue]


def store_key(channel: ChannelRef, owner: str) -> bytes:
    """The key a store keeps ``channel``'s rows under, for the account ``owner`` (checksummed; ''
    for a store of one account): the channel's ``uid`` for '', else keccak256 of the ``uid`` and the
    owner's 20 bytes, so one database holds the payer's and the payee's rows of a channel apart."""
    if not owner:
        return channel.uid
    return keccak(channel.uid + bytes.fromhex(owner[2:]))


def u256(value: int) -> bytes:
    """An amount as the store keeps it: 32 bytes, big-endian."""
    return value.to_bytes(32, "big")


def from_u256(blob: SqlValue) -> int:
    """The amount in a 32-byte big-endian blob."""
    return int.from_bytes(as_bytes(blob), "big")


def _altered(value: SqlValue, kind: str) -> StoreError:
    return StoreError(f"a column holds {type(value).__name__} where {kind} belongs: the store was altered")


def as_bytes(value: SqlValue) -> bytes:
    """``value`` if it is a blob. Raises :class:`StoreError` (an altered store) if it is not."""
    if not isinstance(value, bytes):
        raise _altered(value, "a blob")
    return value


def as_int(value: SqlValue) -> int:
    """``value`` if it is an integer. Raises :class:`StoreError` (an altered store) if it is not."""
    if not isinstance(value, int):
        raise _altered(value, "an integer")
    return value


def as_float(value: SqlValue) -> float:
    """``value`` as a float if it is a number. Raises :class:`StoreError` (an altered store) if it is not."""
    if not isinstance(value, (int, float)):
        raise _altered(value, "a number")
    return float(value)


def as_str(value: SqlValue) -> str:
    """``value`` if it is text. Raises :class:`StoreError` (an altered store) if it is not."""
    if not isinstance(value, str):
        raise _altered(value, "text")
    return value


def _role(value: SqlValue) -> Role:
    if value == "payer":
        return "payer"
    if value == "payee":
        return "payee"
    raise _altered(value, "a role")


def _status(value: SqlValue) -> SettlementStatus:
    for status in ("pending", "confirmed", "failed"):
        if value == status:
            return status
    raise _altered(value, "a settlement status")


@dataclass(frozen=True)
class ChannelRecord:
    """A channel as this store knows it: its key, its role here, and the last chain state read."""

    key: ChannelKey
    chain_id: int
    escrow: str
    role: Role
    deposit: int
    claimed: int
    expiry: int
    window: int
    closed: bool
    checked_at: float  # wall-clock time of the last chain read
    observed_at: int = 0  # block time of that read
    issued: int = 0  # payer: the highest cumulative amount ever signed
    terms: bytes | None = None  # the 32-byte terms it was opened with (a plan's hash); None: not known

    @property
    def id(self) -> bytes:
        """The channel's id (its key's)."""
        return self.key.id

    @cached_property
    def ref(self) -> ChannelRef:
        """Chain, escrow and id: what names this channel in a store."""
        return ChannelRef(self.chain_id, self.escrow, self.key.id)

    @property
    def seen_on_chain(self) -> bool:
        """False for a channel recorded before its opening transaction was confirmed."""
        return self.observed_at > 0

    @classmethod
    def of(cls, state: ChannelState, chain_id: int, escrow: str, role: Role) -> ChannelRecord:
        """A new record of ``state``, read just now."""
        return cls(state.key, chain_id, escrow, role, state.deposit, state.claimed, state.expiry, state.window,
                   state.closed, time.time(), state.observed_at)

    def updated(self, chain: ChannelRecord | ChannelState, checked_at: float) -> ChannelRecord:
        """This record with the chain state of ``chain``, read at wall-clock ``checked_at``: what
        :meth:`StoreTransaction.update_chain_state` writes."""
        return dataclasses.replace(self, deposit=chain.deposit, claimed=chain.claimed, expiry=chain.expiry,
                                   closed=chain.closed, checked_at=checked_at, observed_at=chain.observed_at)

    #: The columns of :meth:`to_row`, in order.
    COLUMNS = ("uid, id, chain_id, escrow, role, payer, payee, token, salt, deposit, claimed, expiry, \"window\", "
               "closed, checked_at, observed_at, issued, signer, terms")

    def to_row(self) -> tuple[SqlValue, ...]:
        """The record as a ``channels`` row, in :attr:`COLUMNS` order (signer NULL: the payer signs)."""
        return (self.ref.uid, self.id, self.chain_id, self.escrow, self.role, self.key.payer, self.key.payee,
                self.key.token, u256(self.key.salt), u256(self.deposit), u256(self.claimed), self.expiry, self.window,
                int(self.closed), self.checked_at, self.observed_at, u256(self.issued), self.key.signer, self.terms)

    @classmethod
    def from_row(cls, row: Row) -> ChannelRecord:
        """Raises :class:`StoreError` if the row's id does not match its key, or a column holds the
        wrong type (an altered store)."""
        (_, cid, chain_id, escrow, role, payer, payee, token, salt, deposit, claimed, expiry, window, closed,
         checked_at, observed_at, issued, signer, terms) = row
        try:
            key = ChannelKey(as_str(payer), as_str(payee), as_str(token), from_u256(salt),
                             None if signer is None else as_str(signer))
        except MicropayValueError as exc:
            raise StoreError(f"a channel row holds a malformed key ({exc}): the store was altered") from None
        if key.id != cid:
            raise StoreError(f"channel row 0x{key.id.hex()} does not match its key: the store was altered")
        return cls(key, as_int(chain_id), as_str(escrow), _role(role), from_u256(deposit), from_u256(claimed),
                   as_int(expiry), as_int(window), bool(closed), as_float(checked_at), as_int(observed_at),
                   from_u256(issued), None if terms is None else as_bytes(terms))


@dataclass(frozen=True)
class BestVoucher:
    """The highest voucher held on a channel, unparsed: the receive path only compares it."""

    amount: int
    ledger_root: bytes
    signature: bytes
    receipt_count: int


@dataclass(frozen=True)
class ChannelTip:
    """What a new voucher on a channel is judged against: the channel row, the best voucher held
    and the ledger entry that voucher ends on."""

    record: ChannelRecord
    best: BestVoucher | None
    last: LedgerEntry | None


@dataclass(frozen=True)
class SettlementRecord:
    """One claimMany transaction as recorded before it was broadcast, and what became of it."""

    tx_hash: bytes
    raw_tx: bytes | None
    escrow: str
    token: str
    status: SettlementStatus
    items: list[tuple[bytes, int]]  # (channel id, cumulative amount claimed)
    gross: int
    gas_used: int | None
    fee: int | None
    block: int | None
    chain_id: int = 0  # 0: recorded by a store from before chain ids were kept
    created_at: float = 0.0  # wall-clock time it was recorded (set by to_row when 0)

    #: The columns of :meth:`to_row`, in order.
    COLUMNS = "tx_hash, raw_tx, chain_id, escrow, token, status, items, gross, gas_used, fee, block, created_at"

    def to_row(self) -> tuple[SqlValue, ...]:
        """The record as a ``settlements`` row, in :attr:`COLUMNS` order (``created_at`` now if unset)."""
        items = json.dumps([[cid.hex(), str(amount)] for cid, amount in self.items])
        return (self.tx_hash, self.raw_tx, self.chain_id, self.escrow, self.token, self.status, items,
                u256(self.gross), self.gas_used, None if self.fee is None else u256(self.fee), self.block,
                self.created_at or time.time())

    @classmethod
    def from_row(cls, row: Row) -> SettlementRecord:
        """The record in a ``settlements`` row. Raises :class:`StoreError` if a column holds the wrong
        type (an altered store)."""
        tx_hash, raw_tx, chain_id, escrow, token, status, items, gross, gas_used, fee, block, created_at = row
        parsed = [(bytes.fromhex(cid), int(amount)) for cid, amount in json.loads(as_str(items))]
        return cls(as_bytes(tx_hash), None if raw_tx is None else as_bytes(raw_tx), as_str(escrow), as_str(token),
                   _status(status), parsed, from_u256(gross), None if gas_used is None else as_int(gas_used),
                   None if fee is None else from_u256(fee), None if block is None else as_int(block),
                   as_int(chain_id), as_float(created_at))


def entry_from_row(row: Row) -> LedgerEntry:
    """The ledger entry in a ``receipts`` row (without its channel and index). Raises :class:`StoreError`
    if a column holds the wrong type, :class:`InvalidReceipt` if its values make no receipt."""
    task_id, amount, deliverable, note, root, total = row
    return LedgerEntry(TaskReceipt(as_str(task_id), from_u256(amount), as_bytes(deliverable), as_str(note)),
                       as_bytes(root), from_u256(total))


def entry_to_row(channel_id: bytes, index: int, entry: LedgerEntry) -> tuple[SqlValue, ...]:
    """The ``receipts`` row of ``entry``, receipt ``index`` of the channel whose store key
    (:attr:`ChannelRef.uid`) is ``channel_id``."""
    receipt = entry.receipt
    return (channel_id, index, receipt.task_id, u256(receipt.amount), receipt.deliverable, receipt.note,
            entry.root, u256(entry.total))


@dataclass(frozen=True)
class StoredPlan:
    """A plan version as a store keeps it: ``root`` is its first version's hash (the project),
    ``received_at`` the wall-clock time this store first held it."""

    signed: SignedPlan
    root: bytes
    received_at: float

    @classmethod
    def from_row(cls, row: Row) -> StoredPlan:
        """The plan in a ``plans`` row (root, document, received_at). Raises :class:`StoreError`
        if it does not parse (an altered store)."""
        root, document, received_at = row
        try:
            signed = SignedPlan.from_dict(read_document(as_str(document)))
        except MicropayValueError as exc:
            raise StoreError(f"a stored plan does not parse ({exc}): the store was altered") from None
        return cls(signed, as_bytes(root), as_float(received_at))


@dataclass(frozen=True)
class StoredFeedback:
    """Feedback as a store keeps it, with the wall-clock time this store first held it."""

    signed: SignedFeedback
    received_at: float

    @classmethod
    def from_row(cls, row: Row) -> StoredFeedback:
        """The feedback in a ``feedback`` row (document, received_at). Raises :class:`StoreError`
        if it does not parse (an altered store)."""
        document, received_at = row
        try:
            signed = SignedFeedback.from_dict(read_document(as_str(document)))
        except MicropayValueError as exc:
            raise StoreError(f"stored feedback does not parse ({exc}): the store was altered") from None
        return cls(signed, as_float(received_at))


DeliveryState = Literal["queued", "held"]


@dataclass(frozen=True)
class DeliveryRecord:
    """A payment in the client's outbox: ``queued`` for its channel's inbox, or ``held`` by the
    freelancer, with the acknowledgment that says so (its ``ack_amount`` is at least ``amount``:
    an acknowledgment of a later payment covers this one). ``channel`` is the store key (uid)."""

    channel: bytes
    amount: int
    state: DeliveryState
    attempts: int
    last_error: str | None
    last_attempt: float | None
    ack_amount: int | None
    ack_root: bytes | None
    ack_signature: bytes | None
    acked_at: float | None
    created_at: float

    COLUMNS = ("channel, amount, state, attempts, last_error, last_attempt, ack_amount, ack_root, ack_signature, "
               "acked_at, created_at")

    @classmethod
    def from_row(cls, row: Row) -> DeliveryRecord:
        """The record in a ``deliveries`` row (:attr:`COLUMNS`). Raises :class:`StoreError` for an altered row."""
        channel, amount, state, attempts, error, attempt, ack_amount, ack_root, ack_sig, acked_at, created = row
        checked: DeliveryState = "queued" if state == "queued" else "held"
        if state != checked:
            raise StoreError(f"a delivery's state is {state!r}: the store was altered")
        return cls(as_bytes(channel), from_u256(amount), checked, as_int(attempts),
                   None if error is None else as_str(error), None if attempt is None else as_float(attempt),
                   None if ack_amount is None else from_u256(ack_amount),
                   None if ack_root is None else as_bytes(ack_root),
                   None if ack_sig is None else as_bytes(ack_sig), None if acked_at is None else as_float(acked_at),
                   as_float(created))
