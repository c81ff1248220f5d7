"""For either side: where the work under a plan stands, and statements for invoices and filing.

Both read the store; when the node answers, each channel's chain state is read first (and
stored), so what is *settled* is current. Without a node they say so on stderr and show what the
store last read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click

from micropay.cli.context import Session, pass_session
from micropay.cli.errors import describe, one_line
from micropay.cli.options import CHANNEL, channel_argument, json_option
from micropay.cli.output import Units, amount, emit, hex_id, quoted, safe, table, when
from micropay.cli.output import progress as say
from micropay.cli.plans import book
from micropay.errors import MicropayValueError, NodeError
from micropay.escrow import Escrow
from micropay.inbox_sync import channel_inbox
from micropay.inbox_sync import take_from_inbox as inbox_documents
from micropay.plan import Role
from micropay.progress import Amendment, Change, Progress, TaskProgress
from micropay.progress import progress as plan_progress
from micropay.records import ChannelRecord
from micropay.statement import build_statement, to_csv, to_html

DAY = timedelta(days=1)


def units_of(session: Session) -> Callable[[str], Units]:
    """The units of each token: a token's are asked from the node; offline, base units."""
    def units(token: str) -> Units:
        try:
            return session.units(token)
        except NodeError:
            return 0, "units"
    return units


def refresh(session: Session, records: Sequence[ChannelRecord]) -> tuple[list[ChannelRecord], list[Escrow]]:
    """``records`` with their chain state read now (one batch per escrow) and stored, and the
    escrows read; without a node (or for channels on another chain), as last stored, with a
    line on stderr saying so."""
    try:
        chain = session.chain
    except NodeError as exc:
        last = max((r.checked_at for r in records), default=0.0)
        since = f" (last read {when(last)})" if last else ""
        say(f"no node ({one_line(describe(exc, None))}): showing the chain state as last stored{since}")
        return list(records), []
    fresh: dict[bytes, ChannelRecord] = {}
    escrows: dict[str, Escrow] = {}
    for record in records:
        if record.chain_id == chain and record.escrow not in escrows:
            escrows[record.escrow] = session.escrow_for(record)
    now = time.time()
    for address, escrow in escrows.items():
        here = [r for r in records if (r.chain_id, r.escrow) == (chain, address)]
        for record, state in zip(here, escrow.channels([r.key for r in here]), strict=True):
            if state is not None:  # None: not on chain (yet), nothing to read
                fresh[record.ref.uid] = record.updated(state, checked_at=now)
    if fresh:
        with session.store.transaction() as tx:
            tx.lock_channels([record.ref for record in fresh.values()])
            for record in fresh.values():
                tx.update_chain_state(record)
    others = {r.chain_id for r in records if r.chain_id != chain}
    if others:
        say(f"channels on chain {', '.join(map(str, sorted(others)))} are shown as last stored (the node is on "
            f"chain {chain})")
    return [fresh.get(r.ref.uid, r) for r in records], list(escrows.values())


# -- progress ----------------------------------------------------------------------------------------


def _who(role: Role | None, me: Role) -> str:
    if role is None:
        return ""
    return "you" if role == me else "the client" if role == "payer" else "the freelancer"


def deviation(task: TaskProgress, show: Callable[[int], str]) -> str:
    """How a task's payment differs from the plan, in words ("" if it does not)."""
    if task.deviation == "unplanned":
        return "unplanned"
    if task.deviation == "paid twice":
        return f"paid more than once ({show(task.paid)} in all)"
    if task.price is not None and task.deviation in ("below price", "above price"):
        side = "below" if task.deviation == "below price" else "above"
        return f"paid {show(abs(task.price - task.paid))} {side} its price"
    return ""


