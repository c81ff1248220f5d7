"""Units and shapes shared across micropay."""

from __future__ import annotations

from typing import NewType, TypedDict

#: An amount in the channel token's smallest unit (wei for ETH).
BaseUnits = NewType("BaseUnits", int)
#: keccak256(abi.encode(payer, payee, token, salt)): a channel's id on its escrow.
ChannelId = NewType("ChannelId", bytes)
#: The 32-byte commitment to every task receipt of a channel so far.
LedgerRoot = NewType("LedgerRoot", bytes)

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
