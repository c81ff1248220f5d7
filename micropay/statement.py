"""Statements: the tasks paid on one or several channels, for an invoice or for filing.

:func:`build_statement` lists every receipt of each channel's ledger (a task paid) with the date
it was paid, the counterparty, the task's title, planned price and the plan version that set
that price (from the plan in force, when the channel was opened under one), the amount paid,
and the settlement transaction that moved the money on chain. Totals are per token.

Where the settlement comes from: with an escrow, its ``Claimed`` and ``Closed`` events (the
first whose claimed total covers the receipt's running total, with its block time); offline, a
payee's own confirmed settlement records (with the time it recorded them). A receipt that the
stored claimed total covers is *settled* even when its transaction is not known.

:func:`to_csv` and :func:`to_html` render a statement: CSV for a spreadsheet or an accountant
(amounts in token units, exact, and in base units), HTML as a standalone page that prints on A4.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape

from micropay.errors import PlanMismatch, PlanNotInForce, UnknownPlan
from micropay.escrow import Escrow
from micropay.escrow_events import ClaimEvent
from micropay.plan import Role
from micropay.progress import Deviation, TaskProgress, progress
from micropay.records import ChannelRecord
from micropay.store import VoucherStore
from micropay.units import format_amount

#: (decimals, symbol) of a token.
Units = Callable[[str], tuple[int, str]]


@dataclass(frozen=True)
class StatementChannel:
    """One channel of a statement: its parties, token, and the plan it was opened under
    (``plan`` the project's root, ``title`` and ``version`` of the version in force; empty and
    None for a channel without a plan in force)."""

    channel: str
    chain_id: int
    escrow: str
    role: Role
    payer: str
    payee: str
    token: str
    plan: str
    title: str
    version: int | None

    @property
    def counterparty(self) -> str:
        """The other side: the payer on a payee's statement, and vice versa."""
        return self.payer if self.role == "payee" else self.payee


@dataclass(frozen=True)
class StatementRow:
    """One task receipt. ``paid_at``: when its voucher was stored (None if unknown); ``index``:
    its place in the channel's ledger, from 1; ``total``: the channel's running total after it;
    ``price`` and ``version``: the planned price and the plan version that set it (None:
    unplanned, or no plan); ``settled``: the claimed total on chain covers it; ``settlement``: the
    transaction that moved it (0x, "" if not known) and ``settled_at`` its block time (offline:
    when the settlement was recorded)."""

    paid_at: float | None
    channel: str
    chain_id: int
    escrow: str
    role: Role
    counterparty: str
    token: str
    index: int
    task_id: str
    title: str
    price: int | None
    paid: int
    total: int
    version: int | None
    deviation: Deviation
    settled: bool
    settlement: str
    settled_at: float | None
    note: str


@dataclass(frozen=True)
class TokenTotals:
    """The totals of one token: ``planned`` counts each planned task of a channel once (a task
    paid twice is planned once), ``settled`` the receipts settled on chain."""

    token: str
    planned: int
    paid: int
    settled: int

    @property
    def unsettled(self) -> int:
        """Paid, not settled on chain yet."""
        return self.paid - self.settled


@dataclass(frozen=True)
class Statement:
    """The tasks paid on ``channels`` as ``address`` holds them, between ``start`` (inclusive) and
    ``end`` (exclusive) when given, oldest first, with totals per token."""

    address: str
    start: float | None
    end: float | None
    channels: tuple[StatementChannel, ...]
    rows: tuple[StatementRow, ...]
    totals: tuple[TokenTotals, ...]
    made_at: float


def build_statement(store: VoucherStore, records: Sequence[ChannelRecord], address: str, *,
                    escrow: Escrow | Sequence[Escrow] | None = None, start: float | None = None,
                    end: float | None = None, now: float | None = None) -> Statement:
    """The statement of ``records`` (channels of ``store``) for ``address``, their payer or
    payee. ``escrow`` (one, or several): where settlements are read from for the channels on it;
    the others are settled as ``store`` knows. ``start`` and ``end``: unix times; a row is kept
    when ``start <= paid_at < end`` (a row whose date is unknown is kept only without a period).
    Raises :class:`StoreError`, and what reading the escrow's events raises."""
    escrows = [] if escrow is None else [escrow] if isinstance(escrow, Escrow) else list(escrow)
    channels, rows = [], []
    for record in records:
        on = next((e for e in escrows if (e.chain_id, e.address) == (record.chain_id, record.escrow)), None)
        channel, found = _channel(store, record, address, on)
        channels.append(channel)
        rows += [r for r in found if _within(r.paid_at, start, end)]
    rows.sort(key=lambda r: (r.paid_at is None, r.paid_at or 0.0))  # stable: ledger order within a channel
    return Statement(address, start, end, tuple(channels), tuple(rows), _totals(rows),
                     time.time() if now is None else now)


