"""Amounts as people type and read them: "0.05 ETH", "12.5 USDC", "20 gwei", or exact base units."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from micropay.errors import MicropayValueError

_AMOUNT = re.compile(r"^\s*(?P<number>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[A-Za-z][A-Za-z0-9.]*)?\s*$")
#: Names of base units, in any token.
BASE_UNITS = ("wei", "units")
#: Other names of ETH's units, by their decimals (for ETH channels only).
ETH_UNITS = {"ether": 18, "gwei": 9}
#: The longest amount text read: a uint256 has 78 digits, plus a decimal point and a symbol.
MAX_TEXT = 200


def parse_amount(text: str, decimals: int, symbol: str, *, bare: bool = False) -> int:
    """Base units from "<number> <unit>": "0.05 ETH", "12.5 USDC", "20 gwei" and "0.1 ether" (ETH
    only), "5 wei" or "5 units" (base units of any token).

    A bare integer ("50000") is base units only with ``bare=True`` (a bare ``1`` meaning 1 wei is
    a trap); a bare ``0`` is zero in any unit. A number with a unit must be exact: no more decimal
    places than the unit has.

    Raises MicropayValueError (a ValueError) if the text is not such an amount, is a bare integer
    without ``bare``, names another token, has decimals without a unit, or more than the unit has.
    """
    match = _AMOUNT.match(text or "") if len(text or "") <= MAX_TEXT else None
    if not match:
        raise MicropayValueError(f"cannot read the amount {text!r:.60}: write e.g. '0.05 {symbol}'")
    number, unit = match["number"], match["unit"]
    if unit is None:
        if "." in number:
            raise MicropayValueError(f"{text!r}: add the unit, e.g. '{number} {symbol}'")
        if not bare and int(number) != 0:
            raise MicropayValueError(f"{text!r} has no unit: write '{number} {symbol}', or pass --wei to mean "
                                     f"{number} base units (wei)")
        return int(number)
    places = _decimals_of(unit, decimals, symbol)
    if places == 0 and "." in number:
        raise MicropayValueError(f"{text!r}: base units are whole numbers")
    try:
        value = Decimal(number) * (Decimal(10) ** places)
    except InvalidOperation as exc:
        raise MicropayValueError(f"cannot read the amount {text!r}") from exc
    if value != value.to_integral_value():
        raise MicropayValueError(f"{text!r} has more decimals than {unit} has ({places})")
    return int(value)


def _decimals_of(unit: str, decimals: int, symbol: str) -> int:
    lowered = unit.lower()
    if lowered in BASE_UNITS:
        return 0
    if lowered == symbol.lower():
        return decimals
    if lowered in ETH_UNITS:
        if symbol.upper() != "ETH":
            raise MicropayValueError(f"{unit} is a unit of ETH, but this channel pays in {symbol}")
        return ETH_UNITS[lowered]
    raise MicropayValueError(f"the amount is in {unit}, but this channel pays in {symbol}")


def format_amount(value: int, decimals: int, symbol: str) -> str:
    """"0.05 ETH": exact, without trailing zeros. Never raises for ``decimals`` >= 0.

    ``value`` must not be negative (floor division would misrender it): format ``abs(value)``
    and add the sign, as the demo statement does."""
    whole, fraction = divmod(value, 10**decimals)
    digits = f"{fraction:0{decimals}d}".rstrip("0") if decimals else ""
    return f"{whole}{'.' + digits if digits else ''} {symbol}"


def format_approx(value: int, decimals: int, symbol: str, significant: int = 4) -> str:
    """An amount rounded for reading, for fees and balances: "0.0001235 ETH" rather than
    "0.000123456789012345 ETH". Whole units are never rounded away ("12.35 ETH", "1234 ETH");
    an amount that loses nothing is shown exactly. Never raises for ``value`` >= 0."""
    exact = Decimal(value).scaleb(-decimals)
    if value == 0:
        return f"0 {symbol}"
    keep = max(significant - exact.adjusted() - 1, 0)  # decimal places giving `significant` digits
    rounded = exact.quantize(Decimal(1).scaleb(-keep), rounding=ROUND_HALF_UP)
    text = f"{rounded:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{'~' if rounded != exact else ''}{text} {symbol}"
