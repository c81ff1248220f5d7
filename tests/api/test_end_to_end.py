"""The whole story through the public API on eth-tester: pay per task, settle once, exact to the wei."""

from datetime import timedelta

from micropay import ChannelStatus, Payment, verify_ledger

TASKS = 20


def test_two_clients_two_channels_each_one_settlement(w3, lib_escrow, clients, freelancer, make_payer, payee):
    payers = [make_payer(client) for client in clients[:2]]
    channels = [(p, p.open_channel(freelancer.address, 10**17, expires_in=timedelta(days=7))) for p in payers
                for _ in range(2)]
    expected = {}
    for n in range(TASKS):
        for i, (payer, channel) in enumerate(channels):
            price = 10**14 * (i + 1) + n  # 0.0001 ETH and up: each channel is worth its gas
            payment = payer.pay(channel.id, price, task=f"task {n} of channel {i}")
            assert isinstance(payment, Payment)
            received = payee.receive(payment.encode())  # as text, the way it travels
            assert received.added == price and received.tasks[0].task_id == f"task {n} of channel {i}"
            expected[channel.id] = expected.get(channel.id, 0) + price

    owed = {u.channel_id: u.value for u in payee.unclaimed()}
    assert owed == expected
    freelancer_before = w3.eth.get_balance(freelancer.address)
    escrow_before = w3.eth.get_balance(lib_escrow.address)

    settlement = payee.settle(min_net=0)

    receipt = w3.eth.get_transaction_receipt(settlement.tx_hash)
    assert len(lib_escrow.claimed_in(lib_escrow.wait(settlement.tx_hash))) == 4  # one transaction for every channel
    assert set(settlement.channels) == set(expected)
    assert settlement.gross == sum(expected.values())
    assert settlement.fee == receipt.gasUsed * receipt.effectiveGasPrice
    assert w3.eth.get_balance(freelancer.address) - freelancer_before == settlement.gross - settlement.fee
    assert settlement.net == settlement.gross - settlement.fee
    assert escrow_before - w3.eth.get_balance(lib_escrow.address) == settlement.gross
    for payer, channel in channels:
        state = lib_escrow.channel(channel.id)
        assert state.claimed == expected[channel.id] and state.status is ChannelStatus.OPEN
        ledger = payee.ledger(channel.id)
        best, _ = payee.store.best_voucher(channel.id)
        proven = verify_ledger([e.receipt for e in ledger], best)  # the ledger proves each task
        assert [r.task_id for r in proven.receipts] == [f"task {n} of channel {channels.index((payer, channel))}"
                                                        for n in range(TASKS)]
        assert [e.receipt for e in payer.ledger(channel.id)] == [e.receipt for e in ledger]
    assert all(u.value == 0 for u in payee.unclaimed())


def test_erc20_channel_pays_and_settles(w3, lib_escrow, api_token, clients, freelancer, make_payer, payee):
    payer = make_payer(clients[2])
    channel = payer.open_channel(freelancer.address, 5_000_000, token=api_token.address)
    for n in range(3):
        payee.receive(payer.pay(channel.id, 1_250_000, task=f"translation page {n}"))
    before = api_token.functions.balanceOf(freelancer.address).call()
    settlement = payee.settle(token=api_token.address)
    assert settlement.gross == 3_750_000
    assert api_token.functions.balanceOf(freelancer.address).call() - before == 3_750_000


def test_settle_skips_channels_worth_less_than_their_gas(w3, lib_escrow, clients, freelancer, make_payer, payee):
    payer = make_payer(clients[0])
    big = payer.open_channel(freelancer.address, 10**17)
    dust = payer.open_channel(freelancer.address, 10**17)
    payee.receive(payer.pay(big.id, 10**16, task="real work"))
    payee.receive(payer.pay(dust.id, 1_000, task="a typo fix"))  # 1000 wei: far below any gas share
    plan = payee.plan_settlement()
    assert plan.channels == (big.id,) and plan.gross == 10**16 and plan.fee == plan.gas * plan.gas_price > 0
    assert plan.net == plan.gross - plan.fee
    assert lib_escrow.channel(big.id).claimed == 0  # planning sends nothing
    settlement = payee.settle(plan)
    assert settlement.channels == (big.id,) and settlement.gross == plan.gross
    assert settlement.gas_used <= plan.gas and settlement.fee <= plan.fee
    assert lib_escrow.channel(dust.id).claimed == 0
    assert {u.channel_id: u.value for u in payee.unclaimed()}[dust.id] == 1_000