def _within(at: float | None, start: float | None, end: float | None) -> bool:
    if start is None and end is None:
        return True
    return at is not None and (start is None or at >= start) and (end is None or at < end)


def _channel(store: VoucherStore, record: ChannelRecord, address: str,
             escrow: Escrow | None) -> tuple[StatementChannel, list[StatementRow]]:
    key = record.key
    tasks: dict[str, TaskProgress] = {}
    plan, title, version = "", "", None
    try:
        planned = progress(store, record, address)
    except (UnknownPlan, PlanNotInForce, PlanMismatch):
        pass  # no plan agreed for this channel: each task is named by its id, with no planned price
    else:
        tasks = {t.task_id: t for t in planned.tasks}
        plan, title, version = planned.plan, planned.title, planned.version
    channel = StatementChannel("0x" + record.id.hex(), record.chain_id, record.escrow, record.role, key.payer,
                               key.payee, key.token, plan, title, version)
    times = store.voucher_times(record.ref)
    settle = _settlements(store, record, escrow)
    rows, seen = [], set()
    for index, entry in enumerate(store.ledger(record.ref)):
        receipt = entry.receipt
        task = tasks.get(receipt.task_id)
        price = task.price if task else None
        deviation: Deviation = ("unplanned" if plan and price is None else "" if price is None
                                else "paid twice" if receipt.task_id in seen
                                else "below price" if receipt.amount < price
                                else "above price" if receipt.amount > price else "")
        seen.add(receipt.task_id)
        tx_hash, settled_at = settle(entry.total)
        rows.append(StatementRow(
            next((at for count, at in times if count > index), None), channel.channel, record.chain_id,
            record.escrow, record.role, channel.counterparty, key.token, index + 1, receipt.task_id,
            task.title if task and price is not None else receipt.task_id, price, receipt.amount, entry.total,
            task.version if task else None, deviation, bool(tx_hash) or entry.total <= record.claimed,
            tx_hash, settled_at, receipt.note))
    return channel, rows


def _settlements(store: VoucherStore, record: ChannelRecord,
                 escrow: Escrow | None) -> Callable[[int], tuple[str, float | None]]:
    """For a running total: the first settlement whose claimed total covers it (0x tx hash and
    its time), or ("", None)."""
    moves: list[tuple[int, bytes, float]]  # (claimed total, tx hash, time), oldest first
    if escrow is not None:
        events: list[ClaimEvent] = escrow.claims(record.id)
        moves = [(e.claimed, e.tx_hash, float(e.timestamp)) for e in events]
    elif record.role == "payee":
        moves = [(amount, s.tx_hash, s.created_at) for s in store.settlements("confirmed")
                 if s.escrow == record.escrow and s.chain_id in (0, record.chain_id)
                 for cid, amount in s.items if cid == record.id]
    else:
        moves = []

    def first(total: int) -> tuple[str, float | None]:
        found = next(((tx, at) for claimed, tx, at in moves if claimed >= total), None)
        return ("0x" + found[0].hex(), found[1]) if found else ("", None)

    return first


def _totals(rows: Sequence[StatementRow]) -> tuple[TokenTotals, ...]:
    out = []
    for token in dict.fromkeys(r.token for r in rows):
        mine = [r for r in rows if r.token == token]
        planned = {(r.channel, r.chain_id, r.escrow, r.task_id): r.price for r in mine if r.price is not None}
        out.append(TokenTotals(token, sum(planned.values()), sum(r.paid for r in mine),
                               sum(r.paid for r in mine if r.settled)))
    return tuple(out)


# -- rendering -------------------------------------------------------------------------------------

CSV_HEADER = ["kind", "date (UTC)", "channel", "chain", "role", "counterparty", "task", "title", "plan version",
              "deviation", "currency", "token", "planned", "paid", "settled", "planned (base units)",
              "paid (base units)", "settled (base units)", "settlement tx", "settled at (UTC)", "note"]


def _number(value: int | None, units: tuple[int, str]) -> str:
    """An amount in token units without its symbol, exact: "0.005"; "" for None."""
    return "" if value is None else format_amount(value, units[0], "").rstrip()


