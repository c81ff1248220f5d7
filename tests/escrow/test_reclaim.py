"""MicropayEscrow.reclaim: after expiry the payer takes back deposit - claimed, once."""

import pytest
from escrow_kit import key_only

from helpers import DAY, events, gas_cost, reverts, transact


def test_reclaim_after_expiry_refunds_unclaimed(w3, escrow, channels, chain, payer, payee):
    expiry = chain.now() + DAY
    key, _ = channels.open(payer, payee, 1000, expiry=expiry)
    channels.claim(key, 400, payee)
    chain.next_tx_at(expiry + 1)
    before = w3.eth.get_balance(payer)
    receipt = transact(escrow.functions.reclaim(*key.payer_args()), payer)
    assert w3.eth.get_balance(payer) - before == 600 - gas_cost(receipt)
    assert channels.state(key)[4] is True
    (event,) = events(escrow, receipt, "Reclaimed")
    assert event.args == {"channelId": key.id(), "payer": payer, "payee": payee, "refund": 600}


def test_reclaim_at_expiry_reverts(escrow, channels, chain, payer, payee):
    expiry = chain.now() + DAY
    key, _ = channels.open(payer, payee, 1000, expiry=expiry)
    chain.next_tx_at(expiry)
    with reverts(escrow, "ChannelNotExpired", channelId=key.id(), expiry=expiry):
        transact(escrow.functions.reclaim(*key.payer_args()), payer)
    assert channels.state(key)[4] is False


def test_reclaim_one_second_after_expiry_succeeds(escrow, channels, chain, payer, payee):
    expiry = chain.now() + DAY
    key, _ = channels.open(payer, payee, 1000, expiry=expiry)
    chain.next_tx_at(expiry + 1)
    transact(escrow.functions.reclaim(*key.payer_args()), payer)
    assert channels.state(key)[4] is True


def test_reclaim_a_delegated_channel(w3, escrow, channels, chain, payer, payee, hot_key):
    expiry = chain.now() + DAY
    key, _ = channels.open(payer, payee, 1000, expiry=expiry, signer=hot_key.address)
    channels.claim(key, 250)
    chain.next_tx_at(expiry + 1)
    receipt = transact(escrow.functions.reclaim(*key.payer_args()), payer)
    assert events(escrow, receipt, "Reclaimed")[0].args.refund == 750


@pytest.mark.parametrize("caller", ["payee", "stranger"])
def test_only_the_payer_may_reclaim(request, w3, escrow, channels, chain, payer, payee, caller):
    # The payer is msg.sender: anyone else names another channel, which does not exist.
    caller = request.getfixturevalue(caller)
    expiry = chain.now() + DAY
    key, _ = channels.open(payer, payee, 1000, expiry=expiry)
    chain.next_tx_at(expiry + 1)
    as_caller = key.__class__(caller, payee, key.token, key.salt)
    with reverts(escrow, "ChannelNotFound", channelId=as_caller.id()):
        transact(escrow.functions.reclaim(*key.payer_args()), caller)
    assert channels.state(key)[4] is False


def test_reclaim_twice_reverts_and_pays_once(w3, escrow, channels, chain, payer, payee):
    expiry = chain.now() + DAY
    key, _ = channels.open(payer, payee, 1000, expiry=expiry)
    chain.next_tx_at(expiry + 1)
    transact(escrow.functions.reclaim(*key.payer_args()), payer)
    before = w3.eth.get_balance(escrow.address)
    with reverts(escrow, "ChannelFinal", channelId=key.id()):
        transact(escrow.functions.reclaim(*key.payer_args()), payer)
    assert w3.eth.get_balance(escrow.address) == before


@pytest.mark.parametrize("call", [
    pytest.param(lambda escrow, channels, key, expiry: transact(
        escrow.functions.topUp(*key.payer_args(), 10), key.payer, value=10), id="topUp"),
    pytest.param(lambda escrow, channels, key, expiry: transact(
        escrow.functions.extend(*key.payer_args(), expiry + 10 * DAY), key.payer), id="extend"),
    pytest.param(lambda escrow, channels, key, expiry: transact(
        escrow.functions.requestClose(*key.payer_args()), key.payer), id="requestClose"),
    pytest.param(lambda escrow, channels, key, expiry: channels.claim(key, 10), id="claim"),
    pytest.param(lambda escrow, channels, key, expiry: transact(
        escrow.functions.close(key.token, key_only(key)), key.payee), id="close"),
])
def test_every_mutating_call_reverts_after_reclaim(escrow, channels, chain, payer, payee, call):
    expiry = chain.now() + DAY
    key, _ = channels.open(payer, payee, 1000, expiry=expiry)
    chain.next_tx_at(expiry + 1)
    transact(escrow.functions.reclaim(*key.payer_args()), payer)
    with reverts(escrow, "ChannelFinal", channelId=key.id()):
        call(escrow, channels, key, expiry)
