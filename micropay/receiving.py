"""Receiving: verify a payment and store it durably before saying yes.

``Receiver.receive`` checks everything a payment must satisfy, then commits it to the store in
one durable transaction *before* returning: once a payment is acknowledged it cannot be lost,
not even to ``kill -9``. A rejected payment changes nothing in the store.

A voucher must be signed by its channel's voucher signer (the payer, or the key or contract the
payer named at open): a key's ECDSA signature is checked here, a contract's (EIP-1271) through
the escrow by :class:`SignatureChecks`.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal, overload

from micropay.channel import ChannelKey, ChannelRef
from micropay.errors import (
    ChannelExpired,
    ChannelFinal,
    DomainMismatch,
    InsufficientDeposit,
    InvalidSignature,
    InvalidVoucher,
    LedgerGap,
    LedgerMismatch,
    NotParticipant,
    StaleVoucher,
    WindowTooShort,
)
from micropay.escrow import Escrow
from micropay.ledger import LedgerEntry, TaskReceipt, extend_entries
from micropay.payment import Payment, parse_payment
from micropay.planbook import TermsCheck, check_terms
from micropay.records import BestVoucher, ChannelRecord, ChannelTip
from micropay.store import StoreTransaction, VoucherStore
from micropay.voucher import Voucher


@dataclass(frozen=True)
class Received:
    """What one received payment did: the amount it added and the tasks it paid for."""

    channel_id: bytes
    payer: str
    cumulative: int
    added: int
    tasks: tuple[TaskReceipt, ...]
    duplicate: bool = False
    #: On the first payment of a channel: whether its terms are a plan this payee signed.
    terms: TermsCheck | None = None


@dataclass(frozen=True)
class CheckedPayment:
    """A payment whose signature checked out against its channel (``record``, as stored or first
    read), with the channel's chain state to judge it by (``state``): ready to be stored."""

    payment: Payment
    record: ChannelRecord
    state: ChannelRecord
    #: The channel was not stored when checked: read from the chain (its first payment here).
    new: bool = False


class SignatureChecks:
    """Whether a voucher is signed by its channel's voucher signer, as the escrow would judge it.

    An ECDSA signature that recovers to the signer is accepted with no chain call (the fast path:
    a key signing its own channel, or a delegated hot key). Anything else (a contract's signature
    of another length, or a 65-byte one by another key, which a contract signer such as a wallet
    whose owner signed may accept) is asked of the chain: :meth:`Escrow.is_signed_by`, which calls
    the signer's EIP-1271 ``isValidSignature`` if it has code.

    What is cached, per (channel, signer, digest, signature): only that the chain *accepted* it,
    so a payment received again (a resend, a duplicate) costs no second chain call, and one
    channel's signer is asked once per distinct voucher. A signature is a fact about its bytes
    that a wallet does not take back for a voucher already accepted and stored. Not cached: a
    rejection (a Safe may approve a message later, a counterfactual wallet be deployed later:
    asking again is the only way to learn it), nor whether a signer has code (it can gain code),
    nor anything across signers or digests: every new signature is verified. The cache holds at
    most :attr:`MAX_ENTRIES` verdicts, dropping the oldest; it is safe to share between threads."""

    MAX_ENTRIES = 4096

    def __init__(self, escrow: Escrow) -> None:
        self.escrow = escrow
        self._accepted: OrderedDict[tuple[bytes, str, bytes, bytes], None] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, record: ChannelRecord, voucher: Voucher, *, offline: bool = False) -> bool:
        """Raises :class:`InvalidSignature` unless ``voucher`` is signed by ``record``'s voucher
        signer (or, for a contract signature, the chain cannot be asked: what the escrow raises).
        Returns True; False only when ``offline`` and the answer needs the chain."""
        signer = record.key.voucher_signer
        if not voucher.is_contract_signature:
            try:
                if voucher.signer == signer:
                    return True
            except InvalidSignature:
                pass  # recovers to no key: only a contract signer could accept it
        digest = voucher.digest()
        entry = (record.ref.uid, signer, digest, voucher.signature)
        with self._lock:
            if entry in self._accepted:
                self._accepted.move_to_end(entry)
                return True
        if offline:
            return False
        if not self.escrow.is_signed_by(signer, digest, voucher.signature):
            if voucher.is_contract_signature:
                raise InvalidSignature(f"the payment's contract signature is not accepted by the channel's signer "
                                       f"{signer}")
            raise InvalidSignature(f"payment signed by {voucher.signer}, but the channel's signer is {signer}")
        with self._lock:
            self._accepted[entry] = None
            if len(self._accepted) > self.MAX_ENTRIES:
                self._accepted.popitem(last=False)
        return True


