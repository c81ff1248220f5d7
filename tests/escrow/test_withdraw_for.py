"""MicropayEscrow.withdrawFor: anyone pushes an account's credited payouts to the account itself,
with all the gas the transaction carries."""

import pytest
from escrow_kit import REVERT

from helpers import ETH, events, gas_cost, reverts, reverts_with_reason, transact


@pytest.fixture
def bookkeeper(deploy_helper):
    """A payee contract whose receive() needs more than the escrow's 30,000-gas push."""
    return deploy_helper("Bookkeeper")


def test_anyone_pushes_the_credit_to_the_account_with_full_gas(w3, escrow, channels, payer, stranger, bookkeeper):
    key, _ = channels.open(payer, bookkeeper.address, 1000)
    receipt = channels.claim(key, 600, payer)
    assert events(escrow, receipt, "PayoutDeferred")[0].args.amount == 600  # the capped push failed
    assert bookkeeper.functions.count().call() == 0

    stranger_before = w3.eth.get_balance(stranger)
    receipt = transact(escrow.functions.withdrawFor(bookkeeper.address, ETH), stranger)

    assert w3.eth.get_balance(bookkeeper.address) == 600
    assert bookkeeper.functions.entries(0).call() == [escrow.address, 600]  # its receive() ran, in full
    assert escrow.functions.owed(bookkeeper.address, ETH).call() == 0
    assert stranger_before - w3.eth.get_balance(stranger) == gas_cost(receipt)  # the caller gets nothing
    (withdrawn,) = events(escrow, receipt, "Withdrawn")
    assert withdrawn.args == {"account": bookkeeper.address, "token": ETH, "to": bookkeeper.address, "amount": 600}


def test_second_push_finds_nothing(escrow, channels, payer, stranger, bookkeeper):
    key, _ = channels.open(payer, bookkeeper.address, 1000)
    channels.claim(key, 600, payer)
    transact(escrow.functions.withdrawFor(bookkeeper.address, ETH), stranger)
    with reverts(escrow, "NothingToWithdraw"):
        transact(escrow.functions.withdrawFor(bookkeeper.address, ETH), stranger)
    assert bookkeeper.functions.count().call() == 1


def test_nothing_owed_reverts(escrow, payee, stranger):
    with reverts(escrow, "NothingToWithdraw"):
        transact(escrow.functions.withdrawFor(payee, ETH), stranger)


def test_credit_in_one_token_is_not_withdrawn_in_another(escrow, token, channels, payer, stranger, bookkeeper):
    key, _ = channels.open(payer, bookkeeper.address, 1000)
    channels.claim(key, 600, payer)
    with reverts(escrow, "NothingToWithdraw"):
        transact(escrow.functions.withdrawFor(bookkeeper.address, token.address), stranger)
    assert escrow.functions.owed(bookkeeper.address, ETH).call() == 600


def test_an_account_that_never_accepts_keeps_its_credit(escrow, channels, deploy_helper, deployer, payer, stranger):
    actor = deploy_helper("Actor")
    transact(actor.functions.setMode(REVERT), deployer)
    key, _ = channels.open(payer, actor.address, 1000)
    channels.claim(key, 600, payer)
    with reverts(escrow, "EthTransferFailed", to=actor.address):
        transact(escrow.functions.withdrawFor(actor.address, ETH), stranger)
    assert escrow.functions.owed(actor.address, ETH).call() == 600


def test_token_credit_is_pushed_once_the_account_can_receive(escrow, deploy_helper, channels, payer, payee,
                                                             stranger):
    erc20 = deploy_helper("BlockingToken")
    transact(erc20.functions.mint(payer, 10**6), payer)
    transact(erc20.functions.approve(escrow.address, 10**6), payer)
    key, _ = channels.open(payer, payee, 1000, token=erc20.address)
    transact(erc20.functions.setBlocked(payee, True), payer)
    channels.claim(key, 700, stranger)
    assert escrow.functions.owed(payee, erc20.address).call() == 700
    with reverts_with_reason("blocked"):  # still blocked: the push reverts, the credit stays
        transact(escrow.functions.withdrawFor(payee, erc20.address), stranger)
    transact(erc20.functions.setBlocked(payee, False), payer)

    receipt = transact(escrow.functions.withdrawFor(payee, erc20.address), stranger)

    assert erc20.functions.balanceOf(payee).call() == 700
    assert erc20.functions.balanceOf(stranger).call() == 0
    assert escrow.functions.owed(payee, erc20.address).call() == 0
    (withdrawn,) = events(escrow, receipt, "Withdrawn")
    assert withdrawn.args == {"account": payee, "token": erc20.address, "to": payee, "amount": 700}
