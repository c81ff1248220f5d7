"""An overview of every channel in a store, for ``micropay status``: one batched chain read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from micropay.channel import ChannelRef, ChannelState
from micropay.escrow import Escrow
from micropay.records import ChannelRecord
from micropay.settling import claimable_value
from micropay.store import VoucherStore


@dataclass(frozen=True)
class ChannelView:
    """A stored channel with its chain state (None when it is on another chain or escrow than
    the one read), what was paid on it, what is unclaimed and how many tasks were paid."""

    record: ChannelRecord
    state: ChannelState | None
    paid: int
    unclaimed: int
    tasks: int


def overview(store: VoucherStore, escrows: Sequence[Escrow]) -> list[ChannelView]:
    """Every channel of ``store``; those on one of ``escrows`` read from the chain, one batch per
    escrow (the others as last stored: state None). Counts tasks without reading a ledger."""
    records = store.channels()
    states: dict[ChannelRef, ChannelState | None] = {}
    for escrow in escrows:
        here = [r for r in records if (r.chain_id, r.escrow) == (escrow.chain_id, escrow.address)]
        states.update(zip((r.ref for r in here), escrow.channels([r.key for r in here]), strict=True))
    views = []
    for record in records:
        state = states.get(record.ref)
        best = store.best_voucher(record.ref)
        paid, tasks = (best[0].amount, best[1]) if best else (0, 0)
        deposit, claimed = (state.deposit, state.claimed) if state else (record.deposit, record.claimed)
        unclaimed = claimable_value(paid, deposit, claimed) if record.role == "payee" else max(0, paid - claimed)
        views.append(ChannelView(record, state, paid, unclaimed, tasks))
    return views
