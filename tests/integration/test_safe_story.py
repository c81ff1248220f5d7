"""The company-wallet story end to end, on anvil with a real Safe 1.4.1 (the issue's "done when").

A company keeps its USDC in a 2-of-3 Safe. Its operator runs ``micropay open --from-safe`` with a
hot key as signer: nothing is sent, a Transaction Builder batch file is written. The Safe's owners
execute that file exactly as the Safe app does (approve + openToken in one MultiSendCallOnly
DELEGATECALL). ``micropay sync`` sees the channel; the hot key pays task after task
(``micropay pay``); the freelancer receives them. The freelancer holds no ETH at all: it signs a
relay request, and a relayer submits the claim and takes its fee from the payout.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from click.testing import CliRunner
from eth_account import Account
from web3 import Web3

from chains import AnvilChain
from micropay import keystore
from micropay._utils.crypto import recover_address
from micropay._utils.reverts import ErrorDecoder
from micropay.cli import main
from micropay.escrow import Escrow
from micropay.payment import parse_payment
from micropay.safe_batch import tx_builder_checksum
from micropay.transactions import TransactionPipeline
from safe import deploy_safe_stack

PASSWORD = "safe story"
HOT_PASSWORD = "the hot key's own password"
USDC = 10**6  # the test token has 6 decimals, like USDC
TASKS = [("wireframes", "12.5"), ("landing page", "30"), ("logo", "20"), ("copy edits", "7.25"), ("launch", "15")]


class User:
    """One person at a terminal: a data directory with one key file, running the command in-process
    against the anvil node."""

    def __init__(self, w3: Web3, url: str, home, *, fund: int) -> None:
        self.account = Account.create()
        keystore.save_account(self.account, home / "keystores", PASSWORD, iterations=2**4)
        if fund:
            w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(
                {"from": w3.eth.accounts[0], "to": self.account.address, "value": fund}))
        self.address, self.home, self.url = self.account.address, home, url

    def run(self, *args, input=None, env=None, ok=True):
        # anvil mines one block per transaction: no later block would ever confirm one
        result = CliRunner().invoke(main, ["--rpc", self.url, "--home", str(self.home), "--confirmations", "0",
                                           *args], input=input, env={"MICROPAY_PASSWORD": PASSWORD, **(env or {})})
        if ok:
            assert result.exit_code == 0, result.output + repr(result.exception)
        return result

    def json(self, *args, **kwargs):
        return json.loads(self.run(*args, "--json", **kwargs).stdout)


@pytest.fixture
def anvil_chain(anvil):
    chain = AnvilChain(anvil.url)
    snapshot = chain.snapshot()
    yield chain
    chain.revert(snapshot)


def test_a_safe_funds_a_hot_key_pays_and_a_freelancer_without_eth_is_paid(anvil_chain, helper_contracts, tmp_path):
    w3, url = anvil_chain.w3, anvil_chain.url
    funder = w3.eth.accounts[0]
    # The company: a 2-of-3 Safe holding 1,000 USDC, and its operator, whose key only pays gas to deploy.
    owners = [Account.create() for _ in range(3)]
    safe = deploy_safe_stack(w3, funder).create_safe(owners, threshold=2)
    data = helper_contracts["TestToken"]
    deployed = TransactionPipeline(w3, ErrorDecoder(data["abi"])).send(
        funder, w3.eth.contract(abi=data["abi"], bytecode=data["bytecode"]).constructor())
    token = w3.eth.contract(address=deployed.contract_address, abi=data["abi"])
    w3.eth.wait_for_transaction_receipt(token.functions.mint(safe.address, 1_000 * USDC).transact({"from": funder}))
    operator = User(w3, url, tmp_path / "operator", fund=10**18)
    hot = Account.create()
    hot_file = keystore.save_account(hot, tmp_path / "hot-key", HOT_PASSWORD, iterations=2**4)
    freelancer = User(w3, url, tmp_path / "freelancer", fund=0)  # not a wei of ETH, ever
    relayer = User(w3, url, tmp_path / "relayer", fund=10**18)  # anyone with ETH
    escrow_address = operator.run("deploy").stdout.strip()

    # 1. The operator writes the batch that opens a 300 USDC channel from the Safe, signed by the hot key.
    batch_path = tmp_path / "open-channel.json"
    hot_env = {"MICROPAY_SIGNER_PASSWORD": HOT_PASSWORD}
    opened = operator.json("open", freelancer.address, "300 TUSD", "--token", token.address, "--from-safe",
                           safe.address, "--signer", str(hot_file), "--out", str(batch_path), env=hot_env)
    channel = opened["channel"]
    batch = json.loads(batch_path.read_text())
    assert batch["chainId"] == str(w3.eth.chain_id) and batch["meta"]["checksum"] == tx_builder_checksum(batch)
    assert [tx["contractMethod"]["name"] for tx in batch["transactions"]] == ["approve", "openToken"]

    # 2. The owners execute it as the Safe app does: two calls are one MultiSendCallOnly batch.
    calls = [(tx["to"], int(tx["value"]), bytes.fromhex(tx["data"][2:])) for tx in batch["transactions"]]
    nonce = safe.nonce()
    safe.exec_batch(calls, owners[:2], funder)
    assert safe.nonce() == nonce + 1  # one Safe transaction, two owners' signatures

    # 3. sync sees it; the hot key pays each task, and the funding keys are never asked for.
    assert "now seen on chain, deposit 300 TUSD" in operator.run("sync").stdout
    only_hot = {**hot_env, "MICROPAY_PASSWORD": "not a password of any key used here"}
    texts = [operator.run("pay", channel, f"{price} TUSD", task, env=only_hot).stdout.strip() for task, price in TASKS]
    total = sum(int(Decimal(price) * USDC) for _, price in TASKS)
    assert total == 84_750_000
    for text in texts:
        voucher = parse_payment(text).voucher
        signer = "0x" + recover_address(voucher.digest(), voucher.signature).hex()
        assert signer.lower() == hot.address.lower()
        assert signer.lower() not in {owner.lower() for owner in safe.owners()}
    received = freelancer.run("receive", input="\n".join(texts) + "\n").stdout
    assert f"from {safe.address}" in received and "84.75 TUSD so far" in received.splitlines()[-1]

    # 4. Without ETH, the freelancer signs a relay request; the relayer submits it for a fee.
    assert (w3.eth.get_balance(freelancer.address), token.functions.balanceOf(freelancer.address).call()) == (0, 0)
    broke = freelancer.run("settle", "--token", token.address, ok=False)
    assert broke.exit_code == 1 and "holds 0 ETH" in broke.output and "--via-relay" in broke.output  # needs gas
    request_text = freelancer.run("settle", "--via-relay", "--max-fee", "0.5 TUSD", "--token", token.address
                                  ).stdout.strip()
    assert request_text.startswith("mpr1") and len(request_text.splitlines()) == 1
    fee = USDC // 2
    relayed = relayer.json("relay", request_text)
    assert (relayed["payee"], relayed["total"], relayed["fee"]) == (freelancer.address, str(total), str(fee))
    escrow = Escrow(w3, escrow_address)
    assert w3.eth.get_balance(freelancer.address) == 0
    assert token.functions.balanceOf(freelancer.address).call() == total - fee
    assert token.functions.balanceOf(relayer.address).call() == fee
    state = escrow.channel(bytes.fromhex(channel[2:]))
    assert (state.key.payer, state.key.signer, state.deposit, state.claimed) == (safe.address, hot.address,
                                                                                 300 * USDC, total)
    assert token.functions.balanceOf(safe.address).call() == 700 * USDC
    assert token.functions.balanceOf(escrow.address).call() == 300 * USDC - total
    (row,) = operator.json("status")
    assert (row["role"], row["paid"], row["claimed"], row["left"]) == (
        "payer", str(total), str(total), str(300 * USDC - total))
