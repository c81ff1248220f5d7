"""MicropayEscrow.openWithPermit: approval by ERC-2612 signature, robust to a front-run permit."""

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from helpers import DAY, ETH, HOUR, ZERO32, events, reverts, transact


@pytest.fixture
def fresh_owner(accounts, token, escrow):
    owner = accounts[6]
    transact(token.functions.mint(owner, 10**12), owner)
    return owner


def permit(w3, token, key_of, owner, spender, value, deadline):
    typed = {
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                             {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}],
            "Permit": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"},
                       {"name": "value", "type": "uint256"}, {"name": "nonce", "type": "uint256"},
                       {"name": "deadline", "type": "uint256"}],
        },
        "primaryType": "Permit",
        "domain": {"name": "Test USD", "version": "1", "chainId": w3.eth.chain_id,
                   "verifyingContract": token.address},
        "message": {"owner": owner, "spender": spender, "value": value,
                    "nonce": token.functions.nonces(owner).call(), "deadline": deadline},
    }
    signed = Account.sign_message(encode_typed_data(full_message=typed), key_of(owner))
    return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")


def test_open_with_permit_needs_no_prior_approve(w3, escrow, token, chain, key_of, fresh_owner, payee):
    deadline = chain.now() + DAY
    v, r, s = permit(w3, token, key_of, fresh_owner, escrow.address, 5000, deadline)
    receipt = transact(escrow.functions.openWithPermit(
        payee, token.address, ETH, 1, 5000, chain.now() + 30 * DAY, HOUR, ZERO32, deadline, v, r, s), fresh_owner)
    (event,) = events(escrow, receipt, "ChannelOpened")
    assert event.args.deposit == 5000 and event.args.token == token.address
    assert token.functions.balanceOf(escrow.address).call() >= 5000


def test_front_run_permit_does_not_block_the_open(w3, escrow, token, chain, key_of, fresh_owner, payee, stranger):
    deadline = chain.now() + DAY
    v, r, s = permit(w3, token, key_of, fresh_owner, escrow.address, 5000, deadline)
    # An observer submits the permit first: the nonce is used, the allowance is in place.
    transact(token.functions.permit(fresh_owner, escrow.address, 5000, deadline, v, r, s), stranger)
    receipt = transact(escrow.functions.openWithPermit(
        payee, token.address, ETH, 1, 5000, chain.now() + 30 * DAY, HOUR, ZERO32, deadline, v, r, s), fresh_owner)
    assert events(escrow, receipt, "ChannelOpened")[0].args.deposit == 5000


def test_bad_permit_without_allowance_reverts(w3, escrow, token, chain, key_of, fresh_owner, payee):
    deadline = chain.now() + DAY
    v, r, s = permit(w3, token, key_of, fresh_owner, escrow.address, 1, deadline)  # permits too little
    with reverts(token, "ERC20InsufficientAllowance"):
        transact(escrow.functions.openWithPermit(
            payee, token.address, ETH, 1, 5000, chain.now() + 30 * DAY, HOUR, ZERO32, deadline, v, r, s), fresh_owner)


def test_open_with_permit_rejects_eth(escrow, chain, fresh_owner, payee):
    with reverts(escrow, "InvalidToken"):
        transact(escrow.functions.openWithPermit(
            payee, ETH, ETH, 1, 5000, chain.now() + 30 * DAY, HOUR, ZERO32, 0, 27, ZERO32, ZERO32), fresh_owner)


def test_open_with_permit_names_a_signer_and_terms(w3, escrow, token, chain, key_of, fresh_owner, payee, hot_key):
    deadline = chain.now() + DAY
    v, r, s = permit(w3, token, key_of, fresh_owner, escrow.address, 5000, deadline)
    terms = b"\x42" * 32
    receipt = transact(escrow.functions.openWithPermit(
        payee, token.address, hot_key.address, 1, 5000, chain.now() + 30 * DAY, HOUR, terms, deadline, v, r, s),
        fresh_owner)
    (event,) = events(escrow, receipt, "ChannelOpened")
    assert (event.args.signer, event.args.terms) == (hot_key.address, terms)
    assert event.args.channelId == escrow.functions.channelId(
        (fresh_owner, payee, token.address, 1, hot_key.address)).call()


def test_open_with_permit_rejects_a_party_as_signer(w3, escrow, token, chain, key_of, fresh_owner, payee):
    deadline = chain.now() + DAY
    v, r, s = permit(w3, token, key_of, fresh_owner, escrow.address, 5000, deadline)
    with reverts(escrow, "InvalidSigner", signer=payee):
        transact(escrow.functions.openWithPermit(
            payee, token.address, payee, 1, 5000, chain.now() + 30 * DAY, HOUR, ZERO32, deadline, v, r, s),
            fresh_owner)
