"""Parameter types and option decorators the commands share.

A channel argument is resolved against the store as it is parsed (its id or a unique prefix of
at least 6 hex digits); an amount is kept as typed until the command knows the token's units.
Their errors are micropay errors, so they end as one clean line like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

from micropay.channel import ETH
from micropay.cli.context import Session
from micropay.cli.output import Units
from micropay.errors import MicropayValueError, UnknownChannel
from micropay.records import ChannelRecord
from micropay.store import VoucherStore
from micropay.units import parse_amount

F = TypeVar("F", bound=Callable[..., Any])

#: Fewest hex digits of a channel id that select a channel.
MIN_PREFIX = 6


@dataclass(frozen=True)
class Amount:
    """An amount as typed: "0.05 ETH", "12.5 USDC", or whole base units."""

    text: str

    def base_units(self, units: Units) -> int:
        """The amount in base units of a token with these units (checks the symbol and decimals)."""
        return parse_amount(self.text, *units)


if TYPE_CHECKING:  # click >= 8.4 types a ParamType by the value it converts to
    _AmountParam = click.ParamType[Amount]
    _ChannelParam = click.ParamType[ChannelRecord]
else:  # and click < 8.4 takes no type arguments at run time
    _AmountParam = _ChannelParam = click.ParamType


class AmountType(_AmountParam):
    name = "text"  # shown as TEXT in --help, as before: the units are only known later

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Amount:
        return value if isinstance(value, Amount) else Amount(str(value))


def find_channel(store: VoucherStore, text: str) -> ChannelRecord:
    """The stored channel whose id is ``text`` or starts with it (at least 6 hex digits)."""
    wanted = text.lower().removeprefix("0x")
    if len(wanted) < MIN_PREFIX:
        raise MicropayValueError(f"give at least {MIN_PREFIX} hex digits of the channel id")
    matches = [record for record in store.channels() if record.id.hex().startswith(wanted)]
    if len(matches) != 1:
        raise UnknownChannel(f"no channel starting with {text} in {store.path}" if not matches
                             else f"{text} matches {len(matches)} channels: give more digits")
    return matches[0]


class ChannelType(_ChannelParam):
    name = "channel"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> ChannelRecord:
        if isinstance(value, ChannelRecord):
            return value
        session = ctx.find_object(Session) if ctx is not None else None
        if session is None:
            raise click.UsageError("a channel needs the micropay session", ctx)
        return find_channel(session.store, str(value))


AMOUNT = AmountType()
CHANNEL = ChannelType()


def amount_argument(name: str) -> Callable[[F], F]:
    return click.argument(name, type=AMOUNT)


def channel_argument(fn: F) -> F:
    return click.argument("channel", type=CHANNEL)(fn)


def token_option(help: str) -> Callable[[F], F]:
    return click.option("--token", default=ETH, help=help)


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")(fn)


def min_net_option(fn: F) -> F:
    return click.option("--min-net", type=AMOUNT, default="0",
                        help="skip channels whose unclaimed value is below this plus gas")(fn)
