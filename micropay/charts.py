"""Charts as SVG text, drawn on the server: every figure shows without JavaScript.

:func:`earnings_chart` draws cumulative amounts over time, one stepped line per series (received
and settled, per client); :func:`progress_bar` draws a plan's share done. Both are accessible:
``role="img"`` with a ``<title>`` and a ``<desc>`` that says in words what the picture shows
(the final figure of each series, or the share), every series is told apart by its dash pattern as
well as its colour (and named in a legend), and every data point carries a ``<title>`` of its own (a screen reader, or a
mouse hovering, reads "client 0xAbC…: 0.005 ETH on 2026-11-23 14:02 UTC").

Amounts are integers in base units, up to uint256: they are scaled with integer arithmetic, never
through floats, so no amount overflows or rounds to another bar. Times are unix seconds; labels
are written in ``tz`` (UTC by default) and each point keeps its time in ``data-time`` for a page
script to write it in the viewer's time zone. Every piece of text is escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from xml.sax.saxutils import escape, quoteattr

from micropay.errors import MicropayValueError

#: Colours (with a dash pattern each, so that colour is never the only difference).
PALETTE = (("#1f6feb", ""), ("#b35900", "6 3"), ("#1a7f37", "2 3"), ("#8250df", "8 3 2 3"),
           ("#cf222e", "1 2"), ("#57606a", "10 4"))
_PAD_LEFT, _PAD_RIGHT, _PAD_TOP, _PAD_BOTTOM = 96, 16, 16, 60
_LEGEND_CHAR = 8  # px per character (12px sans-serif) of a legend label, near enough to space the entries


@dataclass(frozen=True)
class Series:
    """One line: its ``label`` and its points (unix time, cumulative amount in base units), in time order."""

    label: str
    points: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        times = [t for t, _ in self.points]
        if times != sorted(times):
            raise MicropayValueError(f"the points of {self.label!r} are not in time order")
        if any(not isinstance(a, int) or isinstance(a, bool) or a < 0 for _, a in self.points):
            raise MicropayValueError(f"the amounts of {self.label!r} are not whole, non-negative base units")

    @property
    def last(self) -> int:
        """The series' final amount (0 without points)."""
        return self.points[-1][1] if self.points else 0


def short(label: str, keep: int = 18) -> str:
    """``label`` cut to ``keep`` characters for a legend ("0x45dE2e…516D1B015"); the whole label
    stays in the series' title and description."""
    if len(label) <= keep:
        return label
    head = (keep - 1) // 2
    return label[:head] + "…" + label[-(keep - 1 - head):]


def _when(t: int, tz: tzinfo) -> str:
    moment = datetime.fromtimestamp(t, tz)
    return moment.strftime("%Y-%m-%d %H:%M ") + (moment.tzname() or "")


