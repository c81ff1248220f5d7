"""The transaction pipeline on eth-tester and anvil: a nonce taken by another program, a
broadcast that fails, and every way a pending settlement can end after a crash."""

from datetime import timedelta

import pytest

from micropay import Escrow, Payee, Payer, SettlementRecord, TransactionError, TxOptions
from micropay.transactions import TransactionPipeline


def parties(node, escrow, tmp_path, **options):
    proxy = Escrow(node.w3, escrow.address, from_block=escrow.from_block,
                   options=TxOptions(poll_interval=0.02, **options))
    client, freelancer = node.fund(), node.fund()
    return Payer(proxy, client, tmp_path / "client.db"), Payee(proxy, freelancer, tmp_path / "freelancer.db")


def paid_channel(payer, payee, amount=3 * 10**16):
    channel = payer.open_channel(payee.address, 10**17, expires_in=timedelta(days=3))
    payee.receive(payer.pay(channel.id, amount, task="work"))
    return channel


def lose_the_nonce(node, account):
    """Another program sends a transfer from the same key with the next nonce and gets it mined."""
    nonce = node.w3.eth.get_transaction_count(account.address, "pending")
    competitor = account.sign_transaction({
        "to": "0x" + "11" * 20, "value": 1, "gas": 21_000, "nonce": nonce, "chainId": node.w3.eth.chain_id,
        "maxFeePerGas": 10 * node.w3.eth.gas_price + 10**9, "maxPriorityFeePerGas": 10**9})
    node.w3.eth.wait_for_transaction_receipt(node.w3.eth.send_raw_transaction(competitor.raw_transaction))


def front_run(monkeypatch, node, account, times):
    """The next ``times`` transactions the pipeline signs lose their nonce before they are
    broadcast, so none of them can ever be mined. Returns their hashes as they happen."""
    sign = TransactionPipeline._sign
    lost = []

    def sign_then_lose_the_nonce(self, sender, call, value, gas):
        signed = sign(self, sender, call, value, gas)
        if len(lost) < times:
            lost.append(signed.tx_hash)
            lose_the_nonce(node, account)
        return signed

    monkeypatch.setattr(TransactionPipeline, "_sign", sign_then_lose_the_nonce)
    return lost


def test_settle_signs_again_when_another_program_took_the_nonce(node, deployed, tmp_path, monkeypatch):
    escrow, _, _ = deployed
    payer, payee = parties(node, escrow, tmp_path)
    channel = paid_channel(payer, payee)
    dropped = front_run(monkeypatch, node, payee.account, times=1)
    settlement = payee.settle()
    (lost,) = dropped
    assert settlement.gross == 3 * 10**16 and settlement.tx_hash != lost
    assert payer.escrow.channel(channel.id).claimed == 3 * 10**16
    by_hash = {s.tx_hash: s.status for s in payee.store.settlements()}
    assert by_hash == {lost: "failed", settlement.tx_hash: "confirmed"}  # the dropped one is never pending


def test_a_nonce_that_keeps_moving_is_a_clear_error(node, deployed, tmp_path, monkeypatch):
    escrow, _, _ = deployed
    payer, payee = parties(node, escrow, tmp_path)
    paid_channel(payer, payee)
    lost = front_run(monkeypatch, node, payee.account, times=3)  # every attempt loses its nonce
    with pytest.raises(TransactionError, match="nonce kept moving"):
        payee.settle()
    assert len(lost) == 3
    assert {s.tx_hash: s.status for s in payee.store.settlements()} == dict.fromkeys(lost, "failed")


