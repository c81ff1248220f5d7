"""The whole flow on eth-tester and on anvil over JSON-RPC, with the same assertions on both."""

import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as StillWaiting
from datetime import timedelta

import pytest
from web3.exceptions import TransactionNotFound

from micropay import Escrow, NothingToClaim, Payee, Payer, TxOptions
from micropay._utils.reverts import ErrorDecoder
from micropay.transactions import TransactionPipeline


def parties(node, escrow, tmp_path, confirmations=0):
    proxy = Escrow(node.w3, escrow.address, from_block=escrow.from_block,
                   options=TxOptions(confirmations=confirmations, poll_interval=0.02))
    client, freelancer = node.fund(), node.fund()
    return Payer(proxy, client, tmp_path / "client.db"), Payee(proxy, freelancer, tmp_path / "freelancer.db")


def mint(node, token, deployer, to, amount):
    TransactionPipeline(node.w3, ErrorDecoder(token.abi)).send(deployer, token.functions.mint(to, amount))


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
    channel = payer.open_channel(payee.address, 10**17, window=timedelta(days=1))
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


def wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# Only a real node serves a second thread while a call waits (eth-tester's py-evm is not thread-safe).
@pytest.mark.parametrize("node", ["anvil"], indirect=True)
@pytest.mark.parametrize("confirmations", [0, 1, 3], ids=lambda k: f"{k}-confirmations")
def test_a_receipt_is_returned_once_it_is_confirmations_blocks_deep(node, deployed, confirmations):
    escrow, _, _ = deployed
    w3 = node.w3
    proxy = Escrow(w3, escrow.address, from_block=escrow.from_block,
                   options=TxOptions(confirmations=confirmations, poll_interval=0.02, timeout=30))
    payer = node.fund()
    start = w3.eth.block_number

    def open_channel():
        key, receipt = proxy.open(payer, w3.eth.accounts[2], 10**16, expiry=proxy.now() + 86_400)
        return key, receipt, w3.eth.block_number  # the head as the call returns

    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(open_channel)
        # anvil mines the transaction itself (automine), in block start + 1; no block is mined on top
        # of it but the ones mined here, one at a time, each only after the call was seen still waiting.
        wait_until(lambda: call.done() or w3.eth.block_number > start)
        for _depth in range(confirmations):
            with pytest.raises(StillWaiting):  # only `depth` blocks on top of the receipt: not returned yet
                call.result(timeout=0.3)
            node.mine()
        key, receipt, head = call.result(timeout=10)
    assert receipt.block_number == start + 1
    assert head - receipt.block_number == confirmations  # returned once `confirmations` deep, not later
    assert proxy.channel(key).deposit == 10**16


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


class ProcessDied(Exception):
    """Stands for the process dying: nothing after the point that raises it runs."""


def die(*args, **kwargs):
    raise ProcessDied


# Only a real node mines in the background and can be reorged (evm_snapshot / evm_revert).
@pytest.mark.parametrize("node", ["anvil"], indirect=True)
def test_settlement_lost_to_a_reorg_is_rebroadcast_and_counted_once(node, deployed, tmp_path, monkeypatch):
    escrow, _, _ = deployed
    payer, payee = parties(node, escrow, tmp_path)
    channel = payer.open_channel(payee.address, 10**17)
    payee.receive(payer.pay(channel.id, 3 * 10**16, task="work"))
    before = node.w3.eth.get_balance(payee.address)  # read before the fork: the balance the reorg restores
    fork = node.snapshot()
    # settle signs, records the transaction as pending and broadcasts it — then the process dies.
    with monkeypatch.context() as patch:
        patch.setattr(TransactionPipeline, "wait", die)
        with pytest.raises(ProcessDied):
            payee.settle()
    (pending,) = payee.store.settlements()
    assert pending.status == "pending" and pending.gross == 3 * 10**16
    tx_hash = pending.tx_hash
    # anvil answers eth_sendRawTransaction before it has mined the transaction. Reverted while still
    # pending, the settlement would stay in the pool and be mined *after* the "reorg", at any moment
    # of what follows. Once it is in a block, the revert takes the block and the transaction away.
    node.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10, poll_latency=0.02)
    node.revert(fork)  # the block with the settlement is reorged away, mempool and all
    with pytest.raises(TransactionNotFound):
        node.w3.eth.get_transaction_receipt(tx_hash)
    assert payer.escrow.channel(channel.id).claimed == 0
    assert node.w3.eth.get_balance(payee.address) == before
    (settlement,) = payee.resolve_pending()  # after the restart: rebroadcast, then confirmed
    assert settlement.tx_hash == tx_hash and settlement.gross == 3 * 10**16
    assert node.w3.eth.get_balance(payee.address) - before == 3 * 10**16 - settlement.fee
    assert [s.status for s in payee.store.settlements()] == ["confirmed"]
    with pytest.raises(NothingToClaim):  # counted once: the channel is fully claimed
        payee.settle()
