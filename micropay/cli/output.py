"""How commands print: text for people or ``--json`` for scripts, tables, dates and amounts.

Results go to stdout; progress ("waiting for the receipt…") goes to stderr, so ``--json``
output stays parseable.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, TypeAlias

import click

from micropay.units import format_amount

#: (decimals, symbol) of a token.
Units: TypeAlias = tuple[int, str]


def emit(as_json: bool, data: Any, text: str) -> None:
    """Print ``data`` as JSON for scripts, or ``text`` for people."""
    click.echo(json.dumps(data, indent=2, default=str) if as_json else text)


def progress(text: str) -> None:
    """A line about what is happening, on stderr."""
    click.echo(text, err=True)


def table(rows: list[list[str]], header: list[str]) -> str:
    """Left-aligned columns under a header and a rule."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))

    return "\n".join([line(header), line(["-" * width for width in widths]), *map(line, rows)])


def when(timestamp: int) -> str:
    """A block timestamp as a UTC date and time: "2025-06-01 12:00 UTC"."""
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def amount(value: int, units: Units) -> str:
    """Base units as people read them: "0.05 ETH", exact, without trailing zeros."""
    return format_amount(value, *units)


def hex_id(channel_id: bytes, digits: int | None = None) -> str:
    """A channel id as 0x-hex, whole or its first ``digits`` hex digits."""
    return "0x" + channel_id.hex()[:digits]
