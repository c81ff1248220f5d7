"""A minimal ERC-20 proxy: what a payer needs to fund a channel, and what the CLI shows.

Get one from :meth:`micropay.escrow.Escrow.token`, so it sends through the escrow's options.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from web3 import Web3

from micropay._utils.reverts import ErrorDecoder
from micropay.transactions import Receipt, Sender, TransactionPipeline, TxOptions, as_checksum

ERC20_ABI: list[dict[str, Any]] = [
    {"type": "function", "name": name, "stateMutability": "view", "inputs": inputs,
     "outputs": [{"name": "", "type": out}]}
    for name, inputs, out in [
        ("balanceOf", [{"name": "account", "type": "address"}], "uint256"),
        ("allowance", [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"}], "uint256"),
        ("decimals", [], "uint8"),
        ("symbol", [], "string"),
    ]
] + [
    {"type": "function", "name": "approve", "stateMutability": "nonpayable",
     "inputs": [{"name": "spender", "type": "address"}, {"name": "amount", "type": "uint256"}],
     "outputs": [{"name": "", "type": "bool"}]},
]


class Token:
    """An ERC-20 at ``address`` (already checksummed). Creating it makes no network calls."""

    def __init__(self, w3: Web3, address: str, options: TxOptions | None = None) -> None:
        self.address = address
        self.contract = w3.eth.contract(address=as_checksum(address), abi=ERC20_ABI)
        self.pipeline = TransactionPipeline(w3, ErrorDecoder(ERC20_ABI), options=options)

    def balance_of(self, account: str) -> int:
        """The tokens ``account`` holds, in base units."""
        return int(self.contract.functions.balanceOf(account).call())

    def allowance(self, owner: str, spender: str) -> int:
        """How much of ``owner``'s tokens ``spender`` may move, in base units."""
        return int(self.contract.functions.allowance(owner, spender).call())

    @cached_property
    def decimals(self) -> int:
        """The token's decimals (asked once)."""
        return int(self.contract.functions.decimals().call())

    @cached_property
    def symbol(self) -> str:
        """The token's symbol (asked once)."""
        return str(self.contract.functions.symbol().call())

    def approve(self, sender: Sender, spender: str, amount: int) -> Receipt:
        """Allow ``spender`` to move ``amount``. Raises what the transaction pipeline raises."""
        return self.pipeline.send(sender, self.contract.functions.approve(spender, amount))

    def ensure_allowance(self, sender: Sender, spender: str, amount: int) -> None:
        """Approve exactly ``amount`` unless ``spender`` may already move that much."""
        owner = sender if isinstance(sender, str) else sender.address
        if self.allowance(owner, spender) < amount:
            self.approve(sender, spender, amount)
