"""The whole story on an embedded chain: a client pays a freelancer for five tasks, one settlement.

Runs on eth-tester inside this process, with throwaway accounts and stores: nothing to set up,
nothing left behind.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import EthereumTesterProvider, Web3

from micropay._utils.reverts import ErrorDecoder
from micropay.escrow import Escrow
from micropay.payee import Payee
from micropay.payer import Payer
from micropay.transactions import TransactionPipeline
from micropay.units import format_amount

TASKS = [
    ("logo draft 1", 5 * 10**15),
    ("logo draft 2", 4 * 10**15),
    ("colour palette", 3 * 10**15),
    ("business card layout", 6 * 10**15),
    ("final files", 7 * 10**15),
]
DEPOSIT = 5 * 10**16  # 0.05 ETH


@dataclass
class DemoStatement:
    """What the demo did and what it cost each side: tasks, on-chain steps, balances."""

    tasks: list[tuple[str, int]] = field(default_factory=list)
    steps: list[tuple[str, str, int, int]] = field(default_factory=list)  # who, what, gas used, fee (wei)
    client: tuple[str, int, int] = ("", 0, 0)  # address, balance before, after
    freelancer: tuple[str, int, int] = ("", 0, 0)
    deposit: int = 0
    refund: int = 0

    @property
    def paid(self) -> int:
        """Total paid for the tasks, in wei."""
        return sum(price for _, price in self.tasks)

    def fees(self, who: str) -> int:
        """Gas fees (wei) that ``who`` ("client" or "freelancer") paid; 0 for anyone else."""
        return sum(fee for party, _, _, fee in self.steps if party == who)


def _eth(value: int) -> str:
    return format_amount(value, 18, "ETH")


def run_demo(echo: Callable[[str], None] = print) -> DemoStatement:
    """Deploy an escrow on a fresh embedded chain, open a channel, pay for five tasks, settle
    once and close, narrating through ``echo``; returns the closing statement.

    Raises MicropayError (or an eth-tester/web3 error) only if the embedded chain misbehaves:
    every step is one that succeeds on a healthy one."""
    w3 = Web3(EthereumTesterProvider())
    funder = w3.eth.accounts[0]  # the embedded chain's own funded, node-managed account
    accounts: list[LocalAccount] = [Account.create() for _ in range(3)]
    deployer, client, freelancer = accounts
    pipeline = TransactionPipeline(w3, ErrorDecoder([]))
    for account in accounts:
        pipeline.transfer(funder, account.address, 10**18)
    escrow = Escrow.deploy(w3, deployer)
    statement = DemoStatement(deposit=DEPOSIT)
    statement.client = (client.address, escrow.balance(client.address), 0)
    statement.freelancer = (freelancer.address, escrow.balance(freelancer.address), 0)

    def record(who: str, what: str) -> None:
        receipt = escrow.latest_receipt()
        statement.steps.append((who, what, receipt.gas_used, receipt.fee))

    echo(f"escrow deployed at {escrow.address} on the embedded chain (id {escrow.chain_id})")
    with tempfile.TemporaryDirectory() as tmp:
        payer = Payer(escrow, client, Path(tmp) / "client.db")
        payee = Payee(escrow, freelancer, Path(tmp) / "freelancer.db")
        channel = payer.open_channel(freelancer.address, DEPOSIT, expires_in=timedelta(days=7))
        record("client", "open channel")
        echo(f"client {client.address} locked {_eth(DEPOSIT)} in a channel to freelancer {freelancer.address}")
        for task, price in TASKS:
            payment = payer.pay(channel.id, price, task=task)
            text = payment.encode()
            echo(f"\nclient pays {_eth(price)} for {task!r} and sends:\n  {text}")
            received = payee.receive(text)
            echo(f"freelancer checked and stored it: +{_eth(received.added)}, {_eth(received.cumulative)} so far")
            statement.tasks.append((task, price))
        settlement = payee.settle()
        record("freelancer", "settle (one claimMany)")
        echo(f"\nfreelancer settles once: {_eth(settlement.gross)} in transaction 0x{settlement.tx_hash.hex()}")
        payee.close(channel.id)
        record("freelancer", "close channel")
        statement.refund = DEPOSIT - statement.paid
    statement.client = (client.address, statement.client[1], escrow.balance(client.address))
    statement.freelancer = (freelancer.address, statement.freelancer[1], escrow.balance(freelancer.address))
    return statement


def format_statement(statement: DemoStatement) -> str:
    """The closing statement as a text table. Never raises."""
    lines = ["", "CLOSING STATEMENT", "", f"{'task':<24} {'price':>14}"]
    lines += [f"{task:<24} {_eth(price):>14}" for task, price in statement.tasks]
    lines += [f"{'total paid':<24} {_eth(statement.paid):>14}", "", f"{'on-chain step':<34} {'gas':>8} {'fee':>22}"]
    lines += [f"{who + ': ' + what:<34} {gas:>8,} {_eth(fee):>22}" for who, what, gas, fee in statement.steps]
    for name, (address, before, after) in (("client", statement.client), ("freelancer", statement.freelancer)):
        change = after - before
        sign = "+" if change >= 0 else "-"
        lines.append(f"\n{name} {address}: {_eth(before)} -> {_eth(after)} ({sign}{_eth(abs(change))}; "
                     f"gas {_eth(statement.fees(name))})")
    lines.append(f"deposit {_eth(statement.deposit)}: {_eth(statement.paid)} to the freelancer, "
                 f"{_eth(statement.refund)} back to the client")
    return "\n".join(lines)
