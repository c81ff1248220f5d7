"""For either side: what the channels hold, and which tasks are settled."""

from __future__ import annotations

import click

from micropay.channel import ChannelState, ChannelStatus, closing
from micropay.cli.context import Session, pass_session
from micropay.cli.options import channel_argument, json_option
from micropay.cli.output import emit, hex_id, safe, table, when
from micropay.outbox import Backlog, Outbox
from micropay.overview import ChannelView, overview
from micropay.records import ChannelRecord

STATUS_HEADER = ["channel", "chain", "role", "counterparty", "token", "deposit", "paid", "unclaimed", "left",
                 "status", "expiry", "tasks"]


def status_text(state: ChannelState) -> str:
    """open, closing until <date>, expired or closed."""
    if state.status is ChannelStatus.OPEN and closing(state, state.observed_at):
        return f"closing until {when(state.expiry)}"
    return state.status.value


@click.command()
@json_option
@pass_session
def status(session: Session, as_json: bool) -> None:
    """A line per channel: chain, counterparty, token, deposit, paid, unclaimed, what is left to
    spend (the client's), status, expiry, tasks. A channel on another chain than the node's is
    shown as last stored. Then, for the client, a line per channel whose payments are not all
    delivered to the freelancer's inbox yet: how many, their value, and why."""
    records = session.read_store.channels()
    if not records:  # nothing to ask the node
        emit(as_json, [], "no channels yet")
        return
    on_this_chain = [r for r in records if r.chain_id == session.chain]
    escrows = list({r.escrow: session.escrow_for(r) for r in on_this_chain}.values())
    rows, data, notes = [], [], []
    backlogs = {b.channel.uid: b for b in Outbox(session.read_store).backlog()}
    for view in overview(session.read_store, escrows):  # one batched chain read per escrow
        row, item = _row(session, view)
        backlog = backlogs.get(view.record.ref.uid)
        item["undelivered"] = None if backlog is None else {
            "count": backlog.count, "amount": str(backlog.amount), "inbox": backlog.inbox,
            "lastError": backlog.last_error, "attempts": backlog.attempts}
        if backlog is not None:
            notes.append(_undelivered(session, view.record, backlog))
        rows.append(row)
        data.append(item)
    emit(as_json, data, "\n".join([table(rows, STATUS_HEADER), *notes]))


def _undelivered(session: Session, record: ChannelRecord, backlog: Backlog) -> str:
    """One channel's payments not delivered yet, in one line."""
    why = f": {safe(backlog.last_error)}" if backlog.last_error else " (not tried yet)"
    return (f"channel {hex_id(record.id, 10)}: {backlog.count} payment(s) of "
            f"{session.show(backlog.amount, record.key.token)} not delivered to {backlog.inbox}{why}; "
            "`micropay deliver` retries")


def _row(session: Session, view: ChannelView) -> tuple[list[str], dict[str, object]]:
    record, token = view.record, view.record.key.token
    # A channel on another chain or escrow than the session's: what the store last read of it.
    state = view.state or _stored_state(record)
    counterparty = record.key.payer if record.role == "payee" else record.key.payee
    left = _left(record, state)
    show = session.show
    row = [hex_id(record.id, 10), str(record.chain_id), record.role, counterparty, session.symbol(token),
           show(state.deposit, token), show(view.paid, token), show(view.unclaimed, token),
           "" if left is None else show(left, token), _status(session, view, state), when(state.expiry),
           str(view.tasks)]
    item = {"channel": hex_id(record.id), "chain": record.chain_id, "escrow": record.escrow, "role": record.role,
            "counterparty": counterparty, "token": token, "deposit": str(state.deposit), "paid": str(view.paid),
            "claimed": str(state.claimed), "unclaimed": str(view.unclaimed),
            "left": None if left is None else str(left), "status": state.status.value,
            "closing": closing(state, state.observed_at), "expiry": state.expiry, "tasks": view.tasks,
            "read": view.state is not None}  # False: as last stored (a channel on another chain)
    return row, item


def _left(record: ChannelRecord, state: ChannelState) -> int | None:
    """What the client can still spend: nothing once the channel is closed or expired; None for
    the freelancer."""
    if record.role != "payer":
        return None
    return 0 if state.status is not ChannelStatus.OPEN else max(0, state.deposit - record.issued)


def _status(session: Session, view: ChannelView, state: ChannelState) -> str:
    if view.record.chain_id != session.chain:  # never read through this node: not "unseen"
        return f"on chain {view.record.chain_id} (not read)"
    if view.state is None and not view.record.observed_at:
        return "not seen on chain yet (`micropay sync`)"
    return status_text(state)


def _stored_state(record: ChannelRecord) -> ChannelState:
    return ChannelState(record.key, record.deposit, record.claimed, record.expiry, record.window, record.closed,
                        record.observed_at)


@click.command()
@channel_argument
@json_option
@pass_session
def tasks(session: Session, channel: ChannelRecord, as_json: bool) -> None:
    """The ledger of a channel: each task, its price, and whether it is settled on chain."""
    session.check_chain(channel)
    entries = session.read_store.ledger(channel.ref)
    claimed = session.escrow_for(channel).channel(channel.key).claimed
    rows = [[str(i + 1), e.receipt.task_id, session.show(e.receipt.amount, channel.key.token),
             "settled" if e.total <= claimed else "unsettled", e.receipt.note] for i, e in enumerate(entries)]
    emit(as_json, [{"task": e.receipt.task_id, "amount": str(e.receipt.amount), "note": e.receipt.note,
                    "settled": e.total <= claimed} for e in entries],
         table(rows, ["#", "task", "price", "state", "note"]) if rows else "no tasks yet")


COMMANDS: list[click.Command] = [status, tasks]
