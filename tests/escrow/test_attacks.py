"""Each attack of REFERENCE §3 against the escrow, as its own test."""

import pytest
from eth_tester.exceptions import TransactionFailed

from helpers import DAY, ETH, HOUR, Key, high_s, reverts, transact

ACCEPT, REVERT, REENTER, BURN_GAS = 0, 1, 2, 3


# --- replay -------------------------------------------------------------------------------

def test_voucher_for_another_chain_id_is_rejected(w3, escrow, channels, payer, payee):
    key, _ = channels.open(payer, payee, 1000)
    with reverts(escrow, "InvalidSignature"):
        transact(escrow.functions.claim(*channels.voucher(key, 500, chain_id=w3.eth.chain_id + 1)), payee)


def test_voucher_for_another_escrow_is_rejected(escrow, other_escrow, channels, payer, payee):
    key, _ = channels.open(payer, payee, 1000)
    # The same channel key is opened on a second escrow; its voucher must not work on the first.
    transact(other_escrow.functions.open(payee, key.salt + 1, channels.chain.now() + DAY, HOUR), payer, 1000)
    with reverts(escrow, "InvalidSignature"):
        transact(escrow.functions.claim(*channels.voucher(key, 500, escrow=other_escrow.address)), payee)


def test_voucher_for_another_channel_is_rejected(escrow, channels, payer, payee):
    first, _ = channels.open(payer, payee, 1000)
    second, _ = channels.open(payer, payee, 1000)
    _, amount, root, signature = channels.voucher(first, 500)
    with reverts(escrow, "InvalidSignature"):
        transact(escrow.functions.claim(second.tuple(), amount, root, signature), payee)


def reclaimed_channel(escrow, channels, chain, payer, payee):
    """A channel (salt 77) with a voucher for 900 signed while it was live, then reclaimed."""
    expiry = chain.now() + DAY
    key, _ = channels.open(payer, payee, 1000, salt=77, expiry=expiry)
    old_voucher = channels.voucher(key, 900)
    chain.next_tx_at(expiry + 1)
    transact(escrow.functions.reclaim(key.tuple()), payer)
    return key, old_voucher


def test_closed_channel_id_can_never_be_reopened(escrow, channels, chain, payer, payee):
    key, _ = reclaimed_channel(escrow, channels, chain, payer, payee)
    with reverts(escrow, "ChannelExists", channelId=key.id()):
        channels.open(payer, payee, 1000, salt=77)


def test_voucher_of_a_closed_channel_pays_nothing(escrow, channels, chain, payer, payee):
    key, old_voucher = reclaimed_channel(escrow, channels, chain, payer, payee)
    with reverts(escrow, "ChannelFinal"):
        transact(escrow.functions.claim(*old_voucher), payee)
    assert channels.state(key)[1] == 0


# --- mempool copy ---------------------------------------------------------------------------

def test_copied_voucher_rewritten_to_pay_the_thief_matches_no_channel(escrow, channels, payer, payee, stranger):
    key, _ = channels.open(payer, payee, 1000)
    _, amount, root, signature = channels.voucher(key, 500)
    # The thief rewrites the payee to itself: the id changes, so no such channel exists.
    stolen = Key(payer, stranger, ETH, key.salt)
    with reverts(escrow, "ChannelNotFound"):
        transact(escrow.functions.claim(stolen.tuple(), amount, root, signature), stranger)
    assert channels.state(key)[1] == 0


def test_copied_voucher_submitted_unchanged_pays_the_payee(w3, escrow, channels, payer, payee, stranger):
    key, _ = channels.open(payer, payee, 1000)
    # Submitting the voucher unchanged (front-running) pays the payee, never the submitter.
    payee_before, thief_before = w3.eth.get_balance(payee), w3.eth.get_balance(stranger)
    transact(escrow.functions.claim(*channels.voucher(key, 500)), stranger)
    assert w3.eth.get_balance(payee) - payee_before == 500
    assert w3.eth.get_balance(stranger) < thief_before


# --- malleable and malformed signatures -----------------------------------------------------------

def test_high_s_twin_of_a_valid_signature_is_rejected(escrow, channels, payer, payee):
    key, _ = channels.open(payer, payee, 1000)
    key_tuple, amount, root, signature = channels.voucher(key, 500)
    with reverts(escrow, "InvalidSignature"):
        transact(escrow.functions.claim(key_tuple, amount, root, high_s(signature)), payee)
    transact(escrow.functions.claim(key_tuple, amount, root, signature), payee)  # the canonical one works


