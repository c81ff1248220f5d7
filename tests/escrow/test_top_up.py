"""MicropayEscrow.topUp: the payer adds to a live channel's deposit."""

import pytest

from helpers import DAY, events, reverts, transact


def test_top_up_eth_adds_to_deposit(w3, escrow, channels, payer, payee):
    key, _ = channels.open(payer, payee, 1000)
    before = w3.eth.get_balance(escrow.address)
    receipt = transact(escrow.functions.topUp(*key.payer_args(), 500), payer, value=500)
    assert channels.state(key)[0] == 1500
    assert w3.eth.get_balance(escrow.address) - before == 500
    (event,) = events(escrow, receipt, "ToppedUp")
    assert event.args == {"channelId": key.id(), "payer": payer, "payee": payee, "amount": 500, "deposit": 1500}


def test_top_up_erc20(escrow, token, channels, payer, payee):
    key, _ = channels.open(payer, payee, 1000, token=token.address)
    before = token.functions.balanceOf(escrow.address).call()
    transact(escrow.functions.topUp(*key.payer_args(), 250), payer)
    assert channels.state(key)[0] == 1250
    assert token.functions.balanceOf(escrow.address).call() - before == 250


def test_top_up_a_delegated_channel(escrow, channels, payer, payee, hot_key):
    key, _ = channels.open(payer, payee, 1000, signer=hot_key.address)
    transact(escrow.functions.topUp(*key.payer_args(), 500), payer, value=500)
    assert channels.state(key)[0] == 1500


def test_top_up_lets_an_over_deposit_voucher_pay_more(w3, escrow, channels, payer, payee):
    key, _ = channels.open(payer, payee, 1000)
    channels.claim(key, 1500, payer)
    assert channels.state(key)[1] == 1000
    transact(escrow.functions.topUp(*key.payer_args(), 500), payer, value=500)
    before = w3.eth.get_balance(payee)
    channels.claim(key, 1500, payer)
    assert w3.eth.get_balance(payee) - before == 500


@pytest.mark.parametrize("caller", ["payee", "stranger"])
def test_only_the_payer_may_top_up(request, escrow, channels, payer, payee, caller):
    # The payer is msg.sender: anyone else names another channel, which does not exist.
    caller = request.getfixturevalue(caller)
    key, _ = channels.open(payer, payee, 1000)
    as_caller = key.__class__(caller, payee, key.token, key.salt)
    with reverts(escrow, "ChannelNotFound", channelId=as_caller.id()):
        transact(escrow.functions.topUp(*key.payer_args(), 5), caller, value=5)
    assert channels.state(key)[0] == 1000


@pytest.mark.parametrize("value", [pytest.param(4, id="value-below-amount"), pytest.param(6, id="value-above-amount")])
def test_top_up_value_mismatch_reverts(escrow, channels, payer, payee, value):
    key, _ = channels.open(payer, payee, 1000)
    with reverts(escrow, "InvalidValue", value=value):
        transact(escrow.functions.topUp(*key.payer_args(), 5), payer, value=value)
    assert channels.state(key)[0] == 1000


def test_top_up_of_zero_reverts(escrow, channels, payer, payee):
    key, _ = channels.open(payer, payee, 1000)
    with reverts(escrow, "InvalidAmount"):
        transact(escrow.functions.topUp(*key.payer_args(), 0), payer)


def test_top_up_after_expiry_reverts(escrow, channels, chain, payer, payee):
    expiry = chain.now() + DAY
    key, _ = channels.open(payer, payee, 1000, expiry=expiry)
    chain.next_tx_at(expiry + 1)
    with reverts(escrow, "ChannelExpired", channelId=key.id(), expiry=expiry):
        transact(escrow.functions.topUp(*key.payer_args(), 5), payer, value=5)


def test_top_up_beyond_uint96_reverts(escrow, token, channels, payer, payee):
    key, _ = channels.open(payer, payee, 2**96 - 10, token=token.address)
    with reverts(escrow, "AmountTooLarge", amount=2**96):
        transact(escrow.functions.topUp(*key.payer_args(), 10), payer)
    assert channels.state(key)[0] == 2**96 - 10


def test_top_up_unknown_channel_reverts(escrow, channels, payer, payee):
    key, _ = channels.open(payer, payee, 1000)
    unknown = key.__class__(key.payer, key.payee, key.token, 4242)
    with reverts(escrow, "ChannelNotFound", channelId=unknown.id()):
        transact(escrow.functions.topUp(*unknown.payer_args(), 5), payer, value=5)


def test_token_top_up_with_eth_reverts(escrow, token, channels, payer, payee):
    key, _ = channels.open(payer, payee, 1000, token=token.address)
    with reverts(escrow, "InvalidValue", value=5):
        transact(escrow.functions.topUp(*key.payer_args(), 5), payer, value=5)
