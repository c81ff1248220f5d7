"""For either side: what the channels hold, and which tasks are settled."""

from __future__ import annotations

import click

from micropay.channel import ChannelState
from micropay.cli.context import Session, pass_session
from micropay.cli.options import channel_argument, json_option
from micropay.cli.output import emit, hex_id, table, when
from micropay.overview import overview
from micropay.records import ChannelRecord

STATUS_HEADER = ["channel", "role", "counterparty", "token", "deposit", "paid", "unclaimed", "status", "expiry",
                 "tasks"]


@click.command()
@json_option
@pass_session
def status(session: Session, as_json: bool) -> None:
    """A line per channel: counterparty, token, deposit, paid, unclaimed, expiry, tasks."""
    if not session.store.channels():  # nothing to ask the node
        emit(as_json, [], "no channels yet")
        return
    rows, data = [], []
    records = session.store.channels()
    on_this_chain = [r for r in records if r.chain_id == session.chain]
    escrows = list({r.escrow: session.escrow_for(r) for r in on_this_chain}.values())
    for view in overview(session.store, escrows):  # one batched chain read per escrow
        record, token = view.record, view.record.key.token
        # A channel on another chain or escrow than the session's: what the store last read of it.
        state = view.state or _stored_state(record)
        counterparty = record.key.payer if record.role == "payee" else record.key.payee
        rows.append([hex_id(record.id, 10), record.role, counterparty, session.units(token)[1],
                     session.show(state.deposit, token), session.show(view.paid, token),
                     session.show(view.unclaimed, token), state.status.value, when(state.expiry), str(view.tasks)])
        data.append({"channel": hex_id(record.id), "role": record.role, "counterparty": counterparty,
                     "token": token, "deposit": str(state.deposit), "paid": str(view.paid),
                     "claimed": str(state.claimed), "unclaimed": str(view.unclaimed), "status": state.status.value,
                     "expiry": state.expiry, "tasks": view.tasks})
    emit(as_json, data, table(rows, STATUS_HEADER))


def _stored_state(record: ChannelRecord) -> ChannelState:
    return ChannelState(record.key, record.deposit, record.claimed, record.expiry, record.window, record.closed,
                        record.observed_at)


@click.command()
@channel_argument
@json_option
@pass_session
def tasks(session: Session, channel: ChannelRecord, as_json: bool) -> None:
    """The ledger of a channel: each task, its price, and whether it is settled on chain."""
    claimed = session.escrow_for(channel).channel(channel.key).claimed
    entries = session.store.ledger(channel.id)
    rows = [[str(i + 1), e.receipt.task_id, session.show(e.receipt.amount, channel.key.token),
             "settled" if e.total <= claimed else "unsettled"] for i, e in enumerate(entries)]
    emit(as_json, [{"task": e.receipt.task_id, "amount": str(e.receipt.amount), "note": e.receipt.note,
                    "settled": e.total <= claimed} for e in entries],
         table(rows, ["#", "task", "price", "state"]) if rows else "no tasks yet")


COMMANDS: list[click.Command] = [status, tasks]
