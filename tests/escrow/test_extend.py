"""MicropayEscrow.extend: the payer moves expiry later, never earlier."""

import pytest

from helpers import DAY, events, reverts, transact


def test_extend_moves_expiry_later(escrow, channels, chain, payer, payee):
    expiry = chain.now() + DAY
    key, _ = channels.open(payer, payee, 1000, expiry=expiry)
    receipt = transact(escrow.functions.extend(*key.payer_args(), expiry + DAY), payer)
    assert channels.state(key)[2] == expiry + DAY
    (event,) = events(escrow, receipt, "Extended")
    assert event.args == {"channelId": key.id(), "payer": payer, "payee": payee, "expiry": expiry + DAY}


def test_extend_a_delegated_channel_names_its_signer(escrow, channels, chain, payer, payee, hot_key):
    expiry = chain.now() + DAY
    key, _ = channels.open(payer, payee, 1000, expiry=expiry, signer=hot_key.address)
    self_signed = key.__class__(payer, payee, key.token, key.salt)
    with reverts(escrow, "ChannelNotFound", channelId=self_signed.id()):
        transact(escrow.functions.extend(*self_signed.payer_args(), expiry + DAY), payer)
    transact(escrow.functions.extend(*key.payer_args(), expiry + DAY), payer)
    assert channels.state(key)[2] == expiry + DAY


@pytest.mark.parametrize("offset", [pytest.param(0, id="same-time"), pytest.param(-1, id="one-second-earlier")])
def test_extend_to_an_earlier_or_equal_time_reverts(escrow, channels, chain, payer, payee, offset):
    expiry = chain.now() + DAY
    key, _ = channels.open(payer, payee, 1000, expiry=expiry)
    with reverts(escrow, "InvalidExpiry", expiry=expiry + offset):
        transact(escrow.functions.extend(*key.payer_args(), expiry + offset), payer)
    assert channels.state(key)[2] == expiry


def test_extend_after_expiry_must_reach_past_now(escrow, channels, chain, payer, payee):
    expiry = chain.now() + DAY
    key, _ = channels.open(payer, payee, 1000, expiry=expiry)
    chain.next_tx_at(expiry + 100)
    with reverts(escrow, "InvalidExpiry", expiry=expiry + 50):
        transact(escrow.functions.extend(*key.payer_args(), expiry + 50), payer)
    assert channels.state(key)[2] == expiry


def test_extend_cancels_a_close_request(escrow, channels, chain, payer, payee):
    key, _ = channels.open(payer, payee, 1000)
    transact(escrow.functions.requestClose(*key.payer_args()), payer)
    later = channels.state(key)[2] + 10 * DAY
    transact(escrow.functions.extend(*key.payer_args(), later), payer)
    chain.next_tx_at(later)
    channels.claim(key, 10)
    assert channels.state(key)[1] == 10


@pytest.mark.parametrize("caller", ["payee", "stranger"])
def test_only_the_payer_may_extend(request, escrow, channels, chain, payer, payee, caller):
    # The payer is msg.sender: anyone else names another channel, which does not exist.
    caller = request.getfixturevalue(caller)
    expiry = chain.now() + DAY
    key, _ = channels.open(payer, payee, 1000, expiry=expiry)
    as_caller = key.__class__(caller, payee, key.token, key.salt)
    with reverts(escrow, "ChannelNotFound", channelId=as_caller.id()):
        transact(escrow.functions.extend(*key.payer_args(), chain.now() + 90 * DAY), caller)
    assert channels.state(key)[2] == expiry
