"""Who signs a channel's vouchers: the payer's own key, a hot key the payer delegated to at open,
or a contract (EIP-1271) — an OwnerWallet, a wallet that says yes to everything, a real Safe."""

import pytest
from escrow_kit import CONTRACT_SIGNATURE, DELEGATED, ROOT, local_account, pack, selector

from helpers import DAY, ETH, HOUR, ZERO32, Key, events, reverts, transact


def claim(escrow, key, packed, sender):
    return transact(escrow.functions.claim(key.payee, key.token, packed), sender)


def digest(escrow, key, amount, root=ROOT):
    return escrow.functions.voucherDigest(key.id(), amount, root).call()


# --- a hot key the payer names at open ------------------------------------------------------------

def test_vouchers_of_the_delegated_key_pay(w3, escrow, channels, payer, payee, relayer, hot_key):
    key, _ = channels.open(payer, payee, 1000, signer=hot_key.address)
    assert w3.eth.get_balance(hot_key.address) == 0  # the hot key only signs
    packed = channels.voucher(key, 400)
    assert len(packed) == 161 and packed[0] == DELEGATED
    before = w3.eth.get_balance(payee)
    receipt = claim(escrow, key, packed, relayer)
    assert w3.eth.get_balance(payee) - before == 400
    assert events(escrow, receipt, "Claimed")[0].args.channelId == key.id()


def test_payers_own_key_cannot_sign_for_a_delegated_channel(escrow, channels, payer, payee, hot_key):
    key, _ = channels.open(payer, payee, 1000, signer=hot_key.address)
    by_payer = channels.sign(key, 400, signer=payer)
    for packed in (pack(key, 400, ROOT, by_payer), pack(key, 400, ROOT, by_payer, contract=True)):
        with reverts(escrow, "InvalidSignature"):
            claim(escrow, key, packed, payee)
    # Sent as a self-signed voucher it names another channel (signer zero), which does not exist.
    self_signed = Key(payer, payee, ETH, key.salt)
    with reverts(escrow, "ChannelNotFound", channelId=self_signed.id()):
        claim(escrow, key, pack(key, 400, ROOT, by_payer, flags=0), payee)
    assert channels.state(key)[1] == 0


def test_delegated_key_cannot_sign_for_the_payers_own_channel(escrow, channels, payer, payee, hot_key):
    own, _ = channels.open(payer, payee, 1000)
    by_hot = channels.sign(own, 400, signer=hot_key)
    with reverts(escrow, "InvalidSignature"):
        claim(escrow, own, pack(own, 400, ROOT, by_hot), payee)
    # Naming itself as the signer changes the id: no such channel.
    as_delegated = Key(payer, payee, ETH, own.salt, hot_key.address)
    with reverts(escrow, "ChannelNotFound", channelId=as_delegated.id()):
        claim(escrow, own, pack(as_delegated, 400, ROOT, channels.sign(as_delegated, 400)), payee)
    assert channels.state(own)[1] == 0


def test_delegated_key_cannot_sign_for_another_channel_of_the_payer(escrow, channels, payer, payee, hot_key,
                                                                    other_hot_key):
    mine, _ = channels.open(payer, payee, 1000, signer=hot_key.address)
    other, _ = channels.open(payer, payee, 1000, signer=other_hot_key.address)
    with reverts(escrow, "InvalidSignature"):  # hot key signing the other channel's id
        claim(escrow, other, pack(other, 400, ROOT, channels.sign(other, 400, signer=hot_key)), payee)
    with reverts(escrow, "InvalidSignature"):  # hot key's voucher for its own channel, sent for the other
        claim(escrow, other, pack(other, 400, ROOT, channels.sign(mine, 400)), payee)
    assert channels.state(other)[1] == 0
    claim(escrow, mine, channels.voucher(mine, 400), payee)
    assert channels.state(mine)[1] == 400


@pytest.mark.parametrize("who", ["payer", "payee"])
def test_open_rejects_a_party_as_signer(request, escrow, chain, payer, payee, who):
    signer = request.getfixturevalue(who)
    with reverts(escrow, "InvalidSigner", signer=signer):
        transact(escrow.functions.open(payee, signer, 1, chain.now() + DAY, HOUR, ZERO32), payer, 1000)


