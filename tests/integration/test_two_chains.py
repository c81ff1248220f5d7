"""One store, two chains: the same escrow address and the same channel id on eth-tester and on
anvil (deployed from one key at one nonce, opened with one salt) are two channels, not one."""

import pytest
from eth_account import Account

from chains import AnvilChain, EthTesterChain
from micropay import Escrow, Payee, Payer


@pytest.fixture
def two_chains(w3, tester, anvil):
    second = AnvilChain(anvil.url)
    snapshot = second.snapshot()
    yield [EthTesterChain(w3, tester), second]
    second.revert(snapshot)


def test_the_same_channel_id_on_two_chains_is_two_channels_in_one_store(two_chains, tmp_path):
    deployer, client, freelancer = (Account.create() for _ in range(3))
    for chain in two_chains:
        for account in (deployer, client, freelancer):
            chain.w3.eth.wait_for_transaction_receipt(chain.w3.eth.send_transaction(
                {"from": chain.w3.eth.accounts[0], "to": account.address, "value": 10**19}))
    escrows = [Escrow.deploy(chain.w3, deployer) for chain in two_chains]
    assert escrows[0].address == escrows[1].address and escrows[0].chain_id != escrows[1].chain_id
    payers = [Payer(escrow, client, tmp_path / "client.db") for escrow in escrows]  # one file for both
    payees = [Payee(escrow, freelancer, tmp_path / "freelancer.db") for escrow in escrows]
    channels = [payer.open_channel(freelancer.address, 10**17, salt=7) for payer in payers]
    assert channels[0].id == channels[1].id
    for n, (payer, payee, channel) in enumerate(zip(payers, payees, channels, strict=True), start=1):
        payee.receive(payer.pay(channel.id, n * 10**16, task=f"work on chain {n}").encode())
    assert [[u.best for u in payee.unclaimed()] for payee in payees] == [[10**16], [2 * 10**16]]
    settlements = [payee.settle() for payee in payees]
    assert [s.gross for s in settlements] == [10**16, 2 * 10**16]
    assert [e.channel(channels[0].key).claimed for e in escrows] == [10**16, 2 * 10**16]
    assert [p.unclaimed()[0].value for p in payees] == [0, 0]
    # The client's ledgers stayed apart too: one task on each chain.
    assert [[e.receipt.task_id for e in payer.ledger(channel.id)] for payer, channel in
            zip(payers, channels, strict=True)] == [["work on chain 1"], ["work on chain 2"]]
