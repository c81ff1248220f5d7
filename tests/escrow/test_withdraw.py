"""MicropayEscrow.withdraw: payouts that could not be pushed are credited and pulled later."""

import pytest

from helpers import events, reverts, transact

REVERT_MODE = 1


@pytest.fixture
def actor_payee(deploy_helper, deployer):
    """A contract payee that refuses ETH."""
    actor = deploy_helper("Actor")
    transact(actor.functions.setMode(REVERT_MODE), deployer)
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


def test_withdraw_with_nothing_owed_reverts(escrow, payer):
    with reverts(escrow, "NothingToWithdraw"):
        transact(escrow.functions.withdraw("0x" + "00" * 20, payer), payer)


def test_withdraw_to_the_zero_address_reverts(escrow, payer):
    zero = "0x" + "00" * 20
    with reverts(escrow, "InvalidRecipient", to=zero):
        transact(escrow.functions.withdraw(zero, zero), payer)