class Receiver:
    """Receives payments to ``address`` on ``escrow`` into ``store``."""

    def __init__(self, escrow: Escrow, address: str, store: VoucherStore, *, safety_margin: int,
                 freshness: float, min_window: int) -> None:
        self.escrow = escrow
        self.address = address
        self.store = store
        self.safety_margin = safety_margin
        self.freshness = freshness
        self.min_window = min_window
        self.signatures = SignatureChecks(escrow)

    def receive(self, payment: Payment | Voucher | str) -> Received:
        """Verify a payment (or its text) and store it durably; returns what it added.

        Raises :class:`InvalidVoucher` (or its subclasses :class:`InvalidSignature`,
        :class:`DomainMismatch`, :class:`StaleVoucher`, :class:`LedgerGap`) for a payment that does
        not verify or connect, :class:`LedgerMismatch` for receipts that do not add up,
        :class:`NotParticipant`, :class:`UnknownChannel`, :class:`ChannelFinal`,
        :class:`ChannelExpired` or :class:`InsufficientDeposit` for a channel that cannot take it."""
        checked = self.check(payment)
        # Judged against stored state under the file's write lock, so two processes receiving on
        # one channel take turns instead of racing.
        with self.store.transaction() as tx:
            return self.store_checked(tx, checked)

    @overload
    def check(self, payment: Payment | Voucher | str, *, offline: Literal[False] = False) -> CheckedPayment: ...

    @overload
    def check(self, payment: Payment | Voucher | str, *, offline: Literal[True]) -> CheckedPayment | None: ...

    def check(self, payment: Payment | Voucher | str, *, offline: bool = False) -> CheckedPayment | None:
        """The first half of :meth:`receive`, outside the store's write lock: parse the payment,
        find its channel (on the chain on first contact), check its signature and read the
        channel's chain state again if it is stale. Raises what :meth:`receive` raises for a
        payment that fails those checks; stores nothing.

        ``offline``: return None instead of asking the chain anything (an event loop checks
        here first, and in a worker thread only a payment that needs the chain)."""
        paid = parse_payment(payment)
        voucher = paid.voucher
        if (voucher.chain_id, voucher.escrow) != (self.escrow.chain_id, self.escrow.address):
            raise DomainMismatch(f"payment is for escrow {voucher.escrow} on chain {voucher.chain_id}, "
                                 f"this payee uses {self.escrow.address} on chain {self.escrow.chain_id}")
        record = self._channel_for(voucher, offline=offline)
        new = record is not None and self.store.peek_tip(record.ref) is None
        # A contract signature is asked of the chain once; so is the chain state when stale.
        if record is None or not self.signatures.check(record, voucher, offline=offline):
            return None
        if not self._is_fresh(record, voucher.amount):
            if offline:
                return None
            record_state = self._read(record.key)  # any chain read happens before taking the write lock
            return CheckedPayment(paid, record, record_state, new)
        return CheckedPayment(paid, record, record, new)

    def store_checked(self, tx: StoreTransaction, checked: CheckedPayment) -> Received:
        """The second half of :meth:`receive`, inside a write transaction: judge the checked
        payment against what is stored and record it. Raises what :meth:`receive` raises for a
        payment that does not fit the stored ledger, deposit or expiry (roll back what it wrote:
        :meth:`StoreTransaction.savepoint` when the transaction holds other payments too)."""
        paid, record, state = checked.payment, checked.record, checked.state
        voucher = paid.voucher
        tip = tx.tip(record.ref)
        if tip is None and not tx.add_channel_if_absent(state):  # another process stored it meanwhile
            tip = tx.tip(record.ref)
        best = tip.best if tip else None
        if best is not None and voucher.amount <= best.amount:
            return self._repeat(tx, voucher, best, record)
        current = state
        if tip is not None and tip.record.checked_at > state.checked_at:
            current = tip.record  # another process read the chain (a watcher saw a close) since
        self.judge(current, voucher.amount)
        have = best.receipt_count if best else 0  # the best voucher's ledger is the stored ledger
        last = tip.last if tip else None
        new = self._new_receipts(paid, have, self._stored_from(tx, record.ref, paid, have))
        entries = extend_entries(last, new)
        if entries[-1].total != voucher.amount or entries[-1].root != voucher.ledger_root:
            raise LedgerMismatch("the payment's receipts do not add up to its voucher (amount or ledger root)")
        if tip is not None and current is not tip.record and current != tip.record:  # the chain was read again
            tx.update_chain_state(current)
            current = tip.record.updated(current, checked_at=current.checked_at)
        elif tip is not None:
            current = tip.record  # (with no tip, ``current`` is the row added above)
        # On the channel's first payment (it may be stored already, by `sync`): are its terms our plan?
        terms = check_terms(tx, current, self.address) if best is None else None
        tx.add_receipts(record.ref, have, entries)
        best = BestVoucher(voucher.amount, voucher.ledger_root, voucher.signature, have + len(entries))
        tx.add_voucher(voucher, best.receipt_count, record.ref)
        tx.set_tip(ChannelTip(current, best, entries[-1]))
        previous = last.total if last else 0
        return Received(record.id, record.key.payer, voucher.amount, voucher.amount - previous,
                        tuple(e.receipt for e in entries), terms=terms)

    @staticmethod
    def _stored_from(tx: StoreTransaction, ref: ChannelRef, paid: Payment, have: int) -> list[LedgerEntry]:
        """The stored entries from the payment's ``first_index`` on: normally none (it starts where
        the stored ledger ends); a payment resent from earlier overlaps what is stored."""
        if paid.first_index is None or paid.first_index >= have:
            return []
        return tx.ledger(ref, start=paid.first_index)

    @staticmethod
    def _repeat(tx: StoreTransaction, voucher: Voucher, best: BestVoucher, record: ChannelRecord) -> Received:
        """A voucher at or below the best one held: the same one again is an idempotent no-op."""
        if voucher.amount < best.amount:
            raise StaleVoucher(f"already holding a voucher for {best.amount}; this one is for {voucher.amount}")
        if (voucher.ledger_root, voucher.signature) != (best.ledger_root, best.signature):
            raise InvalidVoucher("a different voucher for the same amount is already stored")
        previous_amount, previous_count = tx.voucher_before(record.ref, best.amount)
        tasks = tx.ledger(record.ref, start=previous_count)[: best.receipt_count - previous_count]
        return Received(record.id, record.key.payer, best.amount, best.amount - previous_amount,
                        tuple(e.receipt for e in tasks), duplicate=True)

    @staticmethod
    def _new_receipts(paid: Payment, have: int, stored_from_first: list[LedgerEntry]) -> tuple[TaskReceipt, ...]:
        """The receipts a payment adds, given the stored entries from its ``first_index`` on."""
        if paid.first_index is None:
            raise LedgerGap(f"a bare voucher does not say which tasks it pays; send the payment (mpp1…) "
                            f"with receipts from index {have}", have=have)
        if paid.first_index > have:
            raise LedgerGap(f"this payee holds {have} receipts; resend the payment from index {have}", have=have)
        overlap = paid.receipts[: have - paid.first_index]
        if [e.receipt for e in stored_from_first] != list(overlap):
            raise LedgerMismatch("the payment rewrites tasks that were already paid")
        new = paid.receipts[have - paid.first_index:]
        if not new:
            raise LedgerMismatch("the payment adds no task receipt")
        return new

    def adopt(self, channel_id: bytes) -> ChannelRecord:
        """The channel ``channel_id`` to this payee: as stored or, before its first payment (a
        channel just opened under a plan), as the chain holds it, then stored. Raises
        :class:`UnknownChannel` (never opened on this escrow) or :class:`NotParticipant` (it pays another)."""
        ref = ChannelRef(self.escrow.chain_id, self.escrow.address, channel_id)
        record = self.store.find_channel(ref)
        if record is None:
            key = self.escrow.key(channel_id)
            if key.payee != self.address:
                raise NotParticipant(f"the channel pays {key.payee}, not this account ({self.address})")
            fresh = self._read(key)
            with self.store.transaction() as tx:
                tx.add_channel_if_absent(fresh)  # unless another request stored it meanwhile
            record = self.store.channel(ref)
        if record.role != "payee" or record.key.payee != self.address:
            raise NotParticipant("this channel does not pay this account")
        return record

    def _channel_for(self, voucher: Voucher, *, offline: bool = False) -> ChannelRecord | None:
        """The channel a voucher pays: as stored or, on first contact, as read from the chain
        (``offline``: None instead)."""
        # The cached tip needs no lock: a channel's parties never change, and the chain state it
        # carries is checked again against the stored tip inside the write transaction.
        ref = ChannelRef(voucher.chain_id, voucher.escrow, voucher.channel_id)
        tip = self.store.peek_tip(ref) or self.store.tip(ref)
        if tip is not None:
            if tip.record.role != "payee" or tip.record.key.payee != self.address:
                raise NotParticipant("this channel does not pay this account")
            return tip.record
        if offline:
            return None
        key = self.escrow.key(voucher.channel_id)
        if key.payee != self.address:
            raise NotParticipant(f"the channel pays {key.payee}, not this account ({self.address})")
        return self._read(key)

    def _read(self, key: ChannelKey) -> ChannelRecord:
        """The channel as the chain holds it now, as this payee's record of it."""
        record = ChannelRecord.of(self.escrow.channel(key), self.escrow.chain_id, self.escrow.address, "payee")
        return dataclasses.replace(record, terms=self.escrow.terms(key.id))

    def _is_fresh(self, record: ChannelRecord, amount: int) -> bool:
        """Whether ``record``'s chain state is fresh enough to judge ``amount`` by (if not, it is
        read again: a payer may just have topped up, or started closing)."""
        return time.time() - record.checked_at <= self.freshness and amount <= record.deposit and not record.closed

    def judge(self, state: ChannelRecord, amount: int) -> None:
        """Whether a voucher for ``amount`` on a channel in ``state`` may be taken: its challenge
        window, finality, deposit and the expiry margin. Raises :class:`WindowTooShort`,
        :class:`ChannelFinal`, :class:`InsufficientDeposit` or :class:`ChannelExpired`."""
        if state.window < self.min_window:
            window = f"{state.window // 3600}h{state.window % 3600 // 60:02d}m"
            raise WindowTooShort(f"the channel's challenge window is {window}, shorter than this payee's minimum "
                                 f"of {self.min_window // 3600}h: a client's close "
                                 "request could run out during an outage. Ask for a channel with a longer window",
                                 window=state.window, minimum=self.min_window)
        if state.closed:
            raise ChannelFinal("the channel is closed: no payment on it can be redeemed")
        if amount > state.deposit:
            raise InsufficientDeposit(f"the voucher promises {amount} but the deposit is {state.deposit}",
                                      shortfall=amount - state.deposit)
        chain_now = state.observed_at + (time.time() - state.checked_at)  # block time when read, plus elapsed
        if state.expiry - chain_now < self.safety_margin:
            raise ChannelExpired(f"the channel expires at {state.expiry}, within the safety margin of "
                                 f"{self.safety_margin}s: ask the payer to extend it")