def test_64_byte_compact_signature_is_rejected(escrow, channels, payer, payee):
    key, _ = channels.open(payer, payee, 1000)
    key_tuple, amount, root, signature = channels.voucher(key, 500)
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    compact = r + ((v - 27) << 255 | s).to_bytes(32, "big")  # EIP-2098 form of the same signature
    with reverts(escrow, "InvalidSignature"):
        transact(escrow.functions.claim(key_tuple, amount, root, compact), payee)


@pytest.mark.parametrize("length", [0, 1, 64, 66, 130])
def test_signature_of_wrong_length_is_rejected(escrow, channels, payer, payee, length):
    key, _ = channels.open(payer, payee, 1000)
    with reverts(escrow, "InvalidSignature"):
        transact(escrow.functions.claim(key.tuple(), 500, b"\x11" * 32, b"\x01" * length), payee)


@pytest.mark.parametrize("v", [0, 1, 26, 29])
def test_v_outside_27_28_is_rejected(escrow, channels, payer, payee, v):
    key, _ = channels.open(payer, payee, 1000)
    key_tuple, amount, root, signature = channels.voucher(key, 500)
    with reverts(escrow, "InvalidSignature"):
        transact(escrow.functions.claim(key_tuple, amount, root, signature[:64] + bytes([v])), payee)


def test_signature_recovering_to_zero_is_rejected(escrow, channels, payer, payee):
    key, _ = channels.open(payer, payee, 1000)
    garbage = b"\x00" * 32 + (1).to_bytes(32, "big") + bytes([27])  # r = 0: ecrecover returns address(0)
    with reverts(escrow, "InvalidSignature"):
        transact(escrow.functions.claim(key.tuple(), 500, b"\x11" * 32, garbage), payee)


# --- the payer's exit cannot cheat the payee ----------------------------------------------------

def test_payer_cannot_end_the_channel_before_the_window_with_an_old_voucher(w3, escrow, channels, chain, payer,
                                                                          payee):
    key, _ = channels.open(payer, payee, 1000, window=HOUR)
    old = channels.voucher(key, 100)
    latest = channels.voucher(key, 800)
    # The payer settles the old voucher itself and starts its exit...
    transact(escrow.functions.claim(*old), payer)
    transact(escrow.functions.requestClose(key.tuple()), payer)
    expiry = channels.state(key)[2]
    with reverts(escrow, "ChannelNotExpired"):
        transact(escrow.functions.reclaim(key.tuple()), payer)
    with reverts(escrow, "NotPayee"):
        transact(escrow.functions.close(key.tuple(), 0, b"\x00" * 32, b""), payer)
    # ...and the payee still redeems the latest one at the last second of the window.
    chain.next_tx_at(expiry)
    before = w3.eth.get_balance(payee)
    transact(escrow.functions.claim(*latest), w3.eth.accounts[3])  # a relayer submits it
    assert w3.eth.get_balance(payee) - before == 700
    chain.next_tx_at(expiry + 1)
    before = w3.eth.get_balance(payer)
    receipt = transact(escrow.functions.reclaim(key.tuple()), payer)
    assert w3.eth.get_balance(payer) - before == 200 - receipt.gasUsed * receipt.effectiveGasPrice


# --- reentrancy and hostile receivers ------------------------------------------------------------

def test_reentrant_eth_receiver_is_paid_exactly_once(w3, escrow, channels, deploy_helper, deployer, payer):
    actor = deploy_helper("Actor")
    key, _ = channels.open(payer, actor.address, 1000)
    reenter = escrow.functions.claim(*channels.voucher(key, 900))._encode_transaction_data()
    transact(actor.functions.setHook(escrow.address, reenter), deployer)
    transact(actor.functions.setMode(REENTER), deployer)
    transact(escrow.functions.claim(*channels.voucher(key, 500)), payer)
    # The capped push leaves too little gas for the hook, so the payout is credited instead.
    assert w3.eth.get_balance(actor.address) + escrow.functions.owed(actor.address, ETH).call() == 500
    assert channels.state(key)[1] == 500