def coverage(report: Progress, show: Callable[[int], str]) -> str:
    """What the deposit still covers, as a sentence."""
    c = report.coverage
    left = f"{show(c.remaining)} of the deposit is left"
    if not c.unpaid:
        return f"every planned task is paid; {left}"
    tasks = sum(1 for t in report.tasks if t.price is not None and not t.paid)
    if not c.top_up:
        return f"the deposit covers every remaining task ({tasks}); {left}"
    who = "top up" if report.role == "payer" else "the client needs to top up"
    covers = (f"none of the {tasks} task{'s' if tasks != 1 else ''} left" if not c.covers_next else
              f"the next {c.covers_next} task{'s' if c.covers_next != 1 else ''} of {tasks}")
    return f"the deposit covers {covers} ({left}); {who} {show(c.top_up)} to cover the plan"


def _change(change: Change, show: Callable[[int], str]) -> str:
    task = quoted(change.task_id)

    def due(value: int | None) -> str:
        return when(value) if value else "no date"

    if change.kind == "added":
        return f"added {task} at {show(change.price_after or 0)}" + (
            f", due {when(change.due_after)}" if change.due_after else "")
    if change.kind == "removed":
        return f"removed {task} ({show(change.price_before or 0)})"
    if change.kind == "re-priced":
        return f"re-priced {task}: {show(change.price_before or 0)} → {show(change.price_after or 0)}"
    if change.kind == "re-dated":
        return f"re-dated {task}: {due(change.due_before)} → {due(change.due_after)}"
    return f"changed {task} (its title or criteria)"


def _amendment(a: Amendment, current: int, me: Role, show: Callable[[int], str]) -> list[str]:
    state = ("in force" if a.version == current and a.in_force else "agreed, since amended" if a.in_force
             else "proposed, not signed by both sides yet" + ("" if a.proposed_by == me
                                                              else f": `micropay plan accept {a.hash}`"))
    line = f"  version {a.version}, proposed by {_who(a.proposed_by, me)} on {when(a.proposed_at)} ({state}): "
    if a.version == 1:
        line += f"total {show(a.total_after)}"
    else:
        moved = a.total_after - a.total_before
        sign = "+" if moved >= 0 else "-"
        line += f"total {show(a.total_before)} → {show(a.total_after)} ({sign}{show(abs(moved))})"
    return [line] + [f"    {_change(c, show)}" for c in a.changes]


def render_progress(report: Progress, record: ChannelRecord, show: Callable[[int], str]) -> str:
    """``micropay progress`` for people."""
    me = report.role
    other = (f"you pay freelancer {record.key.payee}" if me == "payer"
             else f"you are paid by client {record.key.payer}")
    lines = [(f"{quoted(report.title)}: plan {report.plan[:14]}…, version {report.version}; channel "
              f"{hex_id(record.id, 10)}: {other}"), ""]
    rows = [[t.task_id, t.title, t.state, "" if t.price is None else show(t.price), show(t.paid) if t.paid else "",
             when(t.due) if t.due else "", _who(t.waiting_for, me),
             ", ".join(x for x in (deviation(t, show), "overdue" if t.overdue else "") if x)]
            for t in report.tasks]
    lines.append(table(rows, ["task", "title", "state", "price", "paid", "due", "waits for", "differs"]))
    share = f"{report.share:.0%}" if report.planned_total else "-"
    outside = report.paid_total - report.paid_planned
    lines += ["", f"paid {show(report.paid_planned)} of {show(report.planned_total)} planned ({share} of the budget)"
              + (f", and {show(outside)} beyond the planned prices" if outside else "")
              + f"; settled on chain: {show(report.settled_total)}", coverage(report, show)]
    due = {t.task_id: t.due for t in report.tasks}
    if report.overdue:
        lines.append("overdue: " + ", ".join(f"{quoted(t)} (due {when(due[t])})" for t in report.overdue))
    waiting: tuple[tuple[Role, tuple[str, ...]], ...] = (("payee", report.waiting_for_payee),
                                                         ("payer", report.waiting_for_payer))
    for role, ids in waiting:
        if ids:
            lines.append(f"waiting for {_who(role, me)}: " + ", ".join(quoted(t) for t in ids))
    lines += ["", "amendments:" if len(report.amendments) > 1 else "plan:"]
    for a in report.amendments:
        lines += _amendment(a, report.version, me, show)
    return "\n".join(lines)


