"""Untrusted text, bounded in size and nesting before it is parsed.

A JSON document nested 70,000 deep overflows the C stack of the parser (py_ecc raises Python's
recursion limit, so Python does not stop it first): the process dies with a segmentation fault.
So every untrusted document is measured first, by a linear scan that never recurses.
"""

from __future__ import annotations

import json

from micropay.errors import MicropayError

#: Nesting no micropay document needs more of: a bundle is four levels deep.
MAX_DEPTH = 8


def nesting_depth(text: str) -> int:
    """The deepest nesting of ``[`` and ``{`` in a JSON text, ignoring brackets inside strings."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def loads(data: str | bytes, *, what: str, max_bytes: int, error: type[MicropayError],
          max_depth: int = MAX_DEPTH) -> object:
    """Parse untrusted JSON after checking its size and nesting.

    Raises ``error`` (a micropay error class) for a document that is too large, too deeply
    nested, not UTF-8 or not JSON; never anything else."""
    if len(data) > max_bytes:
        raise error(f"the {what} is {len(data):,} bytes, above the limit of {max_bytes:,}")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise error(f"the {what} is not UTF-8 text: {exc}") from None
    if nesting_depth(text) > max_depth:
        raise error(f"the {what} is nested deeper than {max_depth} levels: not a micropay document")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise error(f"the {what} is not valid JSON: {exc}") from None
