"""MicropayEscrow.reclaim: after expiry the payer takes back deposit - claimed, once."""

import pytest

from helpers import DAY, events, gas_cost, reverts, transact


def test_reclaim_after_expiry_refunds_unclaimed(w3, escrow, channels, chain, payer, payee):
    expiry = chain.now() + DAY
    key, _ = channels.open(payer, payee, 1000, expiry=expiry)
    channels.claim(key, 400, payee)
    chain.next_tx_at(expiry + 1)
    before = w3.eth.get_balance(payer)
    receipt = transact(escrow.functions.reclaim(key.tuple()), payer)
    assert w3.eth.get_balance(payer) - before == 600 - gas_cost(receipt)
    assert channels.state(key)[4] is True
    (event,) = events(escrow, receipt, "Reclaimed")
    assert event.args == {"channelId": key.id(), "payer": payer, "payee": payee, "refund": 600}


def test_reclaim_at_expiry_reverts(escrow, channels, chain, payer, payee):
    expiry = chain.now() + DAY
    key, _ = channels.open(payer, payee, 1000, expiry=expiry)
    chain.next_tx_at(expiry)
    with reverts(escrow, "ChannelNotExpired", channelId=key.id(), expiry=expiry):
        transact(escrow.functions.reclaim(key.tuple()), payer)
    assert channels.state(key)[4] is False


def test_reclaim_one_second_after_expiry_succeeds(escrow, channels, chain, payer, payee):
    expiry = chain.now() + DAY
    key, _ = channels.open(payer, payee, 1000, expiry=expiry)
    chain.next_tx_at(expiry + 1)
    transact(escrow.functions.reclaim(key.tuple()), payer)
    assert channels.state(key)[4] is True


def test_only_the_payer_may_reclaim(escrow, channels, chain, payer, payee, stranger):
    expiry = chain.now() + DAY
    key, _ = channels.open(payer, payee, 1000, expiry=expiry)
    chain.next_tx_at(expiry + 1)
    with reverts(escrow, "NotPayer", caller=stranger):
        transact(escrow.functions.reclaim(key.tuple()), stranger)


def test_reclaim_twice_reverts_and_pays_once(w3, escrow, channels, chain, payer, payee):
    expiry = chain.now() + DAY
    key, _ = channels.open(payer, payee, 1000, expiry=expiry)
    chain.next_tx_at(expiry + 1)
    transact(escrow.functions.reclaim(key.tuple()), payer)
    with reverts(escrow, "ChannelFinal"):
        transact(escrow.functions.reclaim(key.tuple()), payer)


@pytest.mark.parametrize("call", [
    pytest.param(lambda escrow, channels, key, expiry: transact(
        escrow.functions.topUp(key.tuple(), 10), key.payer, value=10), id="topUp"),
    pytest.param(lambda escrow, channels, key, expiry: transact(
        escrow.functions.extend(key.tuple(), expiry + 10 * DAY), key.payer), id="extend"),
    pytest.param(lambda escrow, channels, key, expiry: channels.claim(key, 10), id="claim"),
    pytest.param(lambda escrow, channels, key, expiry: transact(
        escrow.functions.close(key.tuple(), 0, b"\x00" * 32, b""), key.payee), id="close"),
])
def test_every_mutating_call_reverts_after_reclaim(escrow, channels, chain, payer, payee, call):
    expiry = chain.now() + DAY
    key, _ = channels.open(payer, payee, 1000, expiry=expiry)
    chain.next_tx_at(expiry + 1)
    transact(escrow.functions.reclaim(key.tuple()), payer)
    with reverts(escrow, "ChannelFinal", channelId=key.id()):
        call(escrow, channels, key, expiry)