def take_from_inbox(session: Session, record: ChannelRecord) -> None:
    """Read ``record``'s progress from the freelancer's inbox with a request this account signs,
    and store every plan and feedback document it returns that verifies (one line on stderr for
    each one skipped). Raises :class:`MicropayValueError` (no inbox), or the inbox's error."""
    if channel_inbox(session.read_store, record) is None:
        raise MicropayValueError(f"channel {hex_id(record.id, 10)} has no inbox (neither the channel nor its plan "
                                 "names one): run `micropay progress` without --from-inbox")
    taken = inbox_documents(session.store, session.account, record, lambda plan: book(session, plan))
    for reason in taken.skipped:
        say(f"skipped a document from the inbox that is {reason}")
    say(f"read {taken.taken} document{'s' if taken.taken != 1 else ''} from the freelancer's inbox at "
        f"{safe(taken.url)}" + (f" ({len(taken.skipped)} skipped)" if taken.skipped else ""))


@click.command()
@channel_argument
@click.option("--from-inbox", is_flag=True, help="first read the plan and feedback documents from the "
              "freelancer's inbox (a request signed with your key) into your store")
@json_option
@pass_session
def progress(session: Session, channel: ChannelRecord, from_inbox: bool, as_json: bool) -> None:
    """Where the work under CHANNEL's plan stands, on either side: each task (its state, price,
    payment, due date, who it waits for, how it differs from the plan), paid against planned,
    what the deposit still covers, overdue tasks and the amendments."""
    session.check_chain(channel)
    if from_inbox:
        take_from_inbox(session, channel)
    (record,), _ = refresh(session, [channel])
    report = plan_progress(session.read_store, record, session.address)
    if as_json:
        emit(True, report.to_dict(), "")
        return
    units = units_of(session)

    def show(value: int) -> str:
        return amount(value, units(record.key.token))

    click.echo(render_progress(report, record, show))


# -- statement ---------------------------------------------------------------------------------------


def _utc(day: datetime) -> float:
    return day.replace(tzinfo=timezone.utc).timestamp()


@click.command()
@click.argument("channel", type=CHANNEL, required=False)
@click.option("--all", "every", is_flag=True, help="every channel in the store")
@click.option("--from", "first", type=click.DateTime(["%Y-%m-%d"]), help="the first day, YYYY-MM-DD (UTC)")
@click.option("--to", "last", type=click.DateTime(["%Y-%m-%d"]), help="the last day, YYYY-MM-DD (UTC), included")
@click.option("--format", "fmt", type=click.Choice(["csv", "html"]), required=True,
              help="csv for a spreadsheet or an accountant; html to print")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="write to FILE (default: stdout)")
@pass_session
def statement(session: Session, channel: ChannelRecord | None, every: bool, first: datetime | None,
              last: datetime | None, fmt: str, out: Path | None) -> None:
    """Every task paid on CHANNEL (or, with --all, on every channel) with its date, planned and
    paid price, plan version and the settlement transaction that moved the money, with totals per
    token: to attach to an invoice, or to file."""
    if (channel is None) == (not every):
        raise click.UsageError("give CHANNEL or --all (not both)")
    if first is not None and last is not None and first > last:
        raise click.UsageError(f"--from {first:%Y-%m-%d} is after --to {last:%Y-%m-%d}")
    if channel is not None:
        session.check_chain(channel)
        records = [channel]
    else:
        records = [r for r in session.read_store.channels()
                   if session.chain_id is None or r.chain_id == session.chain_id]
    fresh, escrows = refresh(session, records) if records else ([], [])
    report = build_statement(session.read_store, fresh, session.address, escrow=escrows,
                             start=None if first is None else _utc(first),
                             end=None if last is None else _utc(last + DAY))
    units = units_of(session)
    text = to_csv(report, units) if fmt == "csv" else to_html(report, units)
    if out is None:
        click.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8", newline="")
    say(f"wrote a statement of {len(report.rows)} task{'s' if len(report.rows) != 1 else ''} to {safe(str(out))}")


COMMANDS: list[click.Command] = [progress, statement]
