"""MicropayEscrow.close: the payee ends the channel at once; the remainder returns to the payer."""

import pytest
from escrow_kit import ROOT, key_only, pack

from helpers import ZERO32, events, gas_cost, reverts, transact


def test_close_with_final_voucher(w3, escrow, channels, payer, payee):
    key, _ = channels.open(payer, payee, 1000)
    channels.claim(key, 200, payer)
    payer_before, payee_before = w3.eth.get_balance(payer), w3.eth.get_balance(payee)

    receipt = transact(escrow.functions.close(key.token, channels.voucher(key, 650, b"\x07" * 32)), payee)

    assert w3.eth.get_balance(payee) - payee_before == 450 - gas_cost(receipt)
    assert w3.eth.get_balance(payer) - payer_before == 350
    assert channels.state(key)[1] == 650 and channels.state(key)[4] is True
    (event,) = events(escrow, receipt, "Closed")
    assert event.args == {"channelId": key.id(), "payer": payer, "payee": payee, "claimed": 650, "refund": 350,
                          "ledgerRoot": b"\x07" * 32}


def test_close_with_a_delegated_voucher_reports_its_root(w3, escrow, channels, payer, payee, hot_key):
    key, _ = channels.open(payer, payee, 1000, signer=hot_key.address)
    receipt = transact(escrow.functions.close(key.token, channels.voucher(key, 400, b"\x08" * 32)), payee)
    (event,) = events(escrow, receipt, "Closed")
    assert (event.args.claimed, event.args.refund, event.args.ledgerRoot) == (400, 600, b"\x08" * 32)


def test_close_without_voucher_refunds_the_rest(w3, escrow, channels, payer, payee):
    key, _ = channels.open(payer, payee, 1000)
    channels.claim(key, 300, payer)
    before = w3.eth.get_balance(payer)
    receipt = transact(escrow.functions.close(key.token, key_only(key)), payee)
    assert w3.eth.get_balance(payer) - before == 700
    assert channels.state(key)[4] is True
    (event,) = events(escrow, receipt, "Closed")
    assert (event.args.claimed, event.args.refund, event.args.ledgerRoot) == (300, 700, ZERO32)


def test_close_a_delegated_channel_without_voucher(w3, escrow, channels, payer, payee, hot_key):
    key, _ = channels.open(payer, payee, 1000, signer=hot_key.address)
    before = w3.eth.get_balance(payer)
    transact(escrow.functions.close(key.token, key_only(key)), payee)
    assert w3.eth.get_balance(payer) - before == 1000
    assert channels.state(key)[4] is True


def test_close_with_already_claimed_voucher_still_closes(w3, escrow, channels, payer, payee):
    key, _ = channels.open(payer, payee, 1000)
    channels.claim(key, 400, payer)
    before = w3.eth.get_balance(payer)
    receipt = transact(escrow.functions.close(key.token, channels.voucher(key, 400)), payee)
    assert w3.eth.get_balance(payer) - before == 600
    assert events(escrow, receipt, "Closed")[0].args.ledgerRoot == ZERO32  # it redeemed nothing


@pytest.mark.parametrize("caller", ["payer", "stranger"])
def test_only_the_payee_may_close(request, escrow, channels, payer, payee, caller):
    # The payee is msg.sender: anyone else names another channel, which does not exist.
    caller = request.getfixturevalue(caller)
    key, _ = channels.open(payer, payee, 1000)
    as_caller = key.__class__(payer, caller, key.token, key.salt)
    with reverts(escrow, "ChannelNotFound", channelId=as_caller.id()):
        transact(escrow.functions.close(key.token, key_only(key)), caller)
    with reverts(escrow, "ChannelNotFound", channelId=as_caller.id()):
        transact(escrow.functions.close(key.token, channels.voucher(key, 500)), caller)
    assert channels.state(key)[1] == 0 and channels.state(key)[4] is False


def test_close_with_forged_voucher_reverts_and_changes_nothing(escrow, channels, payer, payee, stranger):
    key, _ = channels.open(payer, payee, 1000)
    signature = channels.sign(key, 900, signer=stranger)
    for packed in (pack(key, 900, ROOT, signature), pack(key, 900, ROOT, signature, contract=True)):
        with reverts(escrow, "InvalidSignature"):
            transact(escrow.functions.close(key.token, packed), payee)
    assert channels.state(key)[1] == 0 and channels.state(key)[4] is False


def test_close_emits_no_claimed_event(escrow, channels, payer, payee):
    key, _ = channels.open(payer, payee, 1000)
    receipt = transact(escrow.functions.close(key.token, channels.voucher(key, 100)), payee)
    assert events(escrow, receipt, "Claimed") == []
    assert events(escrow, receipt, "Closed")[0].args.claimed == 100


def test_close_twice_reverts(escrow, channels, payer, payee):
    key, _ = channels.open(payer, payee, 1000)
    transact(escrow.functions.close(key.token, key_only(key)), payee)
    with reverts(escrow, "ChannelFinal", channelId=key.id()):
        transact(escrow.functions.close(key.token, key_only(key)), payee)
    with reverts(escrow, "ChannelFinal", channelId=key.id()):
        transact(escrow.functions.close(key.token, channels.voucher(key, 100)), payee)


def test_close_unknown_channel_reverts(escrow, channels, payer, payee):
    key, _ = channels.open(payer, payee, 1000)
    unknown = key.__class__(key.payer, key.payee, key.token, 999)
    with reverts(escrow, "ChannelNotFound", channelId=unknown.id()):
        transact(escrow.functions.close(unknown.token, key_only(unknown)), payee)


def test_close_with_a_voucher_after_expiry_reverts_but_key_only_closes(w3, escrow, channels, chain, payer, payee):
    expiry = chain.now() + 86_400
    key, _ = channels.open(payer, payee, 1000, expiry=expiry)
    chain.next_tx_at(expiry + 1)
    with reverts(escrow, "ChannelExpired", channelId=key.id(), expiry=expiry):
        transact(escrow.functions.close(key.token, channels.voucher(key, 500)), payee)
    before = w3.eth.get_balance(payer)
    transact(escrow.functions.close(key.token, key_only(key)), payee)  # giving up is always allowed
    assert w3.eth.get_balance(payer) - before == 1000
