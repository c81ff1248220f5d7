"""Settling: claim every channel worth claiming in one claimMany, planned first, then executed.

:meth:`Settler.plan` reads the chain state of every channel in one batch, chooses the channels
whose unclaimed value beats their share of the fee, and estimates the transaction: a typed
:class:`SettlementPlan` that a dry run shows. :meth:`Settler.execute` sends it through the
escrow's transaction pipeline, recording the signed transaction *before* it is broadcast, so a
crash between sending and the receipt never counts a claim twice; :meth:`Settler.resolve_pending`
finishes what a crash interrupted. Payouts come from the receipt's events and each channel's
claimed total in the block before. :meth:`Settler.close` ends the payee's side of one channel."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from micropay.channel import ETH, ChannelKey, ChannelRef, ChannelState
from micropay.errors import ChannelFinal, MicropayError, NothingToClaim, TransactionError
from micropay.escrow import Escrow
from micropay.records import ChannelRecord, SettlementRecord
from micropay.store import VoucherStore
from micropay.transactions import Receipt, Sender, SignedTx, sender_address
from micropay.voucher import Voucher


@dataclass(frozen=True)
class Unclaimed:
    """One channel's best voucher held against what is claimed on chain."""

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
        """What claiming the best voucher would add: at most the deposit, less what is claimed."""
        return claimable_value(self.best, self.deposit, self.claimed)


@dataclass(frozen=True)
class Batch:
    """One planned claimMany: its vouchers, what they pay, and its gas limit (with margin)."""

    items: tuple[tuple[ChannelKey, Voucher], ...]
    gross: int
    gas: int

    @property
    def channels(self) -> tuple[bytes, ...]:
        """The ids of the channels it claims, in order."""
        return tuple(key.id for key, _ in self.items)


class _Part(Protocol):
    @property
    def channels(self) -> tuple[bytes, ...]: ...

    @property
    def gross(self) -> int: ...


class _Totals:
    """What a plan and a settlement add up over their parts (batches, or mined transactions)."""

    token: str

    def _parts(self) -> Sequence[_Part]:
        raise NotImplementedError

    @property
    def fee(self) -> int:
        raise NotImplementedError

    @property
    def channels(self) -> tuple[bytes, ...]:
        return tuple(cid for part in self._parts() for cid in part.channels)

    @property
    def gross(self) -> int:
        return sum(part.gross for part in self._parts())

    @property
    def net(self) -> int:
        """Gross minus the fee when both are in ETH; a token's gross is in another unit than the
        fee (paid in ETH), so it is left as it is."""
        return self.gross - self.fee if self.token == ETH else self.gross


@dataclass(frozen=True)
class SettlementPlan(_Totals):
    """What a settlement would claim, in as many transactions as the gas cap requires, and its
    estimated cost; :meth:`Settler.execute` sends it."""

    token: str
    batches: tuple[Batch, ...]
    gas_price: int  # wei per gas when planned

    def _parts(self) -> Sequence[_Part]:
        return self.batches

    @property
    def gas(self) -> int:
        """The gas limits of all its transactions, added up."""
        return sum(batch.gas for batch in self.batches)

    @property
    def fee(self) -> int:
        """The most the transactions can cost at the planned gas price, in wei."""
        return self.gas * self.gas_price


@dataclass(frozen=True)
class SettledTx:
    """One mined claimMany of a settlement."""

    tx_hash: bytes
    channels: tuple[bytes, ...]
    gross: int
    gas_used: int
    fee: int  # in wei


@dataclass(frozen=True)
class Settlement(_Totals):
    """A mined settlement: its transactions, and what they claimed and cost in all."""

    token: str
    transactions: tuple[SettledTx, ...]

    def _parts(self) -> Sequence[_Part]:
        return self.transactions

    @property
    def tx_hashes(self) -> tuple[bytes, ...]:
        """The hashes of its transactions, in the order they were sent."""
        return tuple(t.tx_hash for t in self.transactions)

    @property
    def tx_hash(self) -> bytes:
        """The first transaction's hash (the only one, unless the gas cap split the settlement)."""
        return self.transactions[0].tx_hash

    @property
    def gas_used(self) -> int:
        """The gas its transactions used, added up."""
        return sum(t.gas_used for t in self.transactions)

    @property
    def fee(self) -> int:
        """What its transactions cost, in wei."""
        return sum(t.fee for t in self.transactions)