def test_reentry_through_withdraw_hits_the_guard(w3, escrow, channels, deploy_helper, deployer, payer):
    actor = deploy_helper("Actor")
    transact(actor.functions.setMode(REVERT), deployer)
    key, _ = channels.open(payer, actor.address, 1000)
    transact(escrow.functions.claim(*channels.voucher(key, 500)), payer)
    assert escrow.functions.owed(actor.address, ETH).call() == 500
    withdraw = escrow.functions.withdraw(ETH, actor.address)._encode_transaction_data()
    transact(actor.functions.setHook(escrow.address, withdraw), deployer)
    transact(actor.functions.setMode(REENTER), deployer)
    transact(actor.functions.execute(escrow.address, 0, withdraw), deployer)  # full gas: the hook runs
    assert actor.functions.reentered().call() is True
    assert actor.functions.reentrySucceeded().call() is False
    assert actor.functions.reentryRevertData().call()[:4] == escrow.w3.keccak(text="ReentrancyGuardReentrantCall()")[:4]
    assert w3.eth.get_balance(actor.address) == 500
    assert escrow.functions.owed(actor.address, ETH).call() == 0


def test_reverting_payee_does_not_lock_the_payers_refund(w3, escrow, channels, deploy_helper, deployer, chain,
                                                         payer):
    actor = deploy_helper("Actor")
    transact(actor.functions.setMode(REVERT), deployer)
    key, _ = channels.open(payer, actor.address, 1000, expiry=chain.now() + DAY)
    transact(escrow.functions.claim(*channels.voucher(key, 300)), payer)  # credited, not pushed
    assert escrow.functions.owed(actor.address, ETH).call() == 300
    chain.next_tx_at(chain.now() + DAY + 1)
    before = w3.eth.get_balance(payer)
    receipt = transact(escrow.functions.reclaim(key.tuple()), payer)
    assert w3.eth.get_balance(payer) - before == 700 - receipt.gasUsed * receipt.effectiveGasPrice


def test_reverting_payer_does_not_block_the_payees_close(w3, escrow, channels, deploy_helper, deployer, payee):
    actor = deploy_helper("Actor")  # a contract wallet as payer that refuses refunds
    salt, expiry = 5, channels.chain.now() + 30 * DAY
    transact(actor.functions.execute(escrow.address, 1000, escrow.functions.open(
        payee, salt, expiry, HOUR)._encode_transaction_data()), deployer, value=1000)
    transact(actor.functions.setMode(REVERT), deployer)
    key = Key(actor.address, payee, ETH, salt)
    digest = escrow.functions.voucherDigest(key.id(), 400, b"\x11" * 32).call()
    assert digest  # the actor cannot sign; close without a voucher still must not be blocked
    transact(escrow.functions.close(key.tuple(), 0, b"\x00" * 32, b""), payee)
    assert escrow.functions.owed(actor.address, ETH).call() == 1000
    assert channels.state(key)[4] is True


def test_gas_burning_payer_cannot_grief_the_close(escrow, channels, deploy_helper, deployer, payee):
    actor = deploy_helper("Actor")
    salt = 6
    transact(actor.functions.execute(escrow.address, 1000, escrow.functions.open(
        payee, salt, channels.chain.now() + 30 * DAY, HOUR)._encode_transaction_data()), deployer, value=1000)
    transact(actor.functions.setMode(BURN_GAS), deployer)
    key = Key(actor.address, payee, ETH, salt)
    receipt = transact(escrow.functions.close(key.tuple(), 0, b"\x00" * 32, b""), payee)
    assert receipt.gasUsed < 120_000  # the push is capped; the refund is credited instead
    assert escrow.functions.owed(actor.address, ETH).call() == 1000


# --- accounting ---------------------------------------------------------------------------------

def test_plain_eth_cannot_be_sent_to_the_escrow(w3, escrow, stranger):
    before = w3.eth.get_balance(escrow.address)
    with pytest.raises(TransactionFailed):  # no receive(): plain ETH cannot be sent to the escrow
        w3.eth.send_transaction({"from": stranger, "to": escrow.address, "value": 1})
    assert w3.eth.get_balance(escrow.address) == before


def test_tokens_sent_straight_to_the_escrow_change_no_channel(escrow, token, channels, chain, payer, payee,
                                                              stranger):
    expiry = chain.now() + DAY
    key, _ = channels.open(payer, payee, 1000, token=token.address, expiry=expiry)
    transact(token.functions.transfer(escrow.address, 10**9), stranger)
    assert channels.state(key)[0] == 1000
    channels.claim(key, 5000, payer)  # voucher above the deposit pays the deposit, not the donation
    assert channels.state(key)[1] == 1000
    chain.next_tx_at(expiry + 1)
    before = token.functions.balanceOf(payer).call()
    transact(escrow.functions.reclaim(key.tuple()), payer)
    assert token.functions.balanceOf(payer).call() == before  # nothing left to refund