# --- EIP-1271 payers: an owner's key behind a contract wallet ---------------------------------------

def test_contract_wallet_payer_with_contract_signatures(w3, escrow, channels, open_as, owner_wallet, wallet_owner,
                                                        payee, relayer):
    open_as(owner_wallet, wallet_owner, payee, 1000, salt=1)
    key = Key(owner_wallet.address, payee, ETH, 1)
    packed = channels.voucher(key, 600, signer=wallet_owner)  # micropay picks the contract form itself
    assert packed[0] == CONTRACT_SIGNATURE and len(packed) == 77 + 2 + 65
    before = w3.eth.get_balance(payee)
    claim(escrow, key, packed, relayer)
    assert w3.eth.get_balance(payee) - before == 600


def test_contract_wallet_rejects_the_owners_key_in_the_compact_form(escrow, channels, open_as, owner_wallet,
                                                                    wallet_owner, payee):
    # The compact form is the signer's own key: the owner's key is not the wallet's.
    open_as(owner_wallet, wallet_owner, payee, 1000, salt=1)
    key = Key(owner_wallet.address, payee, ETH, 1)
    with reverts(escrow, "InvalidSignature"):
        claim(escrow, key, pack(key, 600, ROOT, channels.sign(key, 600, signer=wallet_owner)), payee)


def test_contract_wallet_rejects_another_key(escrow, channels, open_as, owner_wallet, wallet_owner, payee, stranger):
    open_as(owner_wallet, wallet_owner, payee, 1000, salt=1)
    key = Key(owner_wallet.address, payee, ETH, 1)
    with reverts(escrow, "InvalidSignature"):
        claim(escrow, key, pack(key, 600, ROOT, channels.sign(key, 600, signer=stranger), contract=True), payee)
    assert channels.state(key)[1] == 0


def test_payer_may_delegate_to_a_contract_signer(w3, escrow, channels, payer, payee, owner_wallet, wallet_owner):
    key, _ = channels.open(payer, payee, 1000, signer=owner_wallet.address)
    with reverts(escrow, "InvalidSignature"):
        claim(escrow, key, pack(key, 300, ROOT, channels.sign(key, 300, signer=payer), contract=True), payee)
    claim(escrow, key, pack(key, 300, ROOT, channels.sign(key, 300, signer=wallet_owner), contract=True), payee)
    assert channels.state(key)[1] == 300


# --- a wallet that says yes to every signature can authorize only its own channels --------------------

def test_yes_wallet_authorizes_its_own_channel(w3, escrow, open_as, yes_wallet, deployer, payee, relayer):
    open_as(yes_wallet, deployer, payee, 1000, salt=1)
    key = Key(yes_wallet.address, payee, ETH, 1)
    before = w3.eth.get_balance(payee)
    claim(escrow, key, pack(key, 700, ROOT, b"anything", contract=True), relayer)
    assert w3.eth.get_balance(payee) - before == 700
    assert escrow.functions.channel(key.id()).call()[1] == 700


def test_yes_wallet_cannot_sign_for_an_eoa_payers_channel(escrow, channels, payer, payee, yes_wallet, hot_key):
    own, _ = channels.open(payer, payee, 1000)
    delegated, _ = channels.open(payer, payee, 1000, signer=hot_key.address)
    yes = b"anything"
    with reverts(escrow, "InvalidSignature"):  # the payer is the signer, and it is not a contract
        claim(escrow, own, pack(own, 700, ROOT, yes, contract=True), payee)
    with reverts(escrow, "InvalidSignature"):  # the committed signer is the hot key
        claim(escrow, delegated, pack(delegated, 700, ROOT, yes, contract=True), payee)
    for key in (own, delegated):  # naming the yes-wallet as signer names a channel that does not exist
        forged = Key(payer, payee, ETH, key.salt, yes_wallet.address)
        with reverts(escrow, "ChannelNotFound", channelId=forged.id()):
            claim(escrow, key, pack(forged, 700, ROOT, yes, contract=True), payee)
    assert channels.state(own)[1] == 0 and channels.state(delegated)[1] == 0


