"""Payee: the freelancer side. Receive payments, keep the best voucher, settle in one transaction.

``receive`` checks everything a voucher must satisfy, then commits it to the store in one
durable transaction *before* returning: once a payment is acknowledged it cannot be lost, not
even to ``kill -9``. A rejected payment changes nothing in the store.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from eth_account.signers.local import LocalAccount

from micropay._utils import tx
from micropay._utils.tx import GAS_MARGIN, Sender, sender_address
from micropay.errors import (
    ChannelExpired,
    ChannelFinal,
    DomainMismatch,
    InsufficientDeposit,
    InsufficientFunds,
    InvalidSignature,
    InvalidVoucher,
    LedgerGap,
    LedgerMismatch,
    MicropayError,
    NothingToClaim,
    NotParticipant,
    StaleVoucher,
    TransactionError,
)
from micropay.escrow import ETH, ChannelState, Escrow, _map_revert
from micropay.ledger import TaskReceipt
from micropay.payer import _open_store, _seconds
from micropay.payment import Payment, parse_payment
from micropay.store import (
    BestVoucher,
    ChannelRecord,
    ChannelTip,
    LedgerEntry,
    SettlementRecord,
    VoucherStore,
    extend_entries,
)
from micropay.voucher import Voucher

#: Gas a single-channel claim costs, with room to spare: what the watcher keeps in reserve.
CLAIM_GAS_RESERVE = 120_000


@dataclass(frozen=True)
class Received:
    """What one received payment did: the amount it added and the tasks it paid for."""

    channel_id: bytes
    payer: str
    cumulative: int
    added: int
    tasks: tuple[TaskReceipt, ...]
    duplicate: bool = False


@dataclass(frozen=True)
class Unclaimed:
    channel_id: bytes
    payer: str
    token: str
    best: int  # highest voucher held
    claimed: int  # already claimed on chain
    deposit: int
    expiry: int
    claimable: bool  # a claim sent now would still be in time

    @property
    def value(self) -> int:
        return max(0, min(self.best, self.deposit) - self.claimed)


@dataclass(frozen=True)
class Settlement:
    tx_hash: bytes
    channels: tuple[bytes, ...]
    gross: int
    gas_used: int
    fee: int  # in wei
    token: str

    @property
    def net(self) -> int:
        """Gross minus the fee (meaningful when the channels pay ETH)."""
        return self.gross - self.fee if self.token == ETH else self.gross


class Payee:
    """A freelancer receiving payments on ``escrow`` as ``account``."""

    def __init__(
        self,
        escrow: Escrow,
        account: Sender,
        store: VoucherStore | str | os.PathLike[str],
        *,
        safety_margin: timedelta | int = timedelta(hours=1),
        freshness: float = 15.0,
    ) -> None:
        self.escrow = escrow
        self.account = account
        self.store = _open_store(store)
        self.safety_margin = _seconds(safety_margin)
        self.freshness = freshness

    @property
    def address(self) -> str:
        return sender_address(self.account)

    # -- receiving -------------------------------------------------------------------------

    def receive(self, payment: Voucher | str) -> Received:
        """Verify a payment (or its text) and store it durably; returns what it added."""
        voucher = parse_payment(payment)
        if (voucher.chain_id, voucher.escrow) != (self.escrow.chain_id, self.escrow.address):
            raise DomainMismatch(f"payment is for escrow {voucher.escrow} on chain {voucher.chain_id}, "
                                 f"this payee uses {self.escrow.address} on chain {self.escrow.chain_id}")
        signer = voucher.signer
        record = self._channel_for(voucher)
        if signer != record.key.payer:
            raise InvalidSignature(f"payment signed by {signer}, but the channel's payer is {record.key.payer}")
        state = self._fresh(record, voucher.amount)  # any chain read happens before taking the write lock
        # Judged against stored state under the file's write lock, so two processes receiving on
        # one channel take turns instead of racing.
        with self.store.transaction() as db:
            return self._store_payment(db, voucher, record, state)

    def _store_payment(self, db: Any, voucher: Voucher, record: ChannelRecord, state: ChannelRecord) -> Received:
        """Inside the write transaction: judge ``voucher`` against what is stored and record it."""
        tip = self.store.tip(record.id, db)
        best = tip.best if tip else None
        if best is not None and voucher.amount <= best.amount:
            return self._repeat(voucher, best, record, db)
        current = state
        if tip is not None and tip.record.checked_at > state.checked_at:
            current = tip.record  # another process read the chain (a watcher saw a close) since
        self._judge(current, voucher.amount)
        have = best.receipt_count if best else 0  # the best voucher's ledger is the stored ledger
        last = tip.last if tip else None
        new = self._new_receipts(voucher, have, self._stored_from(voucher, have, db))
        entries = extend_entries(last, new)
        if entries[-1].total != voucher.amount or entries[-1].root != voucher.ledger_root:
            raise LedgerMismatch("the payment's receipts do not add up to its voucher (amount or ledger root)")
        if tip is None:
            self.store.add_channel(current, db)
        elif current is not tip.record and current != tip.record:  # the chain was read again
            self.store.update_chain_state(current, db)
            current = tip.record.updated(current, checked_at=current.checked_at)
        else:
            current = tip.record
        self.store.add_receipts(db, record.id, have, entries)
        best = BestVoucher(voucher.amount, voucher.ledger_root, voucher.signature, have + len(entries))
        self.store.add_voucher(db, voucher, best.receipt_count)
        self.store.set_tip(ChannelTip(current, best, entries[-1]))
        previous = last.total if last else 0
        return Received(record.id, record.key.payer, voucher.amount, voucher.amount - previous,
                        tuple([e.receipt for e in entries]))

    def _stored_from(self, voucher: Voucher, have: int, db: Any) -> list[LedgerEntry]:
        """The stored entries from the payment's ``first_index`` on: normally none (it starts where
        the stored ledger ends); a payment resent from earlier overlaps what is stored."""
        if not isinstance(voucher, Payment) or voucher.first_index >= have:
            return []
        return self.store.ledger(voucher.channel_id, db, start=voucher.first_index)

    def _repeat(self, voucher: Voucher, best: BestVoucher, record: ChannelRecord, db: Any) -> Received:
        """A voucher at or below the best one held: the same one again is an idempotent no-op."""
        if voucher.amount < best.amount:
            raise StaleVoucher(f"already holding a voucher for {best.amount}; this one is for {voucher.amount}")
        if (voucher.ledger_root, voucher.signature) != (best.ledger_root, best.signature):
            raise InvalidVoucher("a different voucher for the same amount is already stored")
        previous_amount, previous_count = self.store.voucher_before(record.id, best.amount, db)
        tasks = self.store.ledger(record.id, db, start=previous_count)[: best.receipt_count - previous_count]
        return Received(record.id, record.key.payer, best.amount, best.amount - previous_amount,
                        tuple(e.receipt for e in tasks), duplicate=True)

    @staticmethod
    def _new_receipts(voucher: Voucher, have: int, stored_from_first: list[LedgerEntry]) -> tuple[TaskReceipt, ...]:
        """The receipts a payment adds, given the stored entries from its ``first_index`` on."""
        if not isinstance(voucher, Payment):
            raise LedgerGap(f"a bare voucher does not say which tasks it pays; send the payment (mpp1…) "
                            f"with receipts from index {have}", have)
        if voucher.first_index > have:
            raise LedgerGap(f"this payee holds {have} receipts; resend the payment from index {have}", have)
        overlap = voucher.receipts[: have - voucher.first_index]
        if [e.receipt for e in stored_from_first] != list(overlap):
            raise LedgerMismatch("the payment rewrites tasks that were already paid")
        new = voucher.receipts[have - voucher.first_index:]
        if not new:
            raise LedgerMismatch("the payment adds no task receipt")
        return new

    def _channel_for(self, voucher: Voucher) -> ChannelRecord:
        """The channel a voucher pays: as stored or, on first contact, as read from the chain."""
        # The cached tip needs no lock: a channel's parties never change, and the chain state it
        # carries is checked again against the stored tip inside the write transaction.
        tip = self.store.peek_tip(voucher.channel_id) or self.store.tip(voucher.channel_id)
        if tip is not None:
            if tip.record.role != "payee" or tip.record.key.payee != self.address:
                raise NotParticipant("this channel does not pay this account")
            return tip.record
        key = self.escrow.key(voucher.channel_id)
        if key.payee != self.address:
            raise NotParticipant(f"the channel pays {key.payee}, not this account ({self.address})")
        return self._record(self.escrow.channel(key))

    def _record(self, state: ChannelState) -> ChannelRecord:
        return ChannelRecord(state.key, self.escrow.chain_id, self.escrow.address, "payee", state.deposit,
                             state.claimed, state.expiry, state.window, state.closed, time.time(),
                             observed_at=state.observed_at)

    def _fresh(self, record: ChannelRecord, amount: int) -> ChannelRecord:
        """``record`` itself if its chain state is fresh enough to judge ``amount`` by, otherwise
        a new read from the chain (a payer may just have topped up, or started closing)."""
        if time.time() - record.checked_at > self.freshness or amount > record.deposit or record.closed:
            return self._record(self.escrow.channel(record.key))
        return record

    def _judge(self, state: ChannelRecord, amount: int) -> None:
        """Deposit, finality and the expiry margin."""
        if state.closed:
            raise ChannelFinal("the channel is closed: no payment on it can be redeemed")
        if amount > state.deposit:
            raise InsufficientDeposit(f"the voucher promises {amount} but the deposit is {state.deposit}",
                                      shortfall=amount - state.deposit)
        chain_now = state.observed_at + (time.time() - state.checked_at)  # block time when read, plus elapsed
        if state.expiry - chain_now < self.safety_margin:
            raise ChannelExpired(f"the channel expires at {state.expiry}, within the safety margin of "
                                 f"{self.safety_margin}s: ask the payer to extend it")

    # -- what is owed ----------------------------------------------------------------------

    def channels(self) -> list[ChannelRecord]:
        return [r for r in self.store.channels("payee") if r.escrow == self.escrow.address]

    def unclaimed(self) -> list[Unclaimed]:
        """Per channel: the best voucher held against what is claimed on chain (read now)."""
        result = []
        for record in self.channels():
            best = self.store.best_voucher(record.id)
            if best is None:
                continue
            state = self.escrow.channel(record.key)
            result.append(Unclaimed(record.id, record.key.payer, record.key.token, best[0].amount, state.claimed,
                                    state.deposit, state.expiry, state.claimable_next_block))
        return result

    def ledger(self, channel_id: bytes) -> list[LedgerEntry]:
        return self.store.ledger(channel_id)

    # -- settling --------------------------------------------------------------------------

    def settle(self, min_net: int = 0, *, token: str = ETH, only: set[bytes] | None = None,
               dry_run: bool = False) -> Settlement:
        """Claim every channel in ``token`` worth claiming in ONE claimMany transaction.

        A channel is worth it when its unclaimed value exceeds ``min_net`` plus its share of the
        estimated fee (for ETH channels; for a token the fee is in another unit and is not
        subtracted). The signed transaction is recorded before it is sent, so a crash between
        sending and the receipt never counts a claim twice.
        """
        self.resolve_pending()
        pending = {cid for s in self.store.settlements("pending") for cid, _ in s.items}
        candidates = []
        for item in self.unclaimed():
            if item.token != token or item.value <= 0 or item.channel_id in pending or not item.claimable:
                continue
            if only is not None and item.channel_id not in only:
                continue
            candidates.append(item)
        if not candidates:
            raise NothingToClaim("no channel has anything worth claiming")
        gas_price = self._gas_price()
        chosen = candidates
        gas = self._estimate_batch(chosen, token)
        for _ in range(2):  # choose, re-estimate for the smaller batch, choose again
            share = gas * gas_price // len(chosen) if token == ETH else 0
            kept = [c for c in chosen if c.value > min_net + share]
            if kept == chosen or not kept:
                chosen = kept
                break
            chosen = kept
            gas = self._estimate_batch(chosen, token)  # the estimate always matches `chosen`
        if not chosen:
            raise NothingToClaim(f"no channel's unclaimed value exceeds min_net {min_net} plus its share of gas")
        gross = sum(c.value for c in chosen)
        if dry_run:
            return Settlement(b"", tuple(c.channel_id for c in chosen), gross, gas, gas * gas_price, token)
        return self._send_batch(chosen, token, gross, gas)

    def _batch(self, chosen: list[Unclaimed]) -> list[tuple[Any, Voucher]]:
        items = []
        for item in chosen:
            best = self.store.best_voucher(item.channel_id)
            assert best is not None  # chosen only among channels with a voucher
            items.append((self.store.channel(item.channel_id).key, best[0]))
        return items

    def _estimate_batch(self, chosen: list[Unclaimed], token: str) -> int:
        fn = self.escrow.claim_many_call(self.address, token, self._batch(chosen))
        return int(tx.estimate(fn, self.account, 0, self.escrow._decoder, _map_revert) * GAS_MARGIN)

    def _gas_price(self) -> int:
        return self.escrow.w3.eth.gas_price

    def _send_batch(self, chosen: list[Unclaimed], token: str, gross: int, gas: int) -> Settlement:
        w3 = self.escrow.w3
        items = self._batch(chosen)
        fn = self.escrow.claim_many_call(self.address, token, items)
        record_items = [(key.id, voucher.amount) for key, voucher in items]
        with tx.nonce_lock(self.account):
            if isinstance(self.account, LocalAccount):
                raw, tx_hash = tx.sign(w3, self.account, fn, value=0, gas=gas, options=self.escrow.options)
                self.store.add_settlement(SettlementRecord(tx_hash, raw, self.escrow.address, token, "pending",
                                                           record_items, gross, None, None, None))
                try:
                    tx.broadcast(w3, raw, tx_hash)
                except Exception as exc:  # noqa: BLE001
                    self.store.update_settlement(tx_hash, status="failed")
                    if isinstance(exc, MicropayError):
                        raise
                    raise tx.classify(exc, self.escrow._decoder, _map_revert) from exc
            else:  # a node-managed account: the hash is only known once the node has it
                tx_hash = bytes(w3.eth.send_transaction(fn.build_transaction(
                    {"from": self.account, "gas": gas,
                     "nonce": w3.eth.get_transaction_count(self.account, "pending")})))
                self.store.add_settlement(SettlementRecord(tx_hash, None, self.escrow.address, token, "pending",
                                                           record_items, gross, None, None, None))
        return self._confirm(tx_hash, self._wait(tx_hash), token)

    def _wait(self, tx_hash: bytes) -> Any:
        options = self.escrow.options
        return tx.wait(self.escrow.w3, tx_hash, options.timeout, confirmations=options.confirmations,
                       poll_interval=options.poll_interval)

    def _confirm(self, tx_hash: bytes, receipt: Any, token: str) -> Settlement:
        claimed = self.escrow.events("Claimed", receipt)
        gross = 0
        for event in claimed:
            record = self.store.channel(event["args"]["channelId"])
            # Claimed carries the new total; the payout is its rise over the block before.
            before = self.escrow.contract.functions.channel(record.id).call(
                block_identifier=receipt.blockNumber - 1)[1]
            gross += event["args"]["claimed"] - before
            self.store.update_chain_state(self._record(self.escrow.channel(record.key)))
        fee = receipt.gasUsed * receipt.effectiveGasPrice
        self.store.update_settlement(tx_hash, status="confirmed", gas_used=receipt.gasUsed, fee=fee,
                                     block=receipt.blockNumber)
        return Settlement(tx_hash, tuple(e["args"]["channelId"] for e in claimed), gross, receipt.gasUsed, fee, token)

    def resolve_pending(self) -> list[Settlement]:
        """Finish settlements a crash interrupted: confirm mined ones, rebroadcast the others."""
        done = []
        for pending in self.store.settlements("pending"):
            try:
                receipt = self.escrow.w3.eth.get_transaction_receipt(pending.tx_hash)
            except Exception:  # noqa: BLE001 - not mined (or unknown to this node)
                receipt = None
            if receipt is None and pending.raw_tx is not None:
                try:
                    self.escrow.w3.eth.send_raw_transaction(pending.raw_tx)
                except Exception:  # noqa: BLE001 - "already known" / "nonce too low" mean it is (or was) in
                    pass
                try:
                    receipt = self._wait(pending.tx_hash)
                except TransactionError:
                    self.store.update_settlement(pending.tx_hash, status="failed")
                    continue
            if receipt is None:
                self.store.update_settlement(pending.tx_hash, status="failed")
            elif receipt.status != 1:
                self.store.update_settlement(pending.tx_hash, status="failed", gas_used=receipt.gasUsed)
            else:
                done.append(self._confirm(pending.tx_hash, receipt, pending.token))
        return done

    # -- closing and watching --------------------------------------------------------------

    def close(self, channel_id: bytes) -> Any:
        """Cooperative close with the best voucher held; the rest of the deposit goes back."""
        record = self.store.channel(channel_id)
        best = self.store.best_voucher(channel_id)
        receipt = self.escrow.close(self.account, record.key, None if best is None else best[0])
        self.store.update_chain_state(self._record(self.escrow.channel(record.key)))
        return receipt

    def check_gas_funds(self) -> None:
        balance = self.escrow.w3.eth.get_balance(self.address)
        needed = CLAIM_GAS_RESERVE * self._gas_price()
        if balance < needed:
            raise InsufficientFunds(f"{self.address} holds {balance} wei; the watcher needs at least {needed} wei "
                                    "to pay for a claim. Fund it before watching.")

    def watch_once(self, *, confirmations: int = 2, margin: timedelta | int | None = None) -> list[Settlement]:
        """One pass: look at confirmed blocks since the stored cursor; claim every channel of
        ours with unclaimed value whose payer requested a close or whose expiry is near."""
        w3 = self.escrow.w3
        cursor_name = f"watch:{self.escrow.chain_id}:{self.escrow.address}:{self.address}"
        safe = w3.eth.block_number - confirmations
        start = self.store.cursor(cursor_name)
        start = self.escrow.from_block if start is None else start
        if safe < start:
            return []
        margin_s = self.safety_margin if margin is None else _seconds(margin)
        triggered = {
            log["args"]["channelId"]
            for log in self.escrow.contract.events.CloseRequested.get_logs(
                argument_filters={"payee": self.address}, from_block=start, to_block=safe)
        }
        chain_now = w3.eth.get_block(safe)["timestamp"]
        settlements = []
        for item in self.unclaimed():
            if item.value > 0 and item.expiry >= chain_now and \
                    (item.channel_id in triggered or item.expiry - chain_now <= margin_s):
                triggered.add(item.channel_id)
            else:
                triggered.discard(item.channel_id)
        for token in {self.store.channel(cid).key.token for cid in triggered}:
            try:
                settlements.append(self.settle(0, token=token, only=triggered))
            except NothingToClaim:
                pass
        self.store.set_cursor(cursor_name, safe + 1)
        return settlements

    def watch(self, *, confirmations: int = 2, margin: timedelta | int | None = None, poll_interval: float = 5.0,
              stop: threading.Event | None = None, rounds: int | None = None) -> list[Settlement]:
        """Keep watching (until ``stop`` is set or ``rounds`` passes are done). Refuses to start
        without ETH for gas: a watcher that cannot pay for a claim defends nothing."""
        self.check_gas_funds()
        done: list[Settlement] = []
        passes = 0
        while not (stop and stop.is_set()) and (rounds is None or passes < rounds):
            done += self.watch_once(confirmations=confirmations, margin=margin)
            passes += 1
            if rounds is None or passes < rounds:
                (stop.wait if stop else time.sleep)(poll_interval)
        return done


