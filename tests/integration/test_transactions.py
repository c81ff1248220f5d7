"""Transaction handling on a real node (anvil): fee cap, duplicates, stale nonces, timeouts."""

import time

import pytest

from chains import AnvilChain
from micropay import Escrow, TxOptions
from micropay._utils.reverts import ErrorDecoder
from micropay.errors import TransactionError, TransactionPending
from micropay.transactions import SignedTx, TransactionPipeline, _StaleNonce


@pytest.fixture
def node(anvil):
    chain = AnvilChain(anvil.url)
    snapshot = chain.snapshot()
    yield chain
    chain._rpc("evm_setAutomine", [True])
    chain.revert(snapshot)


def pipeline(w3, **options):
    return TransactionPipeline(w3, ErrorDecoder([]), options=TxOptions(**options))


def signed_tx(signed):
    return SignedTx(bytes(signed.hash), bytes(signed.raw_transaction))


def transfer(node, account, nonce, tip=10**9):
    return account.sign_transaction({"to": node.w3.eth.accounts[1], "value": 1, "gas": 21_000, "nonce": nonce,
                                     "chainId": node.w3.eth.chain_id, "maxFeePerGas": 10**10,
                                     "maxPriorityFeePerGas": tip})


def test_fee_cap_is_respected_and_refused_below_the_base_fee(node):
    deployer = node.fund()
    escrow = Escrow.deploy(node.w3, deployer, options=TxOptions(max_fee_per_gas=5 * 10**9))
    deployed = node.w3.eth.get_transaction(node.w3.eth.get_block("latest")["transactions"][0])
    assert deployed["maxFeePerGas"] <= 5 * 10**9 and escrow.address
    with pytest.raises(TransactionError, match="at or above your cap"):
        Escrow.deploy(node.w3, deployer, options=TxOptions(max_fee_per_gas=1))


def test_the_same_transaction_twice_is_waited_for_not_an_error(node):
    account = node.fund()
    node._rpc("evm_setAutomine", [False])
    signed, sender = signed_tx(transfer(node, account, 0)), pipeline(node.w3, timeout=5)
    sender._broadcast(signed)
    sender._broadcast(signed)  # "already imported"
    node.mine()
    assert sender.wait(signed.tx_hash).status == 1
    sender._broadcast(signed)  # mined: "nonce too low", but it is ours


def test_a_nonce_taken_by_another_transaction_asks_for_a_new_signature(node):
    account = node.fund()
    other, ours = transfer(node, account, 0, tip=2 * 10**9), transfer(node, account, 0)
    node.w3.eth.wait_for_transaction_receipt(node.w3.eth.send_raw_transaction(other.raw_transaction))
    with pytest.raises(_StaleNonce):
        pipeline(node.w3)._broadcast(signed_tx(ours))


def test_send_after_another_program_used_the_nonce_still_goes_through(node):
    account = node.fund()
    escrow = Escrow.deploy(node.w3, node.fund())
    # Another program sends from the same key: the pending nonce moves, send reads it fresh.
    taken = transfer(node, account, 0)
    node.w3.eth.wait_for_transaction_receipt(node.w3.eth.send_raw_transaction(taken.raw_transaction))
    key, receipt = escrow.open(account, node.w3.eth.accounts[2], 1000, expiry=escrow.now() + 86_400)
    assert receipt.status == 1 and escrow.channel(key).deposit == 1000


def test_a_transaction_never_mined_times_out_with_a_clear_error(node):
    escrow = Escrow.deploy(node.w3, node.fund())
    slow = Escrow(node.w3, escrow.address, options=TxOptions(timeout=0.5, poll_interval=0.05))
    payer = node.fund()
    node._rpc("evm_setAutomine", [False])
    with pytest.raises(TransactionError, match="was not mined"):
        slow.open(payer, node.w3.eth.accounts[2], 1000, expiry=escrow.now() + 86_400)


class GethLikeNode:
    """Stands in for geth, whose wording anvil never produces (anvil accepts any fee bump)."""

    class eth:
        @staticmethod
        def send_raw_transaction(raw):
            raise ValueError({"code": -32000, "message": "replacement transaction underpriced"})


def test_replacement_underpriced_is_explained():
    with pytest.raises(TransactionError, match="same nonce is pending at a higher fee"):
        pipeline(GethLikeNode())._broadcast(SignedTx(b"\x00" * 32, b"raw"))


def test_deploy_on_a_node_that_mines_on_demand_does_not_wait_for_blocks_that_never_come(node):
    deployed = []
    started = time.monotonic()
    escrow = Escrow.deploy(node.w3, node.fund(), options=TxOptions(confirmations=1, timeout=60, poll_interval=0.05),
                           on_deployed=lambda address, block: deployed.append((address, block)))
    assert time.monotonic() - started < 15  # not the 60 s timeout: anvil mines only when a transaction comes
    assert deployed == [(escrow.address, escrow.from_block)]


def test_a_confirmation_that_never_comes_is_named_as_such(node, monkeypatch):
    monkeypatch.setattr(TransactionPipeline, "mines_on_demand", lambda self: False)  # as if a real network
    deployed = []
    with pytest.raises(TransactionPending, match=r"mined in block \d+, but only 0 of the 1 confirmations"):
        Escrow.deploy(node.w3, node.fund(), options=TxOptions(confirmations=1, timeout=1, poll_interval=0.05),
                      on_deployed=lambda address, block: deployed.append(address))
    assert len(deployed) == 1 and node.w3.eth.get_code(deployed[0])  # recorded although the wait failed
