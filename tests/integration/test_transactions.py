"""Transaction handling on a real node (anvil): fee cap, duplicates, stale nonces, timeouts."""

import pytest

from chains import AnvilChain
from micropay import Escrow
from micropay._utils import tx
from micropay.errors import TransactionError


@pytest.fixture
def node(anvil):
    chain = AnvilChain(anvil.url)
    snapshot = chain.snapshot()
    yield chain
    chain._rpc("evm_setAutomine", [True])
    chain.revert(snapshot)


def transfer(node, account, nonce, tip=10**9):
    return account.sign_transaction({"to": node.w3.eth.accounts[1], "value": 1, "gas": 21_000, "nonce": nonce,
                                     "chainId": node.w3.eth.chain_id, "maxFeePerGas": 10**10,
                                     "maxPriorityFeePerGas": tip})


def test_fee_cap_is_respected_and_refused_below_the_base_fee(node):
    deployer = node.fund()
    escrow = Escrow.deploy(node.w3, deployer, options=tx.TxOptions(max_fee_per_gas=5 * 10**9))
    deployed = node.w3.eth.get_transaction(node.w3.eth.get_block("latest")["transactions"][0])
    assert deployed["maxFeePerGas"] <= 5 * 10**9 and escrow.address
    with pytest.raises(TransactionError, match="at or above your cap"):
        Escrow.deploy(node.w3, deployer, options=tx.TxOptions(max_fee_per_gas=1))


def test_the_same_transaction_twice_is_waited_for_not_an_error(node):
    account = node.fund()
    node._rpc("evm_setAutomine", [False])
    signed = transfer(node, account, 0)
    tx.broadcast(node.w3, bytes(signed.raw_transaction), bytes(signed.hash))
    tx.broadcast(node.w3, bytes(signed.raw_transaction), bytes(signed.hash))  # "already imported"
    node.mine()
    assert tx.wait(node.w3, bytes(signed.hash), 5).status == 1
    tx.broadcast(node.w3, bytes(signed.raw_transaction), bytes(signed.hash))  # mined: "nonce too low", ours


def test_a_nonce_taken_by_another_transaction_asks_for_a_new_signature(node):
    account = node.fund()
    other, ours = transfer(node, account, 0, tip=2 * 10**9), transfer(node, account, 0)
    node.w3.eth.wait_for_transaction_receipt(node.w3.eth.send_raw_transaction(other.raw_transaction))
    with pytest.raises(tx._StaleNonce):
        tx.broadcast(node.w3, bytes(ours.raw_transaction), bytes(ours.hash))


def test_send_after_another_program_used_the_nonce_still_goes_through(node):
    account = node.fund()
    escrow = Escrow.deploy(node.w3, node.fund())
    # Another program sends from the same key: the pending nonce moves, send reads it fresh.
    node.w3.eth.wait_for_transaction_receipt(node.w3.eth.send_raw_transaction(transfer(node, account, 0).raw_transaction))
    key, receipt = escrow.open(account, node.w3.eth.accounts[2], 1000, expiry=escrow.now() + 86_400)
    assert receipt.status == 1 and escrow.channel(key).deposit == 1000


def test_a_transaction_never_mined_times_out_with_a_clear_error(node):
    escrow = Escrow.deploy(node.w3, node.fund())
    slow = Escrow(node.w3, escrow.address, options=tx.TxOptions(timeout=0.5, poll_interval=0.05))
    payer = node.fund()
    node._rpc("evm_setAutomine", [False])
    with pytest.raises(TransactionError, match="was not mined"):
        slow.open(payer, node.w3.eth.accounts[2], 1000, expiry=escrow.now() + 86_400)


class GethLikeNode:
    """Stands in for geth, whose wording anvil never produces (anvil accepts any fee bump)."""

    class eth:  # noqa: N801 - mirrors web3's attribute
        @staticmethod
        def send_raw_transaction(raw):
            raise ValueError({"code": -32000, "message": "replacement transaction underpriced"})


def test_replacement_underpriced_is_explained():
    with pytest.raises(TransactionError, match="same nonce is pending at a higher fee"):
        tx.broadcast(GethLikeNode(), b"raw", b"\x00" * 32)  # type: ignore[arg-type]
