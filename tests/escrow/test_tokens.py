"""ERC-20s that misbehave: no return value, false return, fee on transfer, blocklists, reentry."""

import pytest
from escrow_kit import key_only, selector

from helpers import DAY, ZERO32, events, reverts, transact

MINT = 10**24


@pytest.fixture
def make_token(deploy_helper, escrow, payer):
    def _make(name, holder=payer):
        erc20 = deploy_helper(name)
        transact(erc20.functions.mint(holder, MINT), payer)
        if holder == payer:
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
    transact(escrow.functions.reclaim(*key.payer_args()), payer)
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
    transact(escrow.functions.reclaim(*key.payer_args()), payer)
    assert erc20.functions.balanceOf(payer).call() == MINT - 1000 + 400
    transact(escrow.functions.withdraw(erc20.address, stranger), payee)  # to an unblocked address
    assert erc20.functions.balanceOf(stranger).call() == 600


def test_fee_on_transfer_token_credits_what_arrived(make_token, escrow, channels, chain, payer, payee):
    erc20 = make_token("FeeOnTransferToken")
    expiry = chain.now() + DAY
    key, receipt = channels.open(payer, payee, 10_000, token=erc20.address, expiry=expiry)
    assert channels.state(key)[0] == 9_900
    assert events(escrow, receipt, "ChannelOpened")[0].args.deposit == 9_900
    receipt = transact(escrow.functions.topUp(*key.payer_args(), 1_000), payer)
    assert channels.state(key)[0] == 10_890
    assert events(escrow, receipt, "ToppedUp")[0].args.amount == 990
    channels.claim(key, 20_000, payer)  # capped at the credited deposit: the escrow stays solvent
    chain.next_tx_at(expiry + 1)
    transact(escrow.functions.reclaim(*key.payer_args()), payer)
    assert erc20.functions.balanceOf(escrow.address).call() == 0


# --- reentry: a token that calls out from inside its transfers ------------------------------------

@pytest.fixture
def actor_payer(deploy_helper, make_token, escrow, deployer):
    """A contract payer (Actor) holding a ReentrantToken it approved the escrow for: the token's
    hook can then make the payer itself call the escrow, mid-transfer."""
    actor = deploy_helper("Actor")
    erc20 = make_token("ReentrantToken", holder=actor.address)
    approve = erc20.functions.approve(escrow.address, 2**255)._encode_transaction_data()
    transact(actor.functions.execute(erc20.address, 0, approve), deployer)
    return actor, erc20


def as_actor(escrow, actor, call):
    """Calldata making ``actor`` call ``call`` on the escrow."""
    return actor.functions.execute(escrow.address, 0, call._encode_transaction_data())._encode_transaction_data()


def open_token(escrow, actor, erc20, payee, salt, amount, expiry):
    return escrow.functions.openToken(payee, erc20.address, "0x" + "00" * 20, salt, amount, expiry, 3_600, ZERO32)


def test_reentrant_top_up_while_opening_hits_the_guard(escrow, chain, deployer, payee, actor_payer):
    actor, erc20 = actor_payer
    expiry = chain.now() + DAY
    transact(actor.functions.execute(escrow.address, 0, open_token(
        escrow, actor, erc20, payee, 1, 1000, expiry)._encode_transaction_data()), deployer)
    first = escrow.functions.channelId((actor.address, payee, erc20.address, 1, "0x" + "00" * 20)).call()
    # While the escrow pulls the deposit of a new channel, the token makes the payer top up the first.
    hook = as_actor(escrow, actor, escrow.functions.topUp(payee, erc20.address, 1, "0x" + "00" * 20, 500))
    transact(erc20.functions.setHook(actor.address, hook), deployer)

    transact(actor.functions.execute(escrow.address, 0, open_token(
        escrow, actor, erc20, payee, 2, 1000, expiry)._encode_transaction_data()), deployer)

    assert erc20.functions.hookSucceeded().call() is False
    assert erc20.functions.hookRevertData().call() == selector("Reentrancy()")
    assert escrow.functions.channel(first).call()[0] == 1000
    assert erc20.functions.balanceOf(escrow.address).call() == 2000


