"""ERC-20s that misbehave: no return value, false return, fee on transfer, blocklists, reentry."""

import pytest

from helpers import DAY, events, reverts, transact

MINT = 10**24


@pytest.fixture
def make_token(deploy_helper, escrow, payer):
    def _make(name):
        erc20 = deploy_helper(name)
        transact(erc20.functions.mint(payer, MINT), payer)
        transact(erc20.functions.approve(escrow.address, 2**255), payer)
        return erc20

    return _make


@pytest.mark.parametrize("name", ["NoReturnToken", "FalseReturnToken"])
def test_nonstandard_tokens_open_claim_reclaim(make_token, escrow, channels, chain, payer, payee, name):
    erc20 = make_token(name)
    expiry = chain.now() + DAY
    key, _ = channels.open(payer, payee, 1000, token=erc20.address, expiry=expiry)
    assert erc20.functions.balanceOf(escrow.address).call() == 1000
    channels.claim(key, 400, payer)
    assert erc20.functions.balanceOf(payee).call() == 400
    chain.next_tx_at(expiry + 1)
    transact(escrow.functions.reclaim(key.tuple()), payer)
    assert erc20.functions.balanceOf(payer).call() == MINT - 400
    assert erc20.functions.balanceOf(escrow.address).call() == 0


def test_false_returning_transfer_from_fails_the_open(make_token, escrow, channels, payer, payee):
    erc20 = make_token("FalseReturnToken")
    transact(erc20.functions.approve(escrow.address, 10), payer)  # too little: transferFrom returns false
    with reverts(escrow, "SafeERC20FailedOperation", token=erc20.address):
        channels.open(payer, payee, 1000, token=erc20.address)


@pytest.mark.parametrize("name", ["NoReturnToken", "FalseReturnToken", "BlockingToken"])
def test_blocked_payee_is_credited_and_payer_still_reclaims(make_token, escrow, channels, chain, payer, payee,
                                                            stranger, name):
    erc20 = make_token(name)
    expiry = chain.now() + DAY
    key, _ = channels.open(payer, payee, 1000, token=erc20.address, expiry=expiry)
    transact(erc20.functions.setBlocked(payee, True), payer)
    receipt = channels.claim(key, 600, payer)
    assert events(escrow, receipt, "PayoutDeferred")[0].args.amount == 600
    assert escrow.functions.owed(payee, erc20.address).call() == 600
    chain.next_tx_at(expiry + 1)
    transact(escrow.functions.reclaim(key.tuple()), payer)
    assert erc20.functions.balanceOf(payer).call() == MINT - 1000 + 400
    transact(escrow.functions.withdraw(erc20.address, stranger), payee)  # to an unblocked address
    assert erc20.functions.balanceOf(stranger).call() == 600


def test_fee_on_transfer_token_credits_what_arrived(make_token, escrow, channels, chain, payer, payee):
    erc20 = make_token("FeeOnTransferToken")
    expiry = chain.now() + DAY
    key, receipt = channels.open(payer, payee, 10_000, token=erc20.address, expiry=expiry)
    assert channels.state(key)[0] == 9_900
    assert events(escrow, receipt, "ChannelOpened")[0].args.deposit == 9_900
    transact(escrow.functions.topUp(key.tuple(), 1_000), payer)
    assert channels.state(key)[0] == 10_890
    channels.claim(key, 20_000, payer)  # capped at the credited deposit: the escrow stays solvent
    chain.next_tx_at(expiry + 1)
    transact(escrow.functions.reclaim(key.tuple()), payer)
    assert erc20.functions.balanceOf(escrow.address).call() == 0


def test_reentrant_token_cannot_reenter(make_token, escrow, channels, payer, payee):
    erc20 = make_token("ReentrantToken")
    key, _ = channels.open(payer, payee, 1000, token=erc20.address)
    # During the payout transfer the token calls claim again with a higher voucher.
    hook = escrow.functions.claim(*channels.voucher(key, 900))._encode_transaction_data()
    transact(erc20.functions.setHook(escrow.address, hook), payer)
    channels.claim(key, 300, payer)
    assert erc20.functions.hookSucceeded().call() is False
    assert erc20.functions.hookRevertData().call()[:4] == escrow.w3.keccak(text="ReentrancyGuardReentrantCall()")[:4]
    assert channels.state(key)[1] == 300
    assert erc20.functions.balanceOf(payee).call() == 300


def test_reentrant_token_cannot_double_count_a_deposit(make_token, escrow, channels, chain, payer, payee):
    erc20 = make_token("ReentrantToken")
    other, _ = channels.open(payer, payee, 1000, token=erc20.address)
    # While pulling the deposit for a new channel, the token tries to top up another one.
    hook = escrow.functions.topUp(other.tuple(), 500)._encode_transaction_data()
    transact(erc20.functions.setHook(escrow.address, hook), payer)
    channels.open(payer, payee, 1000, token=erc20.address)
    assert erc20.functions.hookSucceeded().call() is False
    assert erc20.functions.hookRevertData().call()[:4] == escrow.w3.keccak(text="ReentrancyGuardReentrantCall()")[:4]
    assert channels.state(other)[0] == 1000
    assert erc20.functions.balanceOf(escrow.address).call() == 2000
