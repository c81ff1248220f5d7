"""How commands print: text for people or ``--json`` for scripts, tables, dates and amounts.

Results go to stdout; progress ("waiting for the receipt…") goes to stderr, so ``--json``
output stays parseable. Text that came from someone else (task ids, notes, token symbols,
anything inside a payment or a bundle) goes through :func:`safe` before it reaches a terminal.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, TypeAlias

import click

from micropay.units import format_amount, format_approx

#: (decimals, symbol) of a token.
Units: TypeAlias = tuple[int, str]

_NAMED = {"\r": "\\r", "\n": "\\n", "\t": "\\t"}


def safe(text: str) -> str:
    """``text`` with every character a terminal would act on instead of show made visible:
    control characters (``\\r``, ``\\x1b``…), bidirectional overrides and isolates
    (U+202A to U+202E, U+2066 to U+2069), zero-width and other format characters, line separators
    and lone surrogates become escapes like ``\\x1b`` and ``\\u202e``. Never raises."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char.isprintable():
            out.append(char)
        elif char in _NAMED:
            out.append(_NAMED[char])
        else:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


def quoted(text: str) -> str:
    """Someone else's text, escaped and in quotes: 'logo draft 1'."""
    return f"'{safe(text)}'"


def emit(as_json: bool, data: Any, text: str) -> None:
    """Print ``data`` as JSON for scripts (non-ASCII escaped, so JSON is safe too), or ``text``."""
    click.echo(json.dumps(data, indent=2, default=str) if as_json else text)


def progress(text: str) -> None:
    """A line about what is happening, on stderr."""
    click.echo(text, err=True)


def table(rows: list[list[str]], header: list[str]) -> str:
    """Left-aligned columns under a header and a rule; every cell is made :func:`safe`."""
    rows = [[safe(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()

    return "\n".join([line(header), line(["-" * width for width in widths]), *map(line, rows)])


def when(timestamp: int | float) -> str:
    """A block timestamp as a UTC date and time: "2025-06-01 12:00 UTC"."""
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def amount(value: int, units: Units) -> str:
    """Base units as people read them: "0.05 ETH", exact, without trailing zeros."""
    return safe(format_amount(value, *units))


def eth_fee(value: int) -> str:
    """A gas fee in ETH, rounded for reading: "~0.0001235 ETH"."""
    return format_approx(value, 18, "ETH")


def hex_id(channel_id: bytes, digits: int | None = None) -> str:
    """A channel id (or transaction hash) as 0x-hex, whole or its first ``digits`` hex digits."""
    return "0x" + channel_id.hex()[:digits]


def short(address: str) -> str:
    """An address shortened for a sentence: 0x1234…cdef."""
    return f"{address[:6]}…{address[-4:]}"
