"""MicropayEscrow.close: the payee ends the channel at once; the remainder returns to the payer."""

import pytest

from helpers import events, gas_cost, reverts, transact

NO_ROOT = b"\x00" * 32


def test_close_with_final_voucher(w3, escrow, channels, payer, payee):
    key, _ = channels.open(payer, payee, 1000)
    channels.claim(key, 200, payer)
    payer_before, payee_before = w3.eth.get_balance(payer), w3.eth.get_balance(payee)

    receipt = transact(escrow.functions.close(*channels.voucher(key, 650, b"\x07" * 32)), payee)

    assert w3.eth.get_balance(payee) - payee_before == 450 - gas_cost(receipt)
    assert w3.eth.get_balance(payer) - payer_before == 350
    assert channels.state(key)[1:] [0] == 650 and channels.state(key)[4] is True
    (event,) = events(escrow, receipt, "Closed")
    assert event.args == {"channelId": key.id(), "payer": payer, "payee": payee, "claimed": 650, "refund": 350,
                          "ledgerRoot": b"\x07" * 32}


def test_close_without_voucher_refunds_the_rest(w3, escrow, channels, payer, payee):
    key, _ = channels.open(payer, payee, 1000)
    channels.claim(key, 300, payer)
    before = w3.eth.get_balance(payer)
    transact(escrow.functions.close(key.tuple(), 0, NO_ROOT, b""), payee)
    assert w3.eth.get_balance(payer) - before == 700
    assert channels.state(key)[4] is True


def test_close_with_already_claimed_voucher_still_closes(w3, escrow, channels, payer, payee):
    key, _ = channels.open(payer, payee, 1000)
    channels.claim(key, 400, payer)
    before = w3.eth.get_balance(payer)
    transact(escrow.functions.close(*channels.voucher(key, 400)), payee)
    assert w3.eth.get_balance(payer) - before == 600


@pytest.mark.parametrize("caller", ["payer", "stranger"])
def test_only_the_payee_may_close(request, escrow, channels, payer, payee, caller):
    caller = request.getfixturevalue(caller)
    key, _ = channels.open(payer, payee, 1000)
    with reverts(escrow, "NotPayee", caller=caller):
        transact(escrow.functions.close(key.tuple(), 0, NO_ROOT, b""), caller)


def test_close_with_forged_voucher_reverts_and_changes_nothing(escrow, channels, payer, payee, stranger):
    key, _ = channels.open(payer, payee, 1000)
    with reverts(escrow, "InvalidSignature"):
        transact(escrow.functions.close(*channels.voucher(key, 900, signer=stranger)), payee)
    assert channels.state(key)[1] == 0 and channels.state(key)[4] is False


def test_close_twice_reverts(escrow, channels, payer, payee):
    key, _ = channels.open(payer, payee, 1000)
    transact(escrow.functions.close(key.tuple(), 0, NO_ROOT, b""), payee)
    with reverts(escrow, "ChannelFinal", channelId=key.id()):
        transact(escrow.functions.close(key.tuple(), 0, NO_ROOT, b""), payee)


def test_close_unknown_channel_reverts(escrow, channels, payer, payee):
    key, _ = channels.open(payer, payee, 1000)
    unknown = key.__class__(key.payer, key.payee, key.token, 999)
    with reverts(escrow, "ChannelNotFound", channelId=unknown.id()):
        transact(escrow.functions.close(unknown.tuple(), 0, NO_ROOT, b""), payee)
