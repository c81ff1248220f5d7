"""A minimal ERC-20 proxy: what a payer needs to fund a channel, and what the CLI shows."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from web3 import Web3

from micropay._utils import tx
from micropay._utils.reverts import ErrorDecoder
from micropay._utils.tx import Sender
from micropay.errors import ContractRevert, MicropayError

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


def _as_error(revert: ContractRevert) -> MicropayError:
    return revert


class Token:
    """An ERC-20 at ``address``. Creating it makes no network calls."""

    def __init__(self, w3: Web3, address: str) -> None:
        self.w3 = w3
        self.address = Web3.to_checksum_address(address)
        self.contract = w3.eth.contract(address=self.address, abi=ERC20_ABI)

    def balance_of(self, account: str) -> int:
        return self.contract.functions.balanceOf(account).call()

    def allowance(self, owner: str, spender: str) -> int:
        return self.contract.functions.allowance(owner, spender).call()

    @cached_property
    def decimals(self) -> int:
        return self.contract.functions.decimals().call()

    @cached_property
    def symbol(self) -> str:
        return self.contract.functions.symbol().call()

    def approve(self, sender: Sender, spender: str, amount: int, options: tx.TxOptions | None = None) -> Any:
        return tx.send(self.w3, sender, self.contract.functions.approve(spender, amount),
                       decoder=ErrorDecoder(ERC20_ABI), map_revert=_as_error, options=options or tx.TxOptions())
