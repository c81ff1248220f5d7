"""An EIP-7702 account (an EOA whose code delegates to a contract) keeps signing vouchers with its
key: the escrow checks a 64-byte signature with ecrecover whatever code the signer has, and the
payee's receive does the same, without asking the delegate (which here would say no)."""

import pytest
from eth_account import Account

from chains import Anvil, AnvilChain
from helpers import transact
from micropay import Escrow, Payee, Payer, TxOptions


@pytest.fixture(scope="module")
def prague():
    node = Anvil(hardfork="prague")  # delegation designators (0xef0100 || address) need Prague
    yield AnvilChain(node.url)
    node.stop()


def test_a_7702_account_pays_with_its_key_whatever_its_delegate_says(prague, helper_contracts, tmp_path):
    w3 = prague.w3
    deployer = w3.eth.accounts[0]
    escrow = Escrow.deploy(w3, deployer, options=TxOptions(poll_interval=0.02))
    client, freelancer = prague.fund(), prague.fund()
    # The delegate is a 1271 wallet whose owner is someone else: asked, it would refuse the client's signature.
    data = helper_contracts["OwnerWallet"]
    factory = w3.eth.contract(abi=data["abi"], bytecode=data["bytecode"])
    delegate = transact(factory.constructor(Account.create().address), deployer).contractAddress
    w3.provider.make_request("anvil_setCode", [client.address, "0xef0100" + delegate[2:].lower()])
    assert bytes(w3.eth.get_code(client.address))[:3] == b"\xef\x01\x00"

    payer = Payer(escrow, client, tmp_path / "client.db")
    payee = Payee(escrow, freelancer, tmp_path / "freelancer.db")
    channel = payer.open_channel(freelancer.address, 10**17)  # a 7702 account still sends transactions
    for n in range(1, 4):
        payee.receive(payer.pay(channel.id, n * 10**16, task=f"task {n}").encode())
    settlement = payee.settle(payee.plan_settlement(min_net=0))
    assert settlement.gross == 6 * 10**16  # 1 + 2 + 3 hundredths: each payment is one task's price
    assert escrow.channel(channel.key).claimed == 6 * 10**16
