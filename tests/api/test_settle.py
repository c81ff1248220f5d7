"""Settling in as many transactions as the gas cap requires: each recorded and confirmed."""

import pytest

from micropay import ChannelFinal, NothingToClaim, Payee, TransactionError


@pytest.fixture
def ten_paid_channels(make_payer, clients, freelancer):
    payer = make_payer(clients[0])
    channels = [payer.open_channel(freelancer.address, 10**17) for _ in range(10)]
    payments = [payer.pay(channel.id, (n + 1) * 10**15, task=f"task {n}") for n, channel in enumerate(channels)]
    return channels, payments


def test_a_settlement_over_the_gas_cap_is_split_and_every_part_is_confirmed(lib_escrow, freelancer, store_at,
                                                                            ten_paid_channels):
    channels, payments = ten_paid_channels
    payee = Payee(lib_escrow, freelancer, store_at("f"), max_gas_per_tx=120_000)  # about 4 channels a claim
    for payment in payments:
        payee.receive(payment)
    plan = payee.plan_settlement()
    assert len(plan.batches) > 1 and all(batch.gas <= 120_000 for batch in plan.batches)
    assert sorted(plan.channels) == sorted(c.id for c in channels)
    settlement = payee.settle(plan)
    assert len(settlement.transactions) == len(plan.batches) == len(set(settlement.tx_hashes))
    assert all(t.gas_used <= 120_000 for t in settlement.transactions)
    assert settlement.gross == sum(p.amount for p in payments) == plan.gross
    assert sorted(settlement.channels) == sorted(c.id for c in channels)
    assert [lib_escrow.channel(c.key).claimed for c in channels] == [p.amount for p in payments]
    rows = payee.store.settlements()
    assert {r.tx_hash for r in rows} == set(settlement.tx_hashes) and {r.status for r in rows} == {"confirmed"}
    assert sum(r.fee for r in rows) == settlement.fee


def test_without_a_cap_a_small_settlement_is_one_transaction(lib_escrow, freelancer, store_at, ten_paid_channels):
    _, payments = ten_paid_channels
    payee = Payee(lib_escrow, freelancer, store_at("f"))
    for payment in payments:
        payee.receive(payment)
    plan = payee.plan_settlement()
    assert len(plan.batches) == 1 and plan.gas < lib_escrow.block_gas_limit() // 2
    assert len(payee.settle(plan).transactions) == 1


def test_a_cap_below_one_claim_is_a_clear_error_and_sends_nothing(lib_escrow, freelancer, store_at,
                                                                  ten_paid_channels):
    _, payments = ten_paid_channels
    payee = Payee(lib_escrow, freelancer, store_at("f"), max_gas_per_tx=30_000)
    payee.receive(payments[0])
    with pytest.raises(TransactionError, match="more than the cap of 30,000"):
        payee.plan_settlement()
    assert payee.store.settlements() == []


def test_closing_a_token_channel_claims_and_leaves_the_refund_to_the_payer(tester, lib_escrow, api_token, clients,
                                                                           freelancer, make_payer, payee):
    # Audit L-1: close pushes the payer's refund through the token inside the payee's transaction,
    # which a token with transfer hooks lets the payer make expensive. The payee claims instead.
    payer = make_payer(clients[0])
    channel = payer.open_channel(freelancer.address, 10**6, token=api_token.address)
    payee.receive(payer.pay(channel.id, 4 * 10**5, task="translated"))
    before = api_token.functions.balanceOf(freelancer.address).call()
    receipt = payee.close(channel.id)
    assert receipt.status == 1 and lib_escrow.refund_in(receipt) == 0
    state = lib_escrow.channel(channel.key)
    assert (state.claimed, state.closed) == (4 * 10**5, False)  # claimed, not closed
    assert api_token.functions.balanceOf(freelancer.address).call() - before == 4 * 10**5
    assert [r.status for r in payee.store.settlements()] == ["confirmed"]  # recorded like any settlement
    with pytest.raises(NothingToClaim):  # closing again has nothing new to claim
        payee.close(channel.id)
    payer.request_close(channel.id)
    tester.time_travel(lib_escrow.channel(channel.key).expiry + 1)
    assert payer.reclaim(channel.id) == 6 * 10**5  # the payer takes the rest back itself


def test_closing_an_eth_channel_ends_it_at_once(lib_escrow, clients, freelancer, make_payer, payee):
    payer = make_payer(clients[1])
    channel = payer.open_channel(freelancer.address, 10**16)
    payee.receive(payer.pay(channel.id, 10**15, task="done"))
    payee.close(channel.id)
    state = lib_escrow.channel(channel.key)
    assert (state.claimed, state.closed) == (10**15, True)
    assert payee.store.channel(channel.ref).closed
    with pytest.raises(ChannelFinal):
        payee.close(channel.id)


def test_a_settlement_counts_what_it_claimed_even_when_another_process_stored_the_new_totals_first(
        lib_escrow, freelancer, store_at, ten_paid_channels):
    # `micropay serve` refreshes its channels' chain state in the background (ChainRefresh): it can
    # store a settlement's new claimed totals before the settlement itself reads its receipt. The
    # gross is what the chain moved in that transaction, not the rise over what the store knew.
    import dataclasses

    from micropay.channel import ETH
    _, payments = ten_paid_channels
    payee = Payee(lib_escrow, freelancer, store_at("f"))
    for payment in payments[:3]:
        payee.receive(payment)
    (batch,) = payee.plan_settlement().batches
    receipt = lib_escrow.claim_many(freelancer, freelancer.address, ETH, batch.items, gas=batch.gas)
    for key, _ in batch.items:  # what the background refresh writes meanwhile
        record = payee.store.channel(payee.ref(key.id))
        with payee.store.transaction() as tx:
            tx.update_chain_state(dataclasses.replace(record, claimed=lib_escrow.channel(key).claimed))
    settled = payee.settler._confirm(receipt)
    assert settled.gross == sum(p.amount for p in payments[:3]) == batch.gross