def test_yes_wallet_cannot_sign_for_another_contract_payer(escrow, channels, open_as, owner_wallet, wallet_owner,
                                                          payee, yes_wallet):
    open_as(owner_wallet, wallet_owner, payee, 1000, salt=1)
    key = Key(owner_wallet.address, payee, ETH, 1)
    with reverts(escrow, "InvalidSignature"):
        claim(escrow, key, pack(key, 700, ROOT, b"anything", contract=True), payee)
    forged = Key(owner_wallet.address, payee, ETH, 1, yes_wallet.address)
    with reverts(escrow, "ChannelNotFound", channelId=forged.id()):
        claim(escrow, key, pack(forged, 700, ROOT, b"anything", contract=True), payee)


def test_yes_wallet_that_delegated_is_bound_by_its_signer(escrow, channels, open_as, yes_wallet, deployer, payee,
                                                          hot_key):
    open_as(yes_wallet, deployer, payee, 1000, salt=2, signer=hot_key.address)
    key = Key(yes_wallet.address, payee, ETH, 2, hot_key.address)
    with reverts(escrow, "InvalidSignature"):  # the hot key is checked, not the wallet
        claim(escrow, key, pack(key, 700, ROOT, b"anything", contract=True), payee)
    undelegated = Key(yes_wallet.address, payee, ETH, 2)
    with reverts(escrow, "ChannelNotFound", channelId=undelegated.id()):
        claim(escrow, key, pack(undelegated, 700, ROOT, b"anything", contract=True), payee)
    claim(escrow, key, channels.voucher(key, 700), payee)
    assert channels.state(key)[1] == 700


# --- a real Safe (1.4.1, 2 of 3 owners) as payer ------------------------------------------------------

def safe_open(escrow, safe, owners, deployer, payee, deposit, *, salt, signer=ETH, expiry):
    data = escrow.functions.open(payee, signer, salt, expiry, HOUR, ZERO32)._encode_transaction_data()
    return safe.exec(escrow.address, deposit, bytes.fromhex(data[2:]), owners[:2], deployer)


def test_safe_funds_a_channel_and_its_owners_sign_vouchers(w3, escrow, chain, safe, safe_owners, deployer, payee,
                                                           relayer):
    receipt = safe_open(escrow, safe, safe_owners, deployer, payee, 10**18, salt=1, expiry=chain.now() + DAY)
    key = Key(safe.address, payee, ETH, 1)
    (opened,) = events(escrow, receipt.web3_receipt, "ChannelOpened")
    assert (opened.args.channelId, opened.args.payer, opened.args.deposit) == (key.id(), safe.address, 10**18)

    signature = safe.sign_message(digest(escrow, key, 4 * 10**17), safe_owners[1:])
    assert len(signature) == 130
    before = w3.eth.get_balance(payee)
    claim(escrow, key, pack(key, 4 * 10**17, ROOT, signature, contract=True), relayer)
    assert w3.eth.get_balance(payee) - before == 4 * 10**17


def test_safe_batch_approves_and_opens_a_token_channel(escrow, token, chain, safe, safe_owners, deployer, payee,
                                                       relayer):
    transact(token.functions.mint(safe.address, 5_000_000), deployer)
    approve = token.functions.approve(escrow.address, 5_000_000)._encode_transaction_data()
    open_token = escrow.functions.openToken(payee, token.address, ETH, 3, 5_000_000, chain.now() + DAY, HOUR,
                                            b"\x42" * 32)._encode_transaction_data()
    receipt = safe.exec_batch([(token.address, 0, bytes.fromhex(approve[2:])),
                               (escrow.address, 0, bytes.fromhex(open_token[2:]))], safe_owners[:2], deployer)
    key = Key(safe.address, payee, token.address, 3)
    (opened,) = events(escrow, receipt.web3_receipt, "ChannelOpened")
    assert (opened.args.channelId, opened.args.terms) == (key.id(), b"\x42" * 32)
    assert token.functions.balanceOf(safe.address).call() == 0

    signature = safe.sign_message(digest(escrow, key, 2_000_000), [safe_owners[0], safe_owners[2]])
    claim(escrow, key, pack(key, 2_000_000, ROOT, signature, contract=True), relayer)
    assert token.functions.balanceOf(payee).call() - 10**30 == 2_000_000