def test_reentrant_open_while_topping_up_hits_the_guard(escrow, chain, deployer, payee, actor_payer):
    actor, erc20 = actor_payer
    expiry = chain.now() + DAY
    transact(actor.functions.execute(escrow.address, 0, open_token(
        escrow, actor, erc20, payee, 1, 1000, expiry)._encode_transaction_data()), deployer)
    hook = as_actor(escrow, actor, open_token(escrow, actor, erc20, payee, 2, 700, expiry))
    transact(erc20.functions.setHook(actor.address, hook), deployer)

    top_up = escrow.functions.topUp(payee, erc20.address, 1, "0x" + "00" * 20, 300)._encode_transaction_data()
    transact(actor.functions.execute(escrow.address, 0, top_up), deployer)

    assert erc20.functions.hookRevertData().call() == selector("Reentrancy()")
    second = escrow.functions.channelId((actor.address, payee, erc20.address, 2, "0x" + "00" * 20)).call()
    assert escrow.functions.channel(second).call()[2] == 0  # never opened
    first = escrow.functions.channelId((actor.address, payee, erc20.address, 1, "0x" + "00" * 20)).call()
    assert escrow.functions.channel(first).call()[0] == 1300
    assert erc20.functions.balanceOf(escrow.address).call() == 1300


@pytest.mark.parametrize("amount", [100, 900])  # below and above what the top-up brings in
def test_no_token_payout_inside_a_top_up(make_token, escrow, channels, payer, payee, stranger, amount):
    # The deposit grows by what the escrow's balance grew by, so no token may leave the escrow
    # while a top-up's transferFrom runs: a claim made inside it fails with Reentrancy(), and the
    # top-up is credited in full.
    erc20 = make_token("ReentrantToken")
    key, _ = channels.open(payer, payee, 1000, token=erc20.address)
    hook = escrow.functions.claim(payee, erc20.address, channels.voucher(key, amount))._encode_transaction_data()
    transact(erc20.functions.setHook(escrow.address, hook), payer)

    receipt = transact(escrow.functions.topUp(*key.payer_args(), 500), payer)

    assert erc20.functions.hookSucceeded().call() is False
    assert erc20.functions.hookRevertData().call() == selector("Reentrancy()")
    assert channels.state(key)[:2] == (1500, 0)
    assert events(escrow, receipt, "ToppedUp")[0].args.amount == 500
    assert erc20.functions.balanceOf(payee).call() == 0
    channels.claim(key, amount, stranger)  # the voucher still pays, outside the top-up
    assert erc20.functions.balanceOf(payee).call() == amount
    assert erc20.functions.balanceOf(escrow.address).call() == 1500 - amount  # solvent


def test_close_inside_a_top_up_fails(deploy_helper, make_token, escrow, channels, payer):
    # The payee (a contract) tries to close the channel while its deposit is being topped up: the
    # close would pay tokens out inside the transferFrom, so it fails with Reentrancy() and the
    # top-up stands, credited in full, on a channel still open.
    payee = deploy_helper("Actor")
    erc20 = make_token("ReentrantToken")
    key, _ = channels.open(payer, payee.address, 1000, token=erc20.address)
    channels.claim(key, 900, payer)
    hook = as_actor(escrow, payee, escrow.functions.close(erc20.address, key_only(key)))
    transact(erc20.functions.setHook(payee.address, hook), payer)
    transact(escrow.functions.topUp(*key.payer_args(), 500), payer)
    assert erc20.functions.hookSucceeded().call() is False
    assert erc20.functions.hookRevertData().call() == selector("Reentrancy()")
    assert channels.state(key)[:2] == (1500, 900) and channels.state(key)[4] is False
    assert erc20.functions.balanceOf(escrow.address).call() == 600


def test_reentrant_claim_during_a_payout_pays_only_what_vouchers_allow(make_token, escrow, channels, payer, payee):
    erc20 = make_token("ReentrantToken")
    key, _ = channels.open(payer, payee, 1000, token=erc20.address)
    # During the payout transfer the token calls claim again with a higher voucher.
    hook = escrow.functions.claim(payee, erc20.address, channels.voucher(key, 900))._encode_transaction_data()
    transact(erc20.functions.setHook(escrow.address, hook), payer)
    channels.claim(key, 300, payer)
    assert erc20.functions.hookSucceeded().call() is True  # the claim was recorded before the payout
    assert channels.state(key)[1] == 900
    assert erc20.functions.balanceOf(payee).call() == 900
    assert erc20.functions.balanceOf(escrow.address).call() == 100