def _iso(at: float | None) -> str:
    return "" if at is None else datetime.fromtimestamp(at, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cell(text: str) -> str:
    """Someone else's text, kept from being read as a formula by a spreadsheet."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(statement: Statement, units: Units) -> str:
    """The statement as CSV (RFC 4180): a header, one row per task ("task"), one per token
    ("total"). Amounts in token units (exact decimals) and in base units; dates ISO 8601 in UTC."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for r in statement.rows:
        u = units(r.token)
        settled = r.paid if r.settled else 0
        price = None if r.deviation == "paid twice" else r.price  # planned once: the column sums to the total
        writer.writerow(["task", _iso(r.paid_at), r.channel, r.chain_id, r.role, r.counterparty, _cell(r.task_id),
                         _cell(r.title), "" if r.version is None else r.version, r.deviation, _cell(u[1]), r.token,
                         _number(price, u), _number(r.paid, u), _number(settled, u),
                         "" if price is None else price, r.paid, settled, r.settlement, _iso(r.settled_at),
                         _cell(r.note)])
    for t in statement.totals:
        u = units(t.token)
        writer.writerow(["total", "", "", "", "", "", "", "", "", "", _cell(u[1]), t.token, _number(t.planned, u),
                         _number(t.paid, u), _number(t.settled, u), t.planned, t.paid, t.settled, "", "", ""])
    return out.getvalue()


def _date(at: float | None, *, short: bool = False) -> str:
    """A date for people: "1 June 2025, 14:05 UTC" (``short``: "1 Jun 2025, 14:05")."""
    if at is None:
        return "unknown"
    d = datetime.fromtimestamp(at, tz=timezone.utc)
    return f"{d.day} {d:%b %Y}, {d:%H:%M}" if short else f"{d.day} {d:%B %Y}, {d:%H:%M} UTC"


def _day(at: float) -> str:
    d = datetime.fromtimestamp(at, tz=timezone.utc)
    return f"{d.day} {d:%B %Y}"


def period(statement: Statement) -> str:
    """The statement's period in words (its ``end`` is exclusive: the day before it is the last)."""
    start, end = statement.start, statement.end
    last = None if end is None else _day(end - 1)
    if start is None:
        return "every payment to date" if last is None else f"every payment up to {last}"
    return f"from {_day(start)}" + ("" if last is None else f" to {last}")


_CSS = """
@page { size: A4; margin: 15mm 14mm; }
body { font: 9.5pt/1.35 "Helvetica Neue", Arial, sans-serif; color: #000; background: #fff; margin: 0 auto;
       max-width: 182mm; padding: 8mm 0; }
h1 { font-size: 16pt; margin: 0 0 1mm; } .sub { font-size: 11pt; margin: 0 0 4mm; }
h2 { font-size: 11.5pt; margin: 6mm 0 2mm; break-after: avoid; page-break-after: avoid; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.8mm 6mm; margin: 0; }
dt { font-weight: bold; } dd { margin: 0; }
table { width: 100%; border-collapse: collapse; }
thead { display: table-header-group; } tfoot { display: table-footer-group; }
tr { break-inside: avoid; page-break-inside: avoid; }
th, td { text-align: left; vertical-align: top; padding: 1mm 1.5mm; border-bottom: 0.25mm solid #999; }
th { border-bottom: 0.5mm solid #000; font-size: 8.5pt; }
.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
.nowrap { white-space: nowrap; }
.hex { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 7.5pt; word-break: break-all; }
.small { font-size: 8pt; color: #333; } .warn { font-style: italic; }
footer { margin-top: 6mm; font-size: 8pt; color: #333; }
@media print { body { padding: 0; max-width: none; } }
"""
_SIDES = {"payee": "freelancer (payee)", "payer": "client (payer)"}
_DEVIATIONS = {"unplanned": "not in the plan", "paid twice": "paid twice", "below price": "paid below its price",
               "above price": "paid above its price", "": ""}


def to_html(statement: Statement, units: Units) -> str:
    """The statement as a standalone HTML page (inline CSS, no script, nothing fetched) that
    prints on A4: the parties, the period, every task, the settlement transactions and the
    totals. All text is escaped."""
    e = escape

    def money(value: int | None, token: str) -> str:
        return "" if value is None else e(format_amount(value, *units(token)))

    several = len({r.channel for r in statement.rows}) > 1
    txs = {tx: n for n, tx in enumerate(dict.fromkeys(r.settlement for r in statement.rows if r.settlement), 1)}
    when = {r.settlement: r.settled_at for r in statement.rows if r.settlement}
    side = " and ".join(_SIDES[r] for r in sorted({c.role for c in statement.channels})) or "-"
    channels = "".join(
        f"<tr><td class=hex>{e(c.channel)}</td><td class=hex>{e(c.payer)}</td><td class=hex>{e(c.payee)}</td>"
        f"<td>{e(c.title) or 'no plan'}{f' <span class=small>(version {c.version})</span>' if c.version else ''}"
        f"</td><td>{e(units(c.token)[1])}</td></tr>" for c in statement.channels)
    rows = "".join(_html_row(r, money, txs, several) for r in statement.rows) or (
        "<tr><td colspan=7>no task was paid in this period</td></tr>")
    settlements = "".join(f"<tr><td>{n}</td><td class=nowrap>{e(_date(when[tx], short=True))}</td>"
                          f"<td class=hex>{e(tx)}</td></tr>" for tx, n in txs.items())
    if settlements:
        settlements = ("<h2>Settlement transactions</h2>\n<table>\n<thead><tr><th>No.</th><th>Date (UTC)</th>"
                       f"<th>Transaction hash</th></tr></thead>\n<tbody>{settlements}</tbody>\n</table>")
    totals = "".join(
        f"<tr><td>{e(units(t.token)[1])}</td><td class=num>{money(t.planned, t.token)}</td>"
        f"<td class=num>{money(t.paid, t.token)}</td><td class=num>{money(t.settled, t.token)}</td>"
        f"<td class=num>{money(t.unsettled, t.token)}</td></tr>" for t in statement.totals) or (
        "<tr><td colspan=5>nothing paid</td></tr>")
    plans = ", ".join(dict.fromkeys(c.title for c in statement.channels if c.title))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Statement {e(statement.address)}: {e(period(statement))}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>Statement of tasks paid</h1>{f'<p class=sub>{e(plans)}</p>' if plans else ''}
<dl>
<dt>Account</dt><dd><span class=hex>{e(statement.address)}</span></dd>
<dt>Side</dt><dd>{e(side)}</dd>
<dt>Period</dt><dd>{e(period(statement))}</dd>
<dt>Issued</dt><dd>{e(_date(statement.made_at))}</dd>
</dl>
</header>
<h2>Parties</h2>
<table>
<thead><tr><th>Channel</th><th>Client (payer)</th><th>Freelancer (payee)</th><th>Plan</th><th>Currency</th></tr></thead>
<tbody>{channels}</tbody>
</table>
<h2>Tasks</h2>
<table>
<thead><tr><th>Paid (UTC)</th><th>Task</th><th>Plan version</th><th class=num>Planned</th><th class=num>Paid</th>
<th>Settled</th>{'<th>Channel</th>' if several else ''}</tr></thead>
<tbody>{rows}</tbody>
</table>
{settlements}
<h2>Totals</h2>
<table>
<thead><tr><th>Currency</th><th class=num>Planned</th><th class=num>Paid</th><th class=num>Settled</th>
<th class=num>Not settled yet</th></tr></thead>
<tbody>{totals}</tbody>
</table>
<footer>Amounts are exact. Dates are in UTC; a task's date is when its payment was signed or received. A task is
settled once the escrow's claimed total on chain covers it; its transaction is the one that moved it. A planned
total counts each planned task once.</footer>
</body>
</html>
"""


def _html_row(r: StatementRow, money: Callable[[int | None, str], str], txs: dict[str, int], several: bool) -> str:
    e = escape
    detail = "".join(f"<br><span class='small{cls}'>{e(text)}</span>"
                     for text, cls in ((_DEVIATIONS[r.deviation], " warn"), (r.note, "")) if text)
    task = e(r.title) + (f" <span class=small>({e(r.task_id)})</span>" if r.title != r.task_id else "")
    settled = (f"<span class=nowrap>transaction {txs[r.settlement]}</span>" if r.settlement
               else "yes (transaction not known here)" if r.settled else "not yet")
    return (f"<tr><td class=nowrap>{e(_date(r.paid_at, short=True))}</td><td>{task}{detail}</td>"
            f"<td>{'' if r.version is None else r.version}</td><td class=num>{money(r.price, r.token)}</td>"
            f"<td class=num>{money(r.paid, r.token)}</td><td>{settled}</td>"
            + (f"<td class='hex nowrap'>{e(r.channel[:10])}…</td>" if several else "") + "</tr>")