@dataclass(frozen=True)
class _Held:
    record: ChannelRecord
    best: Voucher
    state: ChannelState


class Settler:
    """Settles the channels ``account`` is paid on through ``escrow``, as recorded in ``store``."""

    def __init__(self, escrow: Escrow, account: Sender, store: VoucherStore, *,
                 max_gas_per_tx: int | None = None) -> None:
        """``max_gas_per_tx`` caps one claimMany; by default half the block gas limit, so a large
        settlement is split rather than never fitting in a block."""
        self.escrow = escrow
        self.account = account
        self.store = store
        self.max_gas_per_tx = max_gas_per_tx

    @property
    def address(self) -> str:
        """The checksummed address the payee is paid at."""
        return sender_address(self.account)

    def channels(self) -> list[ChannelRecord]:
        """This payee's channels on this escrow and chain, as stored."""
        return [r for r in self.store.channels("payee")
                if (r.chain_id, r.escrow, r.key.payee) == (self.escrow.chain_id, self.escrow.address, self.address)]

    def _held(self) -> list[_Held]:
        """Every open channel with a voucher held, with its chain state read now in one batch.
        A channel the chain shows final is recorded so, and never read again."""
        candidates = []
        for record in self.channels():
            if record.closed:
                continue
            found = self.store.claimable_voucher(record.ref)
            if found is not None:
                candidates.append((record, found))
        states = self.escrow.channels([record.key for record, _ in candidates])
        held, changed, now = [], [], time.time()
        for (record, voucher), state in zip(candidates, states, strict=True):
            if state is None:
                continue
            held.append(_Held(record, voucher, state))
            if (state.deposit, state.claimed, state.expiry, state.closed) != \
                    (record.deposit, record.claimed, record.expiry, record.closed):
                changed.append(record.updated(state, checked_at=now))
        if changed:
            with self.store.transaction() as tx:
                tx.lock_channels([record.ref for record in changed])
                for record in changed:
                    tx.update_chain_state(record)
        return held

    def unclaimed(self) -> list[Unclaimed]:
        """Per open channel: the best voucher held against what is claimed on chain (read now)."""
        return [Unclaimed(h.record.id, h.record.key.payer, h.record.key.token, h.best.amount, h.state.claimed,
                          h.state.deposit, h.state.expiry, h.state.claimable_next_block) for h in self._held()]

    # -- planning --------------------------------------------------------------------------

    def plan(self, min_net: int = 0, *, token: str = ETH, only: set[bytes] | None = None) -> SettlementPlan:
        """Choose every channel in ``token`` worth claiming and estimate one claimMany for them.

        A channel is worth it when its unclaimed value exceeds ``min_net`` plus its share of the
        estimated fee (for ETH channels; for a token the fee is in another unit and is not
        subtracted). Channels in a pending settlement are left out. Raises :class:`NothingToClaim`
        when no channel is worth claiming."""
        candidates = self._candidates(token, only)
        if not candidates:
            raise NothingToClaim("no channel has anything worth claiming")
        gas_price = self.escrow.gas_price()
        cap = self.max_gas_per_tx or self.escrow.block_gas_limit() // 2
        chosen = candidates
        batches = self._split(chosen, token, cap)
        for _ in range(2):  # choose, re-estimate for the smaller set, choose again
            share = sum(b.gas for b in batches) * gas_price // len(chosen) if token == ETH else 0
            kept = [c for c in chosen if _value(c) > min_net + share]
            if kept == chosen or not kept:
                chosen = kept
                break
            chosen = kept
            batches = self._split(chosen, token, cap)  # the estimates always match `chosen`
        if not chosen:
            raise NothingToClaim(f"no channel's unclaimed value exceeds min_net {min_net} plus its share of gas")
        return SettlementPlan(token, tuple(batches), gas_price)

    def claimable(self, token: str = ETH, *, only: set[bytes] | None = None
                  ) -> list[tuple[ChannelKey, Voucher, ChannelState]]:
        """Every channel in ``token`` (and in ``only``, if given) whose best voucher held would add
        something if claimed now, outside pending settlements (finished first), with its chain
        state read now: what :meth:`plan` chooses from, and what a relay request is built from."""
        return [(h.record.key, h.best, h.state) for h in self._candidates(token, only)]

    def _candidates(self, token: str, only: set[bytes] | None) -> list[_Held]:
        self.resolve_pending()
        pending = {cid for s in self._pending() for cid, _ in s.items}
        return [h for h in self._held()
                if h.record.key.token == token and h.state.claimable_next_block
                and _value(h) > 0 and h.record.id not in pending and (only is None or h.record.id in only)]

    def _split(self, chosen: Sequence[_Held], token: str, cap: int) -> list[Batch]:
        """``chosen`` in claimMany batches whose estimated gas fits ``cap``: a batch that does not
        fit (or that the node cannot even estimate, past the block gas limit) is halved."""
        todo, batches = [list(chosen)], []
        while todo:
            group = todo.pop(0)
            try:
                gas: int | None = self._estimate(group, token)
            except MicropayError:
                if len(group) == 1:
                    raise
                gas = None
            if gas is None or gas > cap:
                if len(group) == 1:
                    raise TransactionError(f"claiming one channel needs {gas:,} gas, more than the cap of {cap:,}")
                half = len(group) // 2
                todo[:0] = [group[:half], group[half:]]
                continue
            batches.append(Batch(tuple((h.record.key, h.best) for h in group), sum(_value(h) for h in group), gas))
        return batches

    def _estimate(self, chosen: Sequence[_Held], token: str) -> int:
        return self.escrow.claim_many_gas(self.account, self.address, token, [(h.record.key, h.best) for h in chosen])

    # -- executing -------------------------------------------------------------------------

    def execute(self, plan: SettlementPlan) -> Settlement:
        """Send each batch of ``plan`` as one claimMany, in turn, and wait for each. A signed
        transaction is recorded as pending before the node sees it; one that can never be mined
        is marked failed. Raises :class:`TransactionError` (a row whose outcome is unknown stays
        pending, for :meth:`resolve_pending`; batches confirmed before stay) or what the pipeline raises."""
        return Settlement(plan.token, tuple(self._execute(batch, plan.token) for batch in plan.batches))

    def _execute(self, batch: Batch, token: str) -> SettledTx:
        sent: list[bytes] = []

        def record(signed: SignedTx) -> None:
            sent.append(signed.tx_hash)
            with self.store.transaction() as tx:
                tx.add_settlement(SettlementRecord(
                    signed.tx_hash, signed.raw, self.escrow.address, token, "pending",
                    [(key.id, voucher.amount) for key, voucher in batch.items], batch.gross, None, None, None,
                    chain_id=self.escrow.chain_id))

        def dropped(signed: SignedTx) -> None:
            with self.store.transaction() as tx:
                tx.update_settlement(signed.tx_hash, status="failed")

        try:
            receipt = self.escrow.claim_many(self.account, self.address, token, batch.items, gas=batch.gas,
                                             before_broadcast=record, on_dropped=dropped)
        except TransactionError:
            mined = self.escrow.find_receipt(sent[-1]) if sent else None
            if mined is not None and mined.status != 1:
                with self.store.transaction() as tx:
                    tx.update_settlement(mined.tx_hash, status="failed", gas_used=mined.gas_used)
            raise
        return self._confirm(receipt)

    def _confirm(self, receipt: Receipt) -> SettledTx:
        """Record a mined settlement: each channel's new claimed total, and the settlement."""
        claimed = self.escrow.claimed_in(receipt)
        gross, now = 0, time.time()
        try:  # where each claim started, by the chain (another process may have stored the new totals)
            before: list[int | None] = list(self.escrow.claimed_at([e.channel_id for e in claimed],
                                                                    receipt.block_number - 1))
        except (MicropayError, OSError):  # no past state on this node: what the store knew
            before = [None] * len(claimed)
        with self.store.transaction() as tx:
            tx.lock_channels([ChannelRef(self.escrow.chain_id, self.escrow.address, e.channel_id) for e in claimed])
            for event, start in zip(claimed, before, strict=True):
                record = tx.channel(ChannelRef(self.escrow.chain_id, self.escrow.address, event.channel_id))
                gross += max(0, event.claimed - (record.claimed if start is None else start))
                tx.update_chain_state(dataclasses.replace(record, claimed=event.claimed, checked_at=now))
            tx.update_settlement(receipt.tx_hash, status="confirmed", gas_used=receipt.gas_used, fee=receipt.fee,
                                 block=receipt.block_number)
        return SettledTx(receipt.tx_hash, tuple(e.channel_id for e in claimed), gross, receipt.gas_used,
                         receipt.fee)

    # -- closing -----------------------------------------------------------------------------

    def close(self, channel: ChannelRef) -> Receipt:
        """End the payee's side of ``channel`` with the best voucher held; returns the receipt.

        An ETH channel is closed at once: the voucher is redeemed and the rest of the deposit goes
        back to the payer in the same transaction. A token channel is NOT closed: its best voucher
        is claimed (one recorded claimMany, as :meth:`execute` sends) and the channel stays open
        until the payer reclaims the rest after expiry. Closing would push the payer's refund
        through the token inside the payee's transaction, and a token that calls the recipient
        (transfer hooks) lets the payer make that push cost the payee as much gas as it likes
        (audit L-1); a claim pays the payee alone.

        Raises :class:`UnknownChannel`, :class:`ChannelFinal`, :class:`NothingToClaim` (a token
        channel with nothing new to claim), or what the transaction raises."""
        record = self.store.channel(channel)
        if record.closed:
            raise ChannelFinal(f"{record.ref} is closed already")
        if not record.key.is_eth:
            settlement = self.execute(self.plan(0, token=record.key.token, only={record.id}))
            return self.escrow.wait(settlement.tx_hash)
        best = self.store.best_voucher(record.ref)
        receipt = self.escrow.close(self.account, record.key, None if best is None else best[0])
        self.store.update_chain_state(record.updated(self.escrow.channel(record.key), checked_at=time.time()))
        return receipt

    def _pending(self) -> list[SettlementRecord]:
        """Pending settlements on this escrow and chain (0: recorded before chain ids were kept)."""
        return [s for s in self.store.settlements("pending")
                if s.escrow == self.escrow.address and s.chain_id in (0, self.escrow.chain_id)]

    def resolve_pending(self) -> list[Settlement]:
        """Finish settlements a crash interrupted: confirm mined ones, rebroadcast the others;
        one that fails or cannot be mined in time is marked failed."""
        done = []
        for pending in self._pending():
            receipt = self.escrow.find_receipt(pending.tx_hash)
            if receipt is None and pending.raw_tx is not None:
                try:
                    self.escrow.rebroadcast(pending.raw_tx)
                    receipt = self.escrow.wait(pending.tx_hash, require_success=False)
                except TransactionError:
                    receipt = None
            if receipt is None or receipt.status != 1:
                with self.store.transaction() as tx:
                    tx.update_settlement(pending.tx_hash, status="failed",
                                         gas_used=None if receipt is None else receipt.gas_used)
            else:
                done.append(Settlement(pending.token, (self._confirm(receipt),)))
        return done


def claimable_value(best: int, deposit: int, claimed: int) -> int:
    """What a voucher for ``best`` adds on a channel: at most the deposit, less what is claimed."""
    return max(0, min(best, deposit) - claimed)


def _value(held: _Held) -> int:
    return claimable_value(held.best.amount, held.state.deposit, held.state.claimed)
