"""MicropayEscrow.requestClose: the payer's exit starts a challenge window, never shorter."""

import pytest
from escrow_kit import key_only

from helpers import DAY, HOUR, events, reverts, transact


def test_request_close_pulls_expiry_to_now_plus_window(escrow, channels, chain, payer, payee):
    key, _ = channels.open(payer, payee, 1000, expiry=chain.now() + 30 * DAY, window=2 * HOUR)
    at = chain.now() + 100
    chain.next_tx_at(at)
    receipt = transact(escrow.functions.requestClose(*key.payer_args()), payer)
    assert channels.state(key)[2] == at + 2 * HOUR
    (event,) = events(escrow, receipt, "CloseRequested")
    assert event.args == {"channelId": key.id(), "payer": payer, "payee": payee, "expiry": at + 2 * HOUR}


def test_request_close_never_extends_a_nearer_expiry(escrow, channels, chain, payer, payee):
    expiry = chain.now() + HOUR + 30
    key, _ = channels.open(payer, payee, 1000, expiry=expiry, window=2 * HOUR)
    receipt = transact(escrow.functions.requestClose(*key.payer_args()), payer)
    assert channels.state(key)[2] == expiry
    assert events(escrow, receipt, "CloseRequested")[0].args.expiry == expiry


def test_payee_claims_latest_voucher_inside_the_window(w3, escrow, channels, chain, payer, payee):
    key, _ = channels.open(payer, payee, 1000, window=HOUR)
    transact(escrow.functions.requestClose(*key.payer_args()), payer)
    expiry = channels.state(key)[2]
    chain.next_tx_at(expiry)
    before = w3.eth.get_balance(payer)
    channels.claim(key, 900, payer)  # submitted by the payer's own account: still pays the payee
    assert channels.state(key)[1] == 900
    assert w3.eth.get_balance(payer) < before


@pytest.mark.parametrize("caller", ["payee", "stranger"])
def test_only_the_payer_may_request_close(request, escrow, channels, payer, payee, caller):
    # The payer is msg.sender: anyone else names another channel, which does not exist.
    caller = request.getfixturevalue(caller)
    key, _ = channels.open(payer, payee, 1000)
    expiry = channels.state(key)[2]
    as_caller = key.__class__(caller, payee, key.token, key.salt)
    with reverts(escrow, "ChannelNotFound", channelId=as_caller.id()):
        transact(escrow.functions.requestClose(*key.payer_args()), caller)
    assert channels.state(key)[2] == expiry


def test_request_close_after_expiry_reverts(escrow, channels, chain, payer, payee):
    expiry = chain.now() + DAY
    key, _ = channels.open(payer, payee, 1000, expiry=expiry)
    chain.next_tx_at(expiry + 1)
    with reverts(escrow, "ChannelExpired", channelId=key.id(), expiry=expiry):
        transact(escrow.functions.requestClose(*key.payer_args()), payer)


def test_request_close_on_final_channel_reverts(escrow, channels, payer, payee):
    key, _ = channels.open(payer, payee, 1000)
    transact(escrow.functions.close(key.token, key_only(key)), payee)
    with reverts(escrow, "ChannelFinal", channelId=key.id()):
        transact(escrow.functions.requestClose(*key.payer_args()), payer)
