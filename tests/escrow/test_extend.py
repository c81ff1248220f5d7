"""MicropayEscrow.extend: the payer moves expiry later, never earlier."""

import pytest

from helpers import DAY, events, reverts, transact


def test_extend_moves_expiry_later(escrow, channels, chain, payer, payee):
    expiry = chain.now() + DAY
    key, _ = channels.open(payer, payee, 1000, expiry=expiry)
    receipt = transact(escrow.functions.extend(key.tuple(), expiry + DAY), payer)
    assert channels.state(key)[2] == expiry + DAY
    (event,) = events(escrow, receipt, "Extended")
    assert event.args == {"channelId": key.id(), "payer": payer, "payee": payee, "expiry": expiry + DAY}


@pytest.mark.parametrize("offset", [pytest.param(0, id="same-time"), pytest.param(-1, id="one-second-earlier")])
def test_extend_to_an_earlier_or_equal_time_reverts(escrow, channels, chain, payer, payee, offset):
    expiry = chain.now() + DAY
    key, _ = channels.open(payer, payee, 1000, expiry=expiry)
    with reverts(escrow, "InvalidExpiry", expiry=expiry + offset):
        transact(escrow.functions.extend(key.tuple(), expiry + offset), payer)
    assert channels.state(key)[2] == expiry


def test_extend_cancels_a_close_request(escrow, channels, chain, payer, payee):
    key, _ = channels.open(payer, payee, 1000)
    transact(escrow.functions.requestClose(key.tuple()), payer)
    later = channels.state(key)[2] + 10 * DAY
    transact(escrow.functions.extend(key.tuple(), later), payer)
    chain.next_tx_at(later)
    channels.claim(key, 10)


def test_only_the_payer_may_extend(escrow, channels, chain, payer, payee):
    key, _ = channels.open(payer, payee, 1000)
    with reverts(escrow, "NotPayer", caller=payee):
        transact(escrow.functions.extend(key.tuple(), chain.now() + 90 * DAY), payee)
