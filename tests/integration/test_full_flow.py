"""The whole flow on eth-tester and on anvil over JSON-RPC, with the same assertions on both."""

import threading
from datetime import timedelta

import pytest

from micropay import Escrow, Payee, Payer
from micropay._utils import tx
from micropay._utils.reverts import ErrorDecoder
from micropay.errors import NothingToClaim
from micropay.store import SettlementRecord


def parties(node, escrow, tmp_path, confirmations=0):
    proxy = Escrow(node.w3, escrow.address, from_block=escrow.from_block,
                   options=tx.TxOptions(confirmations=confirmations, poll_interval=0.02))
    client, freelancer = node.fund(), node.fund()
    return Payer(proxy, client, tmp_path / "client.db"), Payee(proxy, freelancer, tmp_path / "freelancer.db")


def mint(node, token, deployer, to, amount):
    tx.send(node.w3, deployer, token.functions.mint(to, amount), decoder=ErrorDecoder(token.abi),
            map_revert=lambda r: r)


def test_eth_and_erc20_channels_pay_receive_settle(node, deployed, tmp_path):
    escrow, token, deployer = deployed
    payer, payee = parties(node, escrow, tmp_path)
    mint(node, token, deployer, payer.address, 10**9)
    eth = payer.open_channel(payee.address, 10**17, expires_in=timedelta(days=3))
    usd = payer.open_channel(payee.address, 50_000_000, token=token.address)
    for n in range(3):
        payee.receive(payer.pay(eth.id, 10**16, task=f"eth task {n}").encode())
        payee.receive(payer.pay(usd.id, 5_000_000, task=f"usd task {n}").encode())
    w3 = node.w3
    before = w3.eth.get_balance(payee.address)
    settlement = payee.settle()
    assert settlement.gross == 3 * 10**16
    assert w3.eth.get_balance(payee.address) - before == 3 * 10**16 - settlement.fee
    usd_settlement = payee.settle(token=token.address)
    assert usd_settlement.gross == 15_000_000 == token.functions.balanceOf(payee.address).call()
    assert payer.escrow.channel(eth.id).claimed == 3 * 10**16


def test_watcher_claims_after_request_close(node, deployed, tmp_path):
    escrow, _, _ = deployed
    payer, payee = parties(node, escrow, tmp_path)
    channel = payer.open_channel(payee.address, 10**17, window=timedelta(hours=2))
    payee.receive(payer.pay(channel.id, 4 * 10**16, task="unclaimed work"))
    record = payer.request_close(channel.id)
    assert payee.watch_once(confirmations=2) == []  # not yet two blocks deep
    node.mine(2)
    (settlement,) = payee.watch_once(confirmations=2)
    assert settlement.gross == 4 * 10**16
    mined = node.w3.eth.get_block(node.w3.eth.get_transaction_receipt(settlement.tx_hash)["blockNumber"])
    assert mined["timestamp"] <= record.expiry


def test_reclaim_after_expiry(node, deployed, tmp_path):
    escrow, _, _ = deployed
    payer, payee = parties(node, escrow, tmp_path)
    channel = payer.open_channel(payee.address, 10**17, expires_in=timedelta(days=1))
    payee.receive(payer.pay(channel.id, 10**16, task="done"))
    payee.settle()
    node.travel(2 * 86_400)
    assert payer.reclaim(channel.id) == 9 * 10**16
    assert payer.channel(channel.id).closed


def test_cooperative_close(node, deployed, tmp_path):
    escrow, _, _ = deployed
    payer, payee = parties(node, escrow, tmp_path)
    channel = payer.open_channel(payee.address, 10**17)
    payee.receive(payer.pay(channel.id, 3 * 10**16, task="all of it"))
    before = node.w3.eth.get_balance(payer.address)
    payee.close(channel.id)
    assert node.w3.eth.get_balance(payer.address) - before == 7 * 10**16
    assert payer.escrow.channel(channel.id).closed


# Only a real node mines in the background and can be reorged (evm_snapshot / evm_revert).
@pytest.mark.parametrize("node", ["anvil"], indirect=True)
def test_receipts_wait_for_confirmations(node, deployed, tmp_path):
    escrow, _, _ = deployed
    payer, payee = parties(node, escrow, tmp_path, confirmations=2)
    miner = threading.Timer(0.3, lambda: node.mine(2))
    miner.start()
    channel = payer.open_channel(payee.address, 10**16)  # returns only once two blocks deep
    miner.join()
    receipt_block = node.w3.eth.block_number
    assert receipt_block >= 2 and payer.escrow.channel(channel.id).deposit == 10**16


# Only a real node mines in the background and can be reorged (evm_snapshot / evm_revert).
@pytest.mark.parametrize("node", ["anvil"], indirect=True)
def test_a_reorged_close_request_is_not_acted_on_and_nothing_is_claimed_twice(node, deployed, tmp_path):
    escrow, _, _ = deployed
    payer, payee = parties(node, escrow, tmp_path)
    channel = payer.open_channel(payee.address, 10**17)
    payee.receive(payer.pay(channel.id, 2 * 10**16, task="work"))
    fork = node.snapshot()
    payer.request_close(channel.id)
    assert payee.watch_once(confirmations=3) == []  # shallower than 3 blocks: not acted on
    node.revert(fork)  # the request is reorged away
    node.mine(5)
    assert payee.watch_once(confirmations=3) == []  # nothing happened on the surviving chain
    payer.request_close(channel.id)  # requested again, for real this time
    node.mine(3)
    (settlement,) = payee.watch_once(confirmations=3)
    assert settlement.gross == 2 * 10**16
    node.mine(3)
    assert payee.watch_once(confirmations=3) == []
    assert payer.escrow.channel(channel.id).claimed == 2 * 10**16


# Only a real node mines in the background and can be reorged (evm_snapshot / evm_revert).
@pytest.mark.parametrize("node", ["anvil"], indirect=True)
def test_settlement_lost_to_a_reorg_is_rebroadcast_and_counted_once(node, deployed, tmp_path):
    escrow, _, _ = deployed
    payer, payee = parties(node, escrow, tmp_path)
    channel = payer.open_channel(payee.address, 10**17)
    payee.receive(payer.pay(channel.id, 3 * 10**16, task="work"))
    fork = node.snapshot()
    # What settle does up to a crash: sign, record as pending, broadcast — then the process dies.
    chosen = [u for u in payee.unclaimed() if u.value > 0]
    fn = payee.escrow.claim_many_call(payee.address, chosen[0].token, payee._batch(chosen))
    raw, tx_hash = tx.sign(node.w3, payee.account, fn, value=0, gas=200_000)
    payee.store.add_settlement(SettlementRecord(tx_hash, raw, payee.escrow.address, chosen[0].token, "pending",
                                                [(channel.id, 3 * 10**16)], 3 * 10**16, None, None, None))
    tx.broadcast(node.w3, raw, tx_hash)
    node.revert(fork)  # the block with the settlement is reorged away, mempool and all
    assert payer.escrow.channel(channel.id).claimed == 0
    before = node.w3.eth.get_balance(payee.address)
    (settlement,) = payee.resolve_pending()  # after the restart: rebroadcast, then confirmed
    assert settlement.tx_hash == tx_hash and settlement.gross == 3 * 10**16
    assert node.w3.eth.get_balance(payee.address) - before == 3 * 10**16 - settlement.fee
    assert [s.status for s in payee.store.settlements()] == ["confirmed"]
    with pytest.raises(NothingToClaim):  # counted once: the channel is fully claimed
        payee.settle()
