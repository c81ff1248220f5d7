"""Amounts as people type and read them: "0.05 ETH", "12.5 USDC", or exact base units."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from micropay.errors import MicropayValueError

_AMOUNT = re.compile(r"^\s*(?P<number>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[A-Za-z][A-Za-z0-9.]*)?\s*$")


def parse_amount(text: str, decimals: int, symbol: str) -> int:
    """Base units from "<number> <symbol>" (e.g. "0.05 ETH") or a bare integer of base units.

    A number with a symbol must not have more decimal places than the token has: the amount must
    be exact. The symbol must be the channel token's ("wei" and "units" name base units).

    Raises MicropayValueError (a ValueError) if the text is not such an amount, names another
    token, has decimals without a symbol, or has more decimal places than the token.
    """
    match = _AMOUNT.match(text or "")
    if not match:
        raise MicropayValueError(f"cannot read the amount {text!r}: write e.g. '0.05 {symbol}' or base units")
    number, unit = match["number"], match["unit"]
    if unit is None or unit.lower() in ("wei", "units"):
        if "." in number:
            raise MicropayValueError(f"{text!r}: base units are whole numbers; add the symbol ({symbol}) for decimals")
        return int(number)
    if unit.upper() != symbol.upper():
        raise MicropayValueError(f"{text!r} is in {unit}, but this channel pays in {symbol}")
    try:
        value = Decimal(number) * (Decimal(10) ** decimals)
    except InvalidOperation as exc:
        raise MicropayValueError(f"cannot read the amount {text!r}") from exc
    if value != value.to_integral_value():
        raise MicropayValueError(f"{text!r} has more decimals than {symbol} has ({decimals})")
    return int(value)


def format_amount(value: int, decimals: int, symbol: str) -> str:
    """"0.05 ETH": exact, without trailing zeros. Never raises for ``decimals`` >= 0.

    ``value`` must not be negative (floor division would misrender it): format ``abs(value)``
    and add the sign, as the demo statement does."""
    whole, fraction = divmod(value, 10**decimals)
    digits = f"{fraction:0{decimals}d}".rstrip("0") if decimals else ""
    return f"{whole}{'.' + digits if digits else ''} {symbol}"
