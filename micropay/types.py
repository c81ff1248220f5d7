"""Limits and shapes shared across micropay."""

from __future__ import annotations

from typing import TypedDict

#: Largest deposit, claim or cumulative amount the escrow stores (uint96).
MAX_AMOUNT = 2**96 - 1


class VoucherJSON(TypedDict):
    """A voucher as JSON for HTTP APIs: hex strings, the amount as a decimal string (JS-safe)."""

    chainId: int
    escrow: str
    channelId: str
    cumulativeAmount: str
    ledgerRoot: str
    signature: str
