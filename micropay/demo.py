"""The whole story on an embedded chain: a client pays a freelancer for five tasks, one settlement.

Runs on eth-tester inside this process, with throwaway accounts and stores: nothing to set up,
nothing left behind.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import EthereumTesterProvider, Web3

from micropay._utils.crypto import keccak
from micropay.chain import Chain
from micropay.channel import ETH
from micropay.escrow import Escrow
from micropay.payee import Payee
from micropay.payer import Payer
from micropay.plan import Plan, PlanTask
from micropay.units import format_amount, format_approx

TASKS = [
    ("logo-1", "logo draft 1", 5 * 10**15),
    ("logo-2", "logo draft 2", 4 * 10**15),
    ("palette", "colour palette", 3 * 10**15),
    ("cards", "business card layout", 6 * 10**15),
    ("final", "final files", 7 * 10**15),
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
    chain_id: int = 0
    escrow: str = ""

    @property
    def paid(self) -> int:
        """Total paid for the tasks, in wei."""
        return sum(price for _, price in self.tasks)

    def fees(self, who: str) -> int:
        """Gas fees (wei) that ``who`` ("client" or "freelancer") paid; 0 for anyone else."""
        return sum(fee for party, _, _, fee in self.steps if party == who)

    def to_json(self) -> dict[str, Any]:
        """Labelled objects; every amount in wei as a decimal string (exact, safe for JavaScript)."""
        def party(name: str, balances: tuple[str, int, int]) -> dict[str, str]:
            address, before, after = balances
            return {"address": address, "before": str(before), "after": str(after), "fees": str(self.fees(name))}

        return {
            "unit": "wei",
            "chain": {"kind": "embedded eth-tester chain", "chainId": self.chain_id, "escrow": self.escrow},
            "tasks": [{"task": task, "price": str(price)} for task, price in self.tasks],
            "steps": [{"who": who, "what": what, "gas": gas, "fee": str(fee)} for who, what, gas, fee in self.steps],
            "client": party("client", self.client),
            "freelancer": party("freelancer", self.freelancer),
            "deposit": str(self.deposit), "paid": str(self.paid), "refund": str(self.refund),
        }


def _eth(value: int) -> str:
    return format_amount(value, 18, "ETH")


def _fee(value: int) -> str:
    return format_approx(value, 18, "ETH")


CHAIN = ("This demo runs an Ethereum chain inside this process (eth-tester): the real escrow contract, real "
         "signatures and real gas, with play money. Nothing leaves this machine.")


def run_demo(echo: Callable[[str], None] = print) -> DemoStatement:
    """Deploy an escrow on a fresh embedded chain, agree a plan of five tasks, open a channel
    under it, pay each task as it is delivered, settle once and close, narrating through
    ``echo``; returns the closing statement.

    Raises MicropayError (or an eth-tester/web3 error) only if the embedded chain misbehaves:
    every step is one that succeeds on a healthy one."""
    w3 = Web3(EthereumTesterProvider())
    chain = Chain.connect(w3)
    funder = chain.accounts()[0]  # the embedded chain's own funded, node-managed account
    accounts: list[LocalAccount] = [Account.create() for _ in range(3)]
    deployer, client, freelancer = accounts
    for account in accounts:
        chain.pipeline.transfer(funder, account.address, 10**18)
    escrow = Escrow.deploy(w3, deployer)
    statement = DemoStatement(deposit=DEPOSIT, chain_id=escrow.chain_id, escrow=escrow.address)
    statement.client = (client.address, escrow.balance(client.address), 0)
    statement.freelancer = (freelancer.address, escrow.balance(freelancer.address), 0)

    def record(who: str, what: str) -> int:
        receipt = escrow.latest_receipt()
        statement.steps.append((who, what, receipt.gas_used, receipt.fee))
        return receipt.fee

    echo(CHAIN)
    echo(f"The escrow contract is deployed at {escrow.address} (chain id {escrow.chain_id}); it holds deposits and "
         "pays out only what a client signed.")
    with tempfile.TemporaryDirectory() as tmp:
        payer = Payer(escrow, client, Path(tmp) / "client.db")
        payee = Payee(escrow, freelancer, Path(tmp) / "freelancer.db")
        plan = Plan("Brand refresh", client.address, freelancer.address, escrow.chain_id, escrow.address, ETH,
                    tuple(PlanTask(i, title, price, int(time.time()) + 86_400 * (n + 1))
                          for n, (i, title, price) in enumerate(TASKS)), freelancer.address, int(time.time()))
        proposal = payee.plans.propose(plan, freelancer)
        echo(f"\nThe freelancer proposes a plan: {len(TASKS)} tasks, {_eth(plan.total)} in all, signed as EIP-712 "
             f"typed data (a wallet can show it). It travels as text or a file:\n  {proposal.encode()[:72]}…")
        accepted = payer.plans.accept(proposal, client)
        payee.plans.take(accepted)
        echo("The client checks the tasks and prices and countersigns: the plan is in force. The freelancer keeps "
             "the countersigned copy.")
        channel = payer.open_for_plan(accepted.hash, deposit=DEPOSIT, expires_in=timedelta(days=7))
        fee = record("client", "open channel")
        echo(f"\nThe client ({client.address}) locks {_eth(DEPOSIT)} in a channel to the freelancer "
             f"({freelancer.address}), with the plan's hash as the channel's terms: one transaction, fee {_fee(fee)}.")
        for n, (task, title, price) in enumerate(TASKS):
            delivery = payee.plans.give(freelancer, accepted.hash, task, "delivered",
                                        deliverable=keccak(f"{title}.pdf".encode()))
            payer.plans.take_feedback(delivery.encode())
            text = payer.pay_task(channel.id, task).encode()
            echo(f"\nThe freelancer delivers {title!r} (a signed note with the file's hash); the client approves it "
                 f"and pays the plan's price, {_eth(price)}, by signing a payment: no transaction, no fee. It sends "
                 f"the freelancer this line:\n  {text}")
            received = payee.receive(text)
            terms = f" ({received.terms.describe()})" if received.terms else ""
            echo(f"The freelancer checks the signature, the channel and the deposit, and stores it: "
                 f"+{_eth(received.added)}, {_eth(received.cumulative)} so far{terms}.")
            statement.tasks.append((title, price))
            if n == 2:
                echo(f"Progress, as both sides see it: {payee.progress(channel.id).summary(_eth)}.")
        settlement = payee.settle()
        fee = record("freelancer", "settle (one claimMany)")
        hashes = ", ".join("0x" + h.hex() for h in settlement.tx_hashes)
        echo(f"\nThe freelancer settles with ONE transaction (a batch claim, claimMany). Each payment carries the "
             f"running total, so the latest one is worth all {len(TASKS)} tasks; with many clients, the same "
             f"transaction would claim from every one of them. Claimed {_eth(settlement.gross)}, fee {_fee(fee)} "
             f"(transaction {hashes}).")
        echo(f"Progress: {payee.progress(channel.id).summary(_eth)}.")
        payee.close(channel.id)
        fee = record("freelancer", "close channel")
        statement.refund = DEPOSIT - statement.paid
        echo(f"\nThe work is done, so the freelancer closes the channel: everything owed is already claimed, the "
             f"unspent {_eth(statement.refund)} of the deposit goes straight back to the client, and the channel "
             f"can never be paid on again. Fee {_fee(fee)}.")
    statement.client = (client.address, statement.client[1], escrow.balance(client.address))
    statement.freelancer = (freelancer.address, statement.freelancer[1], escrow.balance(freelancer.address))
    return statement


def format_statement(statement: DemoStatement) -> str:
    """The closing statement as a text table (fees and balances rounded for reading). Never raises."""
    def rounded(value: int) -> str:
        return _fee(value).lstrip("~")

    lines = ["", "CLOSING STATEMENT", "", f"{'task':<24} {'price':>14}"]
    lines += [f"{task:<24} {_eth(price):>14}" for task, price in statement.tasks]
    lines += [f"{'total paid':<24} {_eth(statement.paid):>14}", "", f"{'on-chain step':<34} {'gas':>8} {'fee':>15}"]
    lines += [f"{who + ': ' + what:<34} {gas:>8,} {rounded(fee):>15}" for who, what, gas, fee in statement.steps]
    for name, (address, before, after) in (("client", statement.client), ("freelancer", statement.freelancer)):
        change = after - before
        sign = "+" if change >= 0 else "-"
        lines.append(f"\n{name} {address}: {rounded(before)} -> {rounded(after)} ({sign}{rounded(abs(change))}, "
                     f"of which gas {rounded(statement.fees(name))})")
    lines.append(f"\ndeposit {_eth(statement.deposit)}: {_eth(statement.paid)} to the freelancer, "
                 f"{_eth(statement.refund)} back to the client")
    lines.append("(fees and balances are rounded to 4 significant digits; `demo --json` has them exactly, in wei)")
    return "\n".join(lines)
