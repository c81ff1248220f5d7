"""MicropayEscrow.withdraw: payouts that could not be pushed are credited and pulled later."""

import pytest
from escrow_kit import REENTER, REVERT, selector

from helpers import ETH, events, reverts, transact


@pytest.fixture
def actor_payee(deploy_helper, deployer):
    """A contract payee that refuses ETH."""
    actor = deploy_helper("Actor")
    transact(actor.functions.setMode(REVERT), deployer)
    return actor


def test_failed_push_is_credited_and_withdrawn_to_another_address(w3, escrow, channels, payer, stranger,
                                                                  actor_payee):
    key, _ = channels.open(payer, actor_payee.address, 1000)
    receipt = channels.claim(key, 600, payer)
    (deferred,) = events(escrow, receipt, "PayoutDeferred")
    assert deferred.args == {"account": actor_payee.address, "token": key.token, "amount": 600}
    assert escrow.functions.owed(actor_payee.address, key.token).call() == 600
    assert channels.state(key)[1] == 600

    before = w3.eth.get_balance(stranger)
    call = escrow.functions.withdraw(key.token, stranger)._encode_transaction_data()
    receipt = transact(actor_payee.functions.execute(escrow.address, 0, call), payer)
    assert w3.eth.get_balance(stranger) - before == 600
    assert escrow.functions.owed(actor_payee.address, key.token).call() == 0
    (withdrawn,) = events(escrow, receipt, "Withdrawn")
    assert withdrawn.args == {"account": actor_payee.address, "token": key.token, "to": stranger, "amount": 600}


def test_withdraw_to_a_reverting_address_reverts_and_keeps_the_credit(w3, escrow, channels, payer, actor_payee):
    key, _ = channels.open(payer, actor_payee.address, 1000)
    channels.claim(key, 600, payer)
    call = escrow.functions.withdraw(key.token, actor_payee.address)._encode_transaction_data()
    with reverts(escrow, "EthTransferFailed", to=actor_payee.address):  # Actor.execute bubbles the revert data
        transact(actor_payee.functions.execute(escrow.address, 0, call), payer)
    assert escrow.functions.owed(actor_payee.address, key.token).call() == 600


def test_withdraw_twice_pays_once(w3, escrow, channels, payer, stranger, actor_payee):
    key, _ = channels.open(payer, actor_payee.address, 1000)
    channels.claim(key, 600, payer)
    call = escrow.functions.withdraw(key.token, stranger)._encode_transaction_data()
    transact(actor_payee.functions.execute(escrow.address, 0, call), payer)
    before = w3.eth.get_balance(stranger)
    with reverts(escrow, "NothingToWithdraw"):
        transact(actor_payee.functions.execute(escrow.address, 0, call), payer)
    assert w3.eth.get_balance(stranger) == before


def test_reentry_through_withdraw_finds_nothing_owed(w3, escrow, channels, deployer, payer, actor_payee):
    # The credit is cleared before the push: a receiver that calls withdraw again gets nothing more.
    key, _ = channels.open(payer, actor_payee.address, 1000)
    channels.claim(key, 500, payer)
    withdraw = escrow.functions.withdraw(ETH, actor_payee.address)._encode_transaction_data()
    transact(actor_payee.functions.setHook(escrow.address, withdraw), deployer)
    transact(actor_payee.functions.setMode(REENTER), deployer)
    transact(actor_payee.functions.execute(escrow.address, 0, withdraw), deployer)  # full gas: the hook runs
    assert actor_payee.functions.reentered().call() is True
    assert actor_payee.functions.reentrySucceeded().call() is False
    assert actor_payee.functions.reentryRevertData().call() == selector("NothingToWithdraw()")
    assert w3.eth.get_balance(actor_payee.address) == 500
    assert escrow.functions.owed(actor_payee.address, ETH).call() == 0


def test_withdraw_with_nothing_owed_reverts(escrow, payer):
    with reverts(escrow, "NothingToWithdraw"):
        transact(escrow.functions.withdraw(ETH, payer), payer)


def test_withdraw_to_the_zero_address_reverts(escrow, payer):
    with reverts(escrow, "InvalidRecipient", to=ETH):
        transact(escrow.functions.withdraw(ETH, ETH), payer)
