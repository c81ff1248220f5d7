"""Parameter types and option decorators the commands share.

A channel argument is resolved against the store as it is parsed (its id or a unique prefix of
at least 6 hex digits); an amount is kept as typed until the command knows the token's units.
Their errors are micropay errors, so they end as one clean line like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from micropay._utils.addresses import normalize
from micropay.channel import ETH
from micropay.cli.context import Session
from micropay.cli.output import Units
from micropay.errors import MicropayValueError, UnknownChannel
from micropay.records import ChannelRecord
from micropay.store_backend import is_postgres
from micropay.units import parse_amount

F = TypeVar("F", bound=Callable[..., Any])

#: Fewest hex digits of a channel id that select a channel.
MIN_PREFIX = 6


@dataclass(frozen=True)
class Amount:
    """An amount as typed: "0.05 ETH", "12.5 USDC", "20 gwei", or (with ``--wei``) base units."""

    text: str
    positive: bool = False  # a payment, deposit or top-up: zero is refused

    def base_units(self, units: Units, *, wei: bool = False) -> int:
        """The amount in base units of a token with these units (checks the unit and decimals).
        A bare integer is base units only when ``wei`` (the command's ``--wei``) is set. Raises
        :class:`MicropayValueError` for text that is no such amount, or zero where it must be positive."""
        value = parse_amount(self.text, *units, bare=wei)
        if self.positive and value <= 0:
            raise MicropayValueError(f"the amount must be more than 0, got {self.text!r:.60}")
        return value


@dataclass(frozen=True)
class Address:
    """An address as typed, checked: ``value`` is its EIP-55 form; ``checksummed`` says whether
    the text carried a checksum (mixed case) rather than being all lowercase or uppercase."""

    value: str
    checksummed: bool


def parse_address(text: str, what: str) -> Address:
    """Raises :class:`MicropayValueError` for text that is not an address, or mixed case whose
    EIP-55 checksum is wrong (a mistyped character)."""
    text = text.strip()
    normalized = normalize(text)
    if normalized is None:
        digits = text.removeprefix("0x")
        if len(digits) == 40 and all(c in "0123456789abcdefABCDEF" for c in digits) and text.startswith("0x"):
            raise MicropayValueError(f"the {what} {text} has a wrong EIP-55 checksum: a character is mistyped "
                                     "(copy the address again)")
        raise MicropayValueError(f"the {what} must be an address (0x and 40 hex digits), got {text!r:.60}")
    digits = text[2:]
    return Address(normalized[0], digits not in (digits.lower(), digits.upper()))


if TYPE_CHECKING:  # click >= 8.4 types a ParamType by the value it converts to
    _AmountParam = click.ParamType[Amount]
    _ChannelParam = click.ParamType[ChannelRecord]
    _StoreParam = click.ParamType[Path | str]
else:  # and click < 8.4 takes no type arguments at run time
    _AmountParam = _ChannelParam = _StoreParam = click.ParamType


class StoreLocation(_StoreParam):
    """``--store``: a ``postgresql://`` URL as given, else a path."""

    name = "store"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> Path | str:
        if isinstance(value, Path):
            return value
        text = str(value).strip()
        if is_postgres(text):
            return text
        # Anything else is a path, but never one that looks like a mistyped URL or a connection
        # string: it may hold a password, which an error about a missing folder would print.
        scheme = text.partition(":")[0]
        if "://" in text or (":/" in text and "@" in text) or "password=" in text or "host=" in text:
            self.fail(f"a store is a file's path or a postgresql:// URL; this looks like a URL or connection "
                      f"string of another form ({scheme[:20]!r}…), not shown: it may hold a password", param, ctx)
        return Path(text)


class AmountType(_AmountParam):
    """An amount as typed; ``positive`` for what is paid or locked (a payment, deposit, top-up)."""

    name = "text"  # shown as TEXT in --help, as before: the units are only known later

    def __init__(self, *, positive: bool = False) -> None:
        self.positive = positive

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Amount:
        text = value.text if isinstance(value, Amount) else str(value)
        return Amount(text, self.positive)


def find_channel(session: Session, text: str) -> ChannelRecord:
    """The stored channel whose id is ``text`` or starts with it (at least 6 hex digits). The same
    id on several chains is narrowed to ``--chain-id`` when given."""
    wanted = text.lower().removeprefix("0x")
    if len(wanted) < MIN_PREFIX:
        raise MicropayValueError(f"give at least {MIN_PREFIX} hex digits of the channel id")
    matches = [record for record in session.read_store.channels() if record.id.hex().startswith(wanted)]
    if len(matches) > 1 and session.chain_id is not None:
        matches = [record for record in matches if record.chain_id == session.chain_id] or matches
    if len(matches) != 1:
        if not matches:
            raise UnknownChannel(f"no channel starting with {text} in {session.read_store.location}")
        chains = sorted({record.chain_id for record in matches})
        raise UnknownChannel(f"{text} matches {len(matches)} channels: give more digits" if len(chains) == 1 else
                             f"{text} names channels on chains {', '.join(map(str, chains))}: add --chain-id N")
    return matches[0]


class ChannelType(_ChannelParam):
    name = "channel"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> ChannelRecord:
        if isinstance(value, ChannelRecord):
            return value
        session = ctx.find_object(Session) if ctx is not None else None
        if session is None:
            raise click.UsageError("a channel needs the micropay session", ctx)
        return find_channel(session, str(value))


AMOUNT = AmountType()
POSITIVE_AMOUNT = AmountType(positive=True)
CHANNEL = ChannelType()


def amount_argument(name: str) -> Callable[[F], F]:
    """An amount paid or locked (``pay``, ``open``, ``top-up``): more than 0."""
    return click.argument(name, type=POSITIVE_AMOUNT)


def channel_argument(fn: F) -> F:
    return click.argument("channel", type=CHANNEL)(fn)


def token_option(help: str) -> Callable[[F], F]:
    return click.option("--token", default=ETH, help=help)


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")(fn)


def wei_option(fn: F) -> F:
    return click.option("--wei", is_flag=True,
                        help="a bare integer amount is base units (wei, or the token's smallest unit)")(fn)


def yes_option(fn: F) -> F:
    return click.option("--yes", is_flag=True, help="do not ask for confirmation")(fn)


def min_net_option(fn: F) -> F:
    return click.option("--min-net", type=AMOUNT, default="0",
                        help="skip channels whose unclaimed value is below this plus gas")(fn)