def test_a_broadcast_with_an_unknown_outcome_stays_pending_until_resolved(node, deployed, tmp_path, monkeypatch):
    escrow, _, _ = deployed
    payer, payee = parties(node, escrow, tmp_path)
    channel = paid_channel(payer, payee)
    send_raw = type(node.w3.eth).send_raw_transaction

    def sent_but_the_answer_was_lost(self, raw):
        send_raw(self, raw)  # the node has it...
        raise ConnectionError("connection reset by peer")  # ...but the answer never arrives

    monkeypatch.setattr(type(node.w3.eth), "send_raw_transaction", sent_but_the_answer_was_lost)
    with pytest.raises(TransactionError, match="may still be mined"):
        payee.settle()
    monkeypatch.undo()
    (pending,) = payee.store.settlements()
    assert pending.status == "pending" and pending.raw_tx is not None  # not "failed": it may be mined
    (settlement,) = payee.resolve_pending()
    assert settlement.tx_hash == pending.tx_hash and settlement.gross == 3 * 10**16
    assert [s.status for s in payee.store.settlements()] == ["confirmed"]
    assert payer.escrow.channel(channel.id).claimed == 3 * 10**16


def test_a_broadcast_the_node_refuses_marks_the_settlement_failed(node, deployed, tmp_path, monkeypatch):
    escrow, _, _ = deployed
    payer, payee = parties(node, escrow, tmp_path)
    paid_channel(payer, payee)

    def refused(self, raw):
        raise ValueError({"code": -32000, "message": "insufficient funds for gas * price + value"})

    monkeypatch.setattr(type(node.w3.eth), "send_raw_transaction", refused)
    with pytest.raises(TransactionError):
        payee.settle()
    assert [s.status for s in payee.store.settlements()] == ["failed"]


def pending_row(payee, tx_hash, raw):
    with payee.store.transaction() as tx:
        tx.add_settlement(SettlementRecord(tx_hash, raw, payee.escrow.address, "0x" + "00" * 20, "pending",
                                           [], 0, None, None, None))


def test_resolve_pending_marks_a_transaction_that_failed_on_chain(node, deployed, tmp_path):
    escrow, _, _ = deployed
    payer, payee = parties(node, escrow, tmp_path)
    channel = paid_channel(payer, payee)
    # A reclaim before expiry reverts on chain; sent with a fixed gas limit, it is mined with status 0.
    call = payee.escrow.contract.functions.reclaim(*channel.key.payer_args())
    pipeline = payee.escrow.pipeline
    signed = pipeline._sign(payer.account, call, 0, 100_000)
    pipeline.rebroadcast(signed.raw)
    mined = pipeline.wait(signed.tx_hash, require_success=False)
    assert mined.status == 0
    pending_row(payee, signed.tx_hash, signed.raw)
    assert payee.resolve_pending() == []
    (row,) = payee.store.settlements()
    assert (row.status, row.gas_used) == ("failed", mined.gas_used)


def test_resolve_pending_marks_a_transaction_the_node_refuses(node, deployed, tmp_path):
    escrow, _, _ = deployed
    _, payee = parties(node, escrow, tmp_path)
    pending_row(payee, b"\x42" * 32, b"\x02not a transaction")
    assert payee.resolve_pending() == []
    assert [s.status for s in payee.store.settlements()] == ["failed"]


def test_resolve_pending_gives_up_on_a_transaction_that_is_never_mined(node, deployed, tmp_path):
    escrow, _, _ = deployed
    _, payee = parties(node, escrow, tmp_path, timeout=0.5)
    account = payee.account
    nonce = node.w3.eth.get_transaction_count(account.address, "pending")
    gap = account.sign_transaction({  # a nonce ahead of the account's: it waits in the pool for ever
        "to": "0x" + "11" * 20, "value": 1, "gas": 21_000, "nonce": nonce + 5, "chainId": node.w3.eth.chain_id,
        "maxFeePerGas": 10 * node.w3.eth.gas_price + 10**9, "maxPriorityFeePerGas": 10**9})
    pending_row(payee, bytes(gap.hash), bytes(gap.raw_transaction))
    assert payee.resolve_pending() == []
    assert [s.status for s in payee.store.settlements()] == ["failed"]