def earnings_chart(series: Sequence[Series], *, show: Callable[[int], str], title: str, width: int = 640,
                   height: int = 240, tz: tzinfo = timezone.utc, chart_id: str = "earnings") -> str:
    """An SVG chart of cumulative amounts over time, one stepped line per series (an amount holds
    until the next point). ``show`` writes an amount ("0.005 ETH"). Raises
    :class:`MicropayValueError` for a size too small to draw in."""
    if width < _PAD_LEFT + _PAD_RIGHT + 50 or height < _PAD_TOP + _PAD_BOTTOM + 50:
        raise MicropayValueError(f"a chart of {width}x{height} is too small to draw")
    plot_w, plot_h = width - _PAD_LEFT - _PAD_RIGHT, height - _PAD_TOP - _PAD_BOTTOM
    points = [p for s in series for p in s.points]
    summary = "; ".join(f"{s.label}: {show(s.last)}" for s in series) if points else "no payments yet"
    cid = escape(chart_id, {'"': "&quot;"})
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
             f'class="chart" id="{cid}" aria-labelledby="{cid}-title {cid}-desc" font-size="12" '
             'font-family="system-ui, sans-serif">'),
             f'<title id="{cid}-title">{escape(title)}</title>',
             f'<desc id="{cid}-desc">{escape(summary)}</desc>']
    if not points:
        parts.append(f'<text x="{width // 2}" y="{height // 2}" text-anchor="middle">no payments yet</text></svg>')
        return "".join(parts)
    start, end = min(t for t, _ in points), max(t for t, _ in points)
    span, top = max(1, end - start), max(1, *(a for _, a in points))

    def x(t: int) -> int:
        return _PAD_LEFT + (t - start) * plot_w // span

    def y(amount: int) -> int:
        return _PAD_TOP + plot_h - amount * plot_h // top  # integers: exact for any uint256

    base = _PAD_TOP + plot_h
    parts.append(f'<g class="axes" stroke="#57606a"><line x1="{_PAD_LEFT}" y1="{base}" x2="{_PAD_LEFT + plot_w}" '
                 f'y2="{base}"/><line x1="{_PAD_LEFT}" y1="{_PAD_TOP}" x2="{_PAD_LEFT}" y2="{base}"/></g>')
    for amount in (0, top // 2, top):
        parts.append(f'<text class="tick" x="{_PAD_LEFT - 6}" y="{y(amount) + 4}" text-anchor="end">'
                     f'{escape(show(amount))}</text>')
    # Both ends of the time axis, unless they would overlap (then the end alone).
    one = ((end, "start" if x(end) < _PAD_LEFT + plot_w // 2 else "end"),)
    for t, anchor in ((start, "start"), (end, "end")) if x(end) - x(start) >= 200 else one:
        parts.append(f'<text class="tick time" x="{x(t)}" y="{base + 18}" text-anchor="{anchor}" '
                     f'data-time="{t}">{escape(_when(t, tz))}</text>')
    legend_x = _PAD_LEFT
    for index, line in enumerate(series):  # the legend: a sample of each line, then its label
        colour, dash = PALETTE[index % len(PALETTE)]
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<g class="legend" aria-hidden="true"><line x1="{legend_x}" y1="{base + 34}" '
                     f'x2="{legend_x + 24}" y2="{base + 34}" stroke="{colour}" stroke-width="2"{dashes}/>'
                     f'<text class="label" x="{legend_x + 30}" y="{base + 38}">{escape(short(line.label))}</text></g>')
        legend_x += 30 + _LEGEND_CHAR * len(short(line.label)) + 24
    for index, line in enumerate(series):
        colour, dash = PALETTE[index % len(PALETTE)]
        parts.append(f'<g class="series" data-series={quoteattr(line.label)}><title>{escape(line.label)}: '
                     f'{escape(show(line.last))}</title>')
        if line.points:
            steps, previous = [f"M{x(line.points[0][0])},{y(line.points[0][1])}"], line.points[0][1]
            for t, amount in line.points[1:]:
                steps.append(f"H{x(t)}V{y(amount)}" if amount != previous else f"H{x(t)}")
                previous = amount
            steps.append(f"H{_PAD_LEFT + plot_w}")
            dashes = f' stroke-dasharray="{dash}"' if dash else ""
            parts.append(f'<path d="{"".join(steps)}" fill="none" stroke="{colour}" stroke-width="2"{dashes}/>')
            for t, amount in line.points:
                parts.append(f'<circle cx="{x(t)}" cy="{y(amount)}" r="3" fill="{colour}" data-time="{t}" '
                             f'data-amount="{amount}"><title>{escape(line.label)}: {escape(show(amount))} on '
                             f'{escape(_when(t, tz))}</title></circle>')
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def progress_bar(done: int, total: int, *, label: str, show: Callable[[int], str], width: int = 320,
                 height: int = 20, bar_id: str = "progress") -> str:
    """An SVG bar of ``done`` out of ``total`` (amounts in base units, or task counts with
    ``show=str``), its share written out in its ``<desc>``. More than the total is drawn full and
    said as it is. Raises :class:`MicropayValueError` for negative figures."""
    if done < 0 or total < 0:
        raise MicropayValueError("a progress bar's figures are not negative")
    filled = width if total == 0 and done > 0 else (min(done, total) * width // total if total else 0)
    share = f"{done * 100 // total}%" if total else ("done" if done else "nothing planned")
    text = f"{label}: {show(done)} of {show(total)} ({share})"
    bid = escape(bar_id, {'"': "&quot;"})
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" class="bar" '
            f'id="{bid}" aria-labelledby="{bid}-title {bid}-desc">'
            f'<title id="{bid}-title">{escape(label)}</title><desc id="{bid}-desc">{escape(text)}</desc>'
            f'<rect x="0" y="0" width="{width}" height="{height}" fill="#eaeef2"/>'
            f'<rect class="done" x="0" y="0" width="{filled}" height="{height}" fill="#1a7f37" '
            f'data-done="{done}" data-total="{total}"/></svg>')
