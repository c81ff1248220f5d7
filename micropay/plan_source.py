"""The plan a person writes: a TOML file that ``micropay plan propose`` turns into a :class:`Plan`.

::

    title = "Brand refresh"
    client = "0x5B38Da6a701c568545dCfcB03FcB875f56beddC4"   # who pays (the payer)
    token = "ETH"                  # or an ERC-20 address; default ETH
    # escrow = "0x…"               # default: the one the command is told to use
    # inbox = "https://…"          # optional: where the client's payments are delivered (`micropay serve`)

    [[tasks]]
    id = "logo"
    title = "Logo draft"
    price = "0.005 ETH"            # always with its unit
    due = 2026-12-01               # optional: a date (the end of that day, UTC) or a date and time
    criteria = "Three options, SVG"

The file is bounded in size before it is parsed; every mistake is a :class:`InvalidPlan` naming
the field.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass

from micropay._utils.addresses import normalize
from micropay.channel import ETH
from micropay.errors import InvalidPlan, MicropayValueError
from micropay.inbox_client import inbox_url
from micropay.plan import Plan, PlanTask
from micropay.units import parse_amount

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found, no-redef, unused-ignore]

#: The largest plan source read.
MAX_SOURCE_BYTES = 256 * 1024
#: (decimals, symbol) of a token address.
TokenUnits = Callable[[str], tuple[int, str]]

_TOP = {"title", "client", "token", "escrow", "inbox", "tasks"}
_TASK = {"id", "title", "price", "due", "criteria"}
_UNITLESS = re.compile(r"^\s*[0-9]+\s*$")


@dataclass(frozen=True)
class PlanSource:
    """What a plan file says, before it is tied to a chain: prices still as written."""

    title: str
    client: str
    token: str
    escrow: str | None
    inbox: str
    tasks: tuple[dict[str, object], ...]

    def plan(self, *, payee: str, chain_id: int, escrow: str, units: TokenUnits, now: int,
             version: int = 1, amends: bytes = bytes(32), proposer: str | None = None) -> Plan:
        """The plan, proposed by ``proposer`` (default the payee) at ``now``. Raises
        :class:`InvalidPlan` for a bad price or date, or a field the plan refuses."""
        if self.escrow is not None and self.escrow.lower() != escrow.lower():
            raise InvalidPlan(f"the file names escrow {self.escrow}, but this command uses {escrow}")
        decimals, symbol = units(self.token)
        tasks = []
        for index, item in enumerate(self.tasks, 1):
            where = f"task {index} ({item.get('id', '?')!s:.40})"
            price = item.get("price")
            if not isinstance(price, str):
                raise InvalidPlan(f"{where}: price must be text with its unit, such as \"0.01 {symbol}\"")
            if _UNITLESS.match(price):  # a whole number alone: which unit? (parse_amount's hint is --wei)
                number = price.strip()[:40]
                raise InvalidPlan(f"{where}: the price {number!r} has no unit: write \"{number} {symbol}\", or "
                                  f"\"{number} wei\" for base units")
            try:
                value = parse_amount(price, decimals, symbol)
            except MicropayValueError as exc:
                raise InvalidPlan(f"{where}: {exc}") from None
            tasks.append(PlanTask(_text(item, "id", where), _text(item, "title", where), value,
                                  _due(item.get("due"), where), _text(item, "criteria", where, "")))
        return Plan(self.title, self.client, payee, chain_id, escrow, self.token, tuple(tasks),
                    proposer or payee, now, version, amends, self.inbox)


def read_source(data: str | bytes) -> PlanSource:
    """Parse a plan file. Raises :class:`InvalidPlan` for a file too large, not TOML, with an
    unknown or missing field, or a field of the wrong type."""
    if isinstance(data, str):  # the limit is in bytes, as the file holds them
        if len(data) > MAX_SOURCE_BYTES:
            raise InvalidPlan(f"the plan file is {len(data):,} characters, above the limit of {MAX_SOURCE_BYTES:,} "
                              "bytes")
        try:
            data = data.encode()
        except UnicodeEncodeError:
            raise InvalidPlan("the plan file is not valid Unicode text") from None
    if len(data) > MAX_SOURCE_BYTES:
        raise InvalidPlan(f"the plan file is {len(data):,} bytes, above the limit of {MAX_SOURCE_BYTES:,}")
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise InvalidPlan("the plan file is not UTF-8 text") from None
    try:
        doc = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise InvalidPlan(f"the plan file is not valid TOML: {exc}") from None
    unknown = set(doc) - _TOP
    if unknown:
        raise InvalidPlan(f"unknown field(s) in the plan file: {', '.join(sorted(unknown))} "
                          f"(known: {', '.join(sorted(_TOP))})")
    tasks = doc.get("tasks")
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, dict) for t in tasks):
        raise InvalidPlan("the plan file lists no tasks: add [[tasks]] tables with id, title and price")
    for index, task in enumerate(tasks, 1):
        extra = set(task) - _TASK
        if extra:
            raise InvalidPlan(f"task {index}: unknown field(s) {', '.join(sorted(extra))} (known: "
                              f"{', '.join(sorted(_TASK))})")
    client = doc.get("client")
    if not isinstance(client, str):
        raise InvalidPlan("the plan file must name the client: client = \"0x…\" (the address that pays)")
    token = doc.get("token", "ETH")
    escrow = doc.get("escrow")
    inbox = doc.get("inbox", "")
    if not isinstance(token, str) or not isinstance(inbox, str) or not (escrow is None or isinstance(escrow, str)):
        raise InvalidPlan("token, escrow and inbox must be text")
    title = doc.get("title")
    if not isinstance(title, str):
        raise InvalidPlan("the plan file must have a title = \"…\"")
    if inbox:
        try:
            inbox = inbox_url(inbox)
        except MicropayValueError as exc:
            raise InvalidPlan(f"inbox: {exc}") from None
    # Addresses checksummed here, so a lowercase client is the same client `plan amend` compares.
    client = _address(client, "client must be an address (the one that pays)")
    token = ETH if token.upper() == "ETH" else _address(token, "token must be ETH or an address (an ERC-20 token)")
    return PlanSource(title, client, token, escrow, inbox, tuple(tasks))


def _address(value: str, what: str) -> str:
    normalized = normalize(value)
    if normalized is None:
        raise InvalidPlan(f"{what}, with a correct checksum if it has upper-case letters; got {value!r:.60}")
    return normalized[0]


def _text(item: dict[str, object], name: str, where: str, default: str | None = None) -> str:
    value = item.get(name, default)
    if not isinstance(value, str):
        raise InvalidPlan(f"{where}: {name} must be text")
    return value


def _due(value: object, where: str) -> int:
    """A due date as a unix time: a date is the end of that day in UTC; a date and time without a
    zone is UTC."""
    if value is None:
        return 0
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        return int(moment.timestamp())
    if isinstance(value, dt.date):
        end = dt.datetime.combine(value, dt.time(23, 59, 59), tzinfo=dt.timezone.utc)
        return int(end.timestamp())
    raise InvalidPlan(f"{where}: due must be a date (2026-12-01) or a date and time (2026-12-01T17:00:00Z)")
