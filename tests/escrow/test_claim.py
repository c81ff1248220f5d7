"""MicropayEscrow.claim: redeem without closing, pay only the increase, anyone may submit."""

import pytest
from escrow_kit import ROOT, key_only, pack

from helpers import DAY, events, gas_cost, reverts, transact


def test_claim_pays_payee_and_keeps_channel_open(w3, escrow, channels, payer, payee):
    key, _ = channels.open(payer, payee, 10**18)
    before = w3.eth.get_balance(payee)

    receipt = channels.claim(key, 3 * 10**17, root=b"\x05" * 32)

    assert w3.eth.get_balance(payee) - before == 3 * 10**17 - gas_cost(receipt)
    deposit, claimed, _, _, closed = channels.state(key)
    assert (deposit, claimed, closed) == (10**18, 3 * 10**17, False)
    (event,) = events(escrow, receipt, "Claimed")
    assert event.args == {"channelId": key.id(), "claimed": 3 * 10**17, "ledgerRoot": b"\x05" * 32}
    assert len(receipt.logs[0].topics) == 2  # the signature and the channel id: no party topics


def test_claim_returns_the_amount_paid(escrow, channels, payer, payee, relayer):
    key, _ = channels.open(payer, payee, 1000)
    channels.claim(key, 100, relayer)
    paid = escrow.functions.claim(payee, key.token, channels.voucher(key, 250)).call({"from": relayer})
    assert paid == 150


def test_later_voucher_pays_only_the_difference(w3, escrow, channels, payer, payee, relayer):
    key, _ = channels.open(payer, payee, 10**18)
    channels.claim(key, 100, relayer)
    before = w3.eth.get_balance(payee)
    receipt = channels.claim(key, 250, relayer)
    assert w3.eth.get_balance(payee) - before == 150
    assert channels.state(key)[1] == 250
    assert events(escrow, receipt, "Claimed")[0].args.claimed == 250


def test_relayer_pays_gas_and_payee_gets_the_funds(w3, escrow, channels, payer, payee, relayer):
    key, _ = channels.open(payer, payee, 10**18)
    payee_before, relayer_before = w3.eth.get_balance(payee), w3.eth.get_balance(relayer)
    receipt = channels.claim(key, 10**17, relayer)
    assert w3.eth.get_balance(payee) - payee_before == 10**17
    assert relayer_before - w3.eth.get_balance(relayer) == gas_cost(receipt)


def test_voucher_above_deposit_pays_the_deposit(w3, channels, payer, payee, relayer):
    key, _ = channels.open(payer, payee, 1000)
    before = w3.eth.get_balance(payee)
    channels.claim(key, 5000, relayer)
    assert w3.eth.get_balance(payee) - before == 1000
    assert channels.state(key)[1] == 1000


def test_same_voucher_twice_reverts_and_pays_nothing(w3, escrow, channels, payer, payee, relayer):
    key, _ = channels.open(payer, payee, 1000)
    channels.claim(key, 600, relayer)
    before = w3.eth.get_balance(payee)
    with reverts(escrow, "NothingToClaim", channelId=key.id(), claimed=600):
        channels.claim(key, 600, relayer)
    assert w3.eth.get_balance(payee) == before
    assert channels.state(key)[1] == 600


def test_lower_voucher_after_higher_reverts(escrow, channels, payer, payee, relayer):
    key, _ = channels.open(payer, payee, 1000)
    channels.claim(key, 600, relayer)
    with reverts(escrow, "NothingToClaim", channelId=key.id(), claimed=600):
        channels.claim(key, 500, relayer)


def test_voucher_signed_by_someone_else_reverts(escrow, channels, payer, payee, stranger):
    key, _ = channels.open(payer, payee, 1000)
    signature = channels.sign(key, 500, signer=stranger)
    for packed in (pack(key, 500, ROOT, signature), pack(key, 500, ROOT, signature, contract=True)):
        with reverts(escrow, "InvalidSignature"):
            transact(escrow.functions.claim(payee, key.token, packed), payee)
    assert channels.state(key)[1] == 0


def test_voucher_signed_by_the_payee_reverts(escrow, channels, payer, payee):
    key, _ = channels.open(payer, payee, 1000)
    with reverts(escrow, "InvalidSignature"):
        transact(escrow.functions.claim(payee, key.token, pack(key, 500, ROOT, channels.sign(key, 500, signer=payee))),
                 payee)


@pytest.mark.parametrize("tamper", [
    pytest.param(lambda amount, root: (amount + 1, root), id="amount"),
    pytest.param(lambda amount, root: (amount, b"\x99" * 32), id="ledger-root"),
])
def test_tampered_voucher_reverts(escrow, channels, payer, payee, tamper):
    key, _ = channels.open(payer, payee, 1000)
    signature = channels.sign(key, 500, ROOT)
    with reverts(escrow, "InvalidSignature"):
        transact(escrow.functions.claim(payee, key.token, pack(key, *tamper(500, ROOT), signature)), payee)
    assert channels.state(key)[1] == 0


def test_unknown_channel_reverts(escrow, channels, payer, payee):
    key, _ = channels.open(payer, payee, 1000)
    unknown = key.__class__(key.payer, key.payee, key.token, key.salt + 100)
    with reverts(escrow, "ChannelNotFound", channelId=unknown.id()):
        transact(escrow.functions.claim(payee, key.token, channels.voucher(unknown, 10)), payee)


def test_voucher_claimed_in_another_token_hits_another_channel(escrow, token, channels, payer, payee):
    # The token is a claim argument, committed in the id: an ETH voucher names no token channel.
    key, _ = channels.open(payer, payee, 1000)
    wrong = key.__class__(key.payer, key.payee, token.address, key.salt)
    with reverts(escrow, "ChannelNotFound", channelId=wrong.id()):
        transact(escrow.functions.claim(payee, token.address, channels.voucher(key, 10)), payee)


def test_claim_at_expiry_succeeds(channels, chain, payer, payee, relayer):
    expiry = chain.now() + DAY
    key, _ = channels.open(payer, payee, 1000, expiry=expiry)
    chain.next_tx_at(expiry)
    channels.claim(key, 100, relayer)
    assert channels.state(key)[1] == 100


def test_claim_one_second_after_expiry_reverts(escrow, channels, chain, payer, payee, relayer):
    expiry = chain.now() + DAY
    key, _ = channels.open(payer, payee, 1000, expiry=expiry)
    chain.next_tx_at(expiry + 1)
    with reverts(escrow, "ChannelExpired", channelId=key.id(), expiry=expiry):
        channels.claim(key, 100, relayer)
    assert channels.state(key)[1] == 0


def test_claim_on_closed_channel_reverts(escrow, channels, payer, payee):
    key, _ = channels.open(payer, payee, 1000)
    transact(escrow.functions.close(key.token, key_only(key)), payee)
    with reverts(escrow, "ChannelFinal", channelId=key.id()):
        channels.claim(key, 100)