def test_safe_voucher_with_too_few_owner_signatures_is_rejected(escrow, chain, safe, safe_owners, deployer, payee,
                                                                stranger):
    safe_open(escrow, safe, safe_owners, deployer, payee, 10**18, salt=1, expiry=chain.now() + DAY)
    key = Key(safe.address, payee, ETH, 1)
    amount = 10**17
    one_owner = safe.sign_message(digest(escrow, key, amount), safe_owners[:1])
    outsider = safe.sign_message(digest(escrow, key, amount), [safe_owners[0], local_account("not an owner")])
    for signature in (one_owner, outsider, one_owner[:64]):
        with reverts(escrow, "InvalidSignature"):
            claim(escrow, key, pack(key, amount, ROOT, signature, contract=True), payee)
    with reverts(escrow, "InvalidSignature"):  # an owner's key is not the Safe's key
        claim(escrow, key, pack(key, amount, ROOT, one_owner), payee)
    assert escrow.functions.channel(key.id()).call()[1] == 0


def test_safe_delegates_to_a_hot_key(w3, escrow, channels, chain, safe, safe_owners, deployer, payee, hot_key):
    safe_open(escrow, safe, safe_owners, deployer, payee, 10**18, salt=4, signer=hot_key.address,
              expiry=chain.now() + DAY)
    key = Key(safe.address, payee, ETH, 4, hot_key.address)
    with reverts(escrow, "InvalidSignature"):  # the owners no longer sign this channel's vouchers
        claim(escrow, key, pack(key, 10**17, ROOT, safe.sign_message(digest(escrow, key, 10**17), safe_owners[:2]),
                                contract=True), payee)
    before = w3.eth.get_balance(payee)
    claim(escrow, key, channels.voucher(key, 3 * 10**17), deployer)
    assert w3.eth.get_balance(payee) - before == 3 * 10**17
    # The Safe's own refund still goes to the Safe.
    chain.next_tx_at(chain.now() + DAY + 1)
    reclaim = escrow.functions.reclaim(*key.payer_args())._encode_transaction_data()
    safe_before = w3.eth.get_balance(safe.address)
    safe.exec(escrow.address, 0, bytes.fromhex(reclaim[2:]), safe_owners[:2], deployer)
    assert w3.eth.get_balance(safe.address) - safe_before == 7 * 10**17


# --- one batch, every kind of signer ---------------------------------------------------------------

def test_claim_many_mixes_self_signed_delegated_and_contract_vouchers(w3, escrow, channels, chain, open_as, payer,
                                                                      payee, relayer, hot_key, owner_wallet,
                                                                      wallet_owner, safe, safe_owners, deployer):
    own, _ = channels.open(payer, payee, 1000)
    delegated, _ = channels.open(payer, payee, 1000, signer=hot_key.address)
    open_as(owner_wallet, wallet_owner, payee, 1000, salt=1)
    wallet = Key(owner_wallet.address, payee, ETH, 1)
    safe_open(escrow, safe, safe_owners, deployer, payee, 1000, salt=1, expiry=chain.now() + DAY)
    by_safe = Key(safe.address, payee, ETH, 1)
    batch = b"".join([
        channels.voucher(own, 100),
        channels.voucher(delegated, 200),
        channels.voucher(wallet, 300, signer=wallet_owner),
        pack(by_safe, 400, ROOT, safe.sign_message(digest(escrow, by_safe, 400), safe_owners[:2]), contract=True),
        pack(own, 900, ROOT, channels.sign(own, 900, signer=hot_key)),  # a forgery in the middle
    ])
    before = w3.eth.get_balance(payee)

    receipt = transact(escrow.functions.claimMany(payee, ETH, batch), relayer)

    assert w3.eth.get_balance(payee) - before == 1000
    assert [e.args.channelId for e in events(escrow, receipt, "Claimed")] == [
        k.id() for k in (own, delegated, wallet, by_safe)]
    (skip,) = events(escrow, receipt, "ClaimSkipped")
    assert (skip.args.channelId, skip.args.reason) == (own.id(), selector("InvalidSignature()"))
