"""What a voucher store holds, read apart from the operation under test, on either backend: to
assert that a refused operation changed nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers import store_bytes
from micropay import VoucherStore


def store_snapshot(store: VoucherStore) -> dict[str, Any]:
    """Every record the store holds, read through :class:`VoucherStore`'s public API: channels with
    their ledgers, vouchers, inbox, outbox and charges; plans and feedback; settlements; the watch
    cursors of the channels' parties; the schema version. Equal snapshots: the same content."""
    channels = store.channels()
    per_channel = {}
    for record in channels:
        ref = record.ref
        ledger = store.ledger(ref)
        per_channel[ref] = {
            "ledger": ledger,
            "best": store.best_voucher(ref),
            "count": store.voucher_count(ref),
            "times": store.voucher_times(ref),
            "vouchers": [store.voucher_at(ref, entry.total) for entry in ledger],
            "inbox": store.inbox(ref),
            "deliveries": store.deliveries(ref),
            "charged": store.charged(ref),
        }
    cursors = {}
    for record in channels:
        for party in {record.key.payer, record.key.payee, record.key.signer} - {None}:
            for kind in ("watch", "notify-close"):
                name = f"{kind}:{record.chain_id}:{record.escrow}:{party}"
                cursors[name] = store.cursor(name)
    return {
        "schema_version": store.schema_version,
        "channels": channels,
        "per_channel": per_channel,
        "deliveries": store.deliveries(),
        "plans": {root: store.plans(root) for root in store.plan_roots()},
        "feedback": {root: store.feedback(root) for root in store.plan_roots()},
        "pending_plans": store.pending_plans(),
        "settlements": store.settlements(),
        "cursors": cursors,
    }


def store_state(store: VoucherStore) -> dict[str, Any]:
    """:func:`store_snapshot`, and on SQLite also a digest of the store's files (the database and
    its write-ahead log): what a refused operation must leave exactly as it was."""
    state = store_snapshot(store)
    if not store.location.startswith(("postgresql://", "postgres://")):
        state["files"] = store_bytes(Path(store.location))
    return state
