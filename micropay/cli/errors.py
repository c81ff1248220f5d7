"""Every failure as one line a person can act on: what went wrong and what to do.

Library errors carry raw numbers (wei, unix seconds) and sometimes a node's raw answer; the
commands reword the ones whose context they know (:func:`reword`), and :func:`describe` turns
whatever reaches the top into the one line ``micropay`` prints.
"""

from __future__ import annotations

import re
from typing import TypeVar

from micropay.cli.output import safe
from micropay.errors import InsufficientFunds, MicropayError, NodeError, StoreError, TransactionError

E = TypeVar("E", bound=MicropayError)

#: What to do about a store that cannot be read.
STORE_HINT = ("rebuild it from the chain with `micropay sync` (into a new --store file), or restore a backup "
              "with `micropay import FILE`")
_BASE_FEE = re.compile(r"base fee \((\d+) wei/gas\) is at or above your cap \((\d+)\)")


def reword(exc: E, message: str) -> E:
    """``exc`` (same class, same attributes) saying ``message`` instead."""
    new = type(exc).__new__(type(exc))  # not __init__: subclasses take other arguments (a shortfall...)
    new.__dict__.update(exc.__dict__)
    new.args = (message,)
    new.__cause__ = exc
    return new


def _gwei(wei: str) -> str:
    return f"{int(wei) / 10**9:.3g} gwei"


def describe(exc: BaseException, balance: str | None) -> str:
    """The one line for an error that reached the top. ``balance`` is what the active account
    holds (for a shortage of ETH), if it could be read."""
    if isinstance(exc, InsufficientFunds) and exc.revert is None and _raw(str(exc)):  # ETH, from the node
        held = f" (it holds {balance})" if balance else ""
        return f"the account does not hold enough ETH for this transaction and its gas{held}: send it some ETH first"
    if isinstance(exc, TransactionError) and (match := _BASE_FEE.search(str(exc))):
        return (f"the network's base fee ({_gwei(match[1])} per gas) is at or above your --max-fee-gwei "
                f"({_gwei(match[2])}): wait for fees to fall, or raise the cap")
    if isinstance(exc, StoreError) and _damaged(exc):
        text = str(exc)
        return text if "micropay sync" in text else f"{text}: {STORE_HINT}"
    if isinstance(exc, MicropayError):
        return str(exc)
    if isinstance(exc, OSError):
        return str(NodeError(f"{exc.strerror or exc}"))
    return f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)"


def _raw(text: str) -> bool:
    """A message in wei, or carrying a node's raw answer (a JSON-RPC error dict)."""
    return " wei" in text or "{" in text or "cannot afford" in text


def _damaged(exc: StoreError) -> bool:
    return "corrupt" in str(exc) or "not a micropay store" in str(exc)


def one_line(text: str) -> str:
    """An error message as one safe line: someone else's text inside it cannot act on the terminal."""
    return safe(text.strip())


__all__ = ["STORE_HINT", "describe", "one_line", "reword"]
