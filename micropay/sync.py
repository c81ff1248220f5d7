"""Rebuilding a store's channels from the chain: the escrow's events are the record of last resort.

A store that was lost or damaged, or an ``open`` that was interrupted after its transaction was
sent, leaves channels on chain that the store does not know (the salt that names a channel is
only in its ChannelOpened event). :func:`sync` finds every channel of an account on an escrow, as
payer and as payee, adds the missing ones and refreshes the others; vouchers and ledgers come
back from an export (``VoucherStore.import_``).

A payer channel added this way has no ledger, so this store cannot know which amounts it already
signed: it records the whole deposit as possibly issued, and :meth:`Payer.pay` refuses to sign
on it. Its money is safe: request-close and reclaim work as always. Keys come back whole, with
the voucher signer each channel named at open.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from micropay.channel import ChannelRef
from micropay.escrow import Escrow
from micropay.records import ChannelRecord, Role
from micropay.store import VoucherStore


@dataclass(frozen=True)
class SyncReport:
    """What :func:`sync` changed: channels added to the store, and channels whose chain state changed."""

    added: tuple[ChannelRecord, ...]
    updated: tuple[ChannelRecord, ...]
    unchanged: int


def sync(store: VoucherStore, escrow: Escrow, address: str, *, payee_side: bool = True,
         adopt: bool = False) -> SyncReport:
    """Make ``store`` hold every channel ``address`` pays from or (with ``payee_side``) is paid on
    at ``escrow``, with its chain state read now (one batched read). ``adopt``: a payer channel
    new to the store is recorded as signed only up to what is claimed on chain, not its whole
    deposit (the caller knows no lost store signed on it). Raises what the escrow's reads raise."""
    opened = escrow.opened(payer=address) + (escrow.opened(payee=address) if payee_side else [])
    keys = {key.id: key for key in opened}
    ordered = list(keys.values())
    states = escrow.channels(ordered)
    added, updated, unchanged, now = [], [], 0, time.time()
    with store.transaction() as tx:
        tx.lock_channels([ChannelRef(escrow.chain_id, escrow.address, key.id) for key in ordered])
        for key, state in zip(ordered, states, strict=True):
            if state is None:  # opened and not found at the same block: a reorg; the next sync sees it
                continue
            role: Role = "payer" if key.payer == address else "payee"
            fresh = dataclasses.replace(ChannelRecord.of(state, escrow.chain_id, escrow.address, role),
                                        terms=escrow.terms(key.id))
            existing = tx.find_channel(fresh.ref)
            if existing is not None and existing.terms is None and fresh.terms is not None:
                tx.set_terms(fresh.ref, fresh.terms)  # recorded before terms were kept
            if existing is None:
                if role == "payer":  # no ledger: treat the whole deposit as possibly signed already
                    fresh = dataclasses.replace(fresh, issued=state.claimed if adopt else state.deposit)
                if tx.add_channel_if_absent(fresh):  # else another process added it since the lock
                    added.append(fresh)
            elif (existing.deposit, existing.claimed, existing.expiry, existing.closed, existing.seen_on_chain) != \
                    (state.deposit, state.claimed, state.expiry, state.closed, True):
                refreshed = existing.updated(state, checked_at=now)
                tx.update_chain_state(refreshed)
                updated.append(refreshed)
            else:
                unchanged += 1
    return SyncReport(tuple(added), tuple(updated), unchanged)
