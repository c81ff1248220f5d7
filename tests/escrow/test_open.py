"""MicropayEscrow.open: ETH and ERC-20 deposits, signer and terms, state, events, balances, every revert."""

import pytest

from helpers import DAY, ETH, HOUR, ZERO32, events, gas_cost, reverts, transact

TERMS = b"\x42" * 32


def test_open_eth_records_channel_and_emits(w3, escrow, channels, chain, payer, payee):
    expiry = chain.now() + 7 * DAY
    before_payer, before_escrow = w3.eth.get_balance(payer), w3.eth.get_balance(escrow.address)

    key, receipt = channels.open(payer, payee, 10**18, expiry=expiry, window=2 * HOUR)

    assert escrow.functions.channelId(key.tuple()).call() == key.id()
    assert channels.state(key) == (10**18, 0, expiry, 2 * HOUR, False)
    assert w3.eth.get_balance(escrow.address) - before_escrow == 10**18
    assert before_payer - w3.eth.get_balance(payer) == 10**18 + gas_cost(receipt)
    (event,) = events(escrow, receipt, "ChannelOpened")
    assert event.args == {
        "channelId": key.id(), "payer": payer, "payee": payee, "token": ETH, "salt": key.salt, "signer": ETH,
        "deposit": 10**18, "expiry": expiry, "terms": ZERO32,
    }


def test_open_returns_the_channel_id(escrow, chain, payer, payee):
    call = escrow.functions.open(payee, ETH, 3, chain.now() + DAY, HOUR, ZERO32)
    assert call.call({"from": payer, "value": 1}) == escrow.functions.channelId((payer, payee, ETH, 3, ETH)).call()


def test_terms_are_emitted(escrow, token, channels, payer, payee):
    _, receipt = channels.open(payer, payee, 100, terms=TERMS)
    assert events(escrow, receipt, "ChannelOpened")[0].args.terms == TERMS
    _, receipt = channels.open(payer, payee, 100, token=token.address, terms=TERMS)
    assert events(escrow, receipt, "ChannelOpened")[0].args.terms == TERMS


def test_terms_are_not_part_of_the_id(escrow, channels, payer, payee):
    key, _ = channels.open(payer, payee, 100, salt=9, terms=TERMS)
    with reverts(escrow, "ChannelExists", channelId=key.id()):
        channels.open(payer, payee, 100, salt=9, terms=b"\x43" * 32)


def test_signer_is_emitted_and_committed_in_the_id(escrow, channels, payer, payee, hot_key):
    key, receipt = channels.open(payer, payee, 100, salt=11, signer=hot_key.address)
    (event,) = events(escrow, receipt, "ChannelOpened")
    assert event.args.signer == hot_key.address and event.args.channelId == key.id()
    assert escrow.functions.channelId(key.tuple()).call() == key.id()
    # Same payer, payee, token and salt, without a signer: another channel, opened independently.
    self_signed, receipt = channels.open(payer, payee, 200, salt=11)
    assert self_signed.id() != key.id()
    assert events(escrow, receipt, "ChannelOpened")[0].args.signer == ETH
    assert channels.state(key)[0] == 100 and channels.state(self_signed)[0] == 200


def test_open_erc20_pulls_tokens(escrow, token, channels, payer, payee):
    before = token.functions.balanceOf(payer).call()
    key, receipt = channels.open(payer, payee, 5_000_000, token=token.address)
    assert channels.state(key)[0] == 5_000_000
    assert before - token.functions.balanceOf(payer).call() == 5_000_000
    assert token.functions.balanceOf(escrow.address).call() == 5_000_000
    (event,) = events(escrow, receipt, "ChannelOpened")
    assert event.args.token == token.address and event.args.deposit == 5_000_000


def test_many_channels_per_pair_have_distinct_ids(channels, payer, payee):
    first, _ = channels.open(payer, payee, 100, salt=1)
    second, _ = channels.open(payer, payee, 200, salt=2)
    assert first.id() != second.id()
    assert channels.state(first)[0] == 100 and channels.state(second)[0] == 200


def test_same_salt_twice_reverts(escrow, channels, payer, payee):
    key, _ = channels.open(payer, payee, 100, salt=7)
    with reverts(escrow, "ChannelExists", channelId=key.id()):
        channels.open(payer, payee, 100, salt=7)


@pytest.mark.parametrize("invalid", [pytest.param(ETH, id="zero-address"),
                                     pytest.param("payer", id="the-payer-itself")])
def test_invalid_payee_reverts(escrow, channels, payer, invalid):
    invalid = payer if invalid == "payer" else invalid
    with reverts(escrow, "InvalidPayee", payee=invalid):
        channels.open(payer, invalid, 100)


@pytest.mark.parametrize("who", ["payer", "payee"])
@pytest.mark.parametrize("use_token", [False, True], ids=["eth", "token"])
def test_signer_that_is_a_party_reverts(request, escrow, token, channels, payer, payee, who, use_token):
    signer = request.getfixturevalue(who)
    with reverts(escrow, "InvalidSigner", signer=signer):
        channels.open(payer, payee, 100, signer=signer, token=token.address if use_token else ETH)


def test_expiry_in_the_past_reverts(escrow, channels, chain, payer, payee):
    now = chain.now()
    chain.next_tx_at(now + 10)
    with reverts(escrow, "InvalidExpiry", expiry=now + 10):
        channels.open(payer, payee, 100, expiry=now + 10)


@pytest.mark.parametrize(("bound", "offset"), [
    pytest.param("MIN_WINDOW", -1, id="below-the-minimum"),
    pytest.param("MAX_WINDOW", +1, id="above-the-maximum"),
])
def test_window_out_of_bounds_reverts(escrow, channels, payer, payee, bound, offset):
    window = getattr(escrow.functions, bound)().call() + offset
    with reverts(escrow, "InvalidWindow", window=window):
        channels.open(payer, payee, 100, window=window)


@pytest.mark.parametrize("bound", ["MIN_WINDOW", "MAX_WINDOW"])
def test_window_at_the_bounds_opens(escrow, channels, payer, payee, bound):
    window = getattr(escrow.functions, bound)().call()
    key, _ = channels.open(payer, payee, 100, window=window)
    assert channels.state(key)[3] == window


def test_zero_deposit_reverts(escrow, channels, payer, payee):
    with reverts(escrow, "InvalidAmount"):
        channels.open(payer, payee, 0)


def test_open_token_rejects_the_eth_address(escrow, chain, payer, payee):
    call = escrow.functions.openToken(payee, ETH, ETH, 1, 100, chain.now() + DAY, HOUR, ZERO32)
    with reverts(escrow, "InvalidToken"):
        transact(call, payer)


def test_open_token_with_zero_amount_reverts(escrow, token, chain, payer, payee):
    call = escrow.functions.openToken(payee, token.address, ETH, 1, 0, chain.now() + DAY, HOUR, ZERO32)
    with reverts(escrow, "InvalidAmount"):
        transact(call, payer)


def test_open_token_with_a_non_token_reverts(escrow, chain, payer, payee, stranger):
    call = escrow.functions.openToken(payee, stranger, ETH, 1, 100, chain.now() + DAY, HOUR, ZERO32)
    with reverts(escrow, "InvalidToken"):  # an account without code answers balanceOf with nothing
        transact(call, payer)


def test_erc20_open_without_allowance_reverts(escrow, token, chain, payer, payee):
    transact(token.functions.approve(escrow.address, 0), payer)
    call = escrow.functions.openToken(payee, token.address, ETH, 1, 100, chain.now() + DAY, HOUR, ZERO32)
    with reverts(token, "ERC20InsufficientAllowance"):
        transact(call, payer)


def test_deposit_beyond_uint96_reverts(escrow, token, channels, payer, payee):
    too_much = 2**96
    with reverts(escrow, "AmountTooLarge", amount=too_much):
        channels.open(payer, payee, too_much, token=token.address)


def test_eth_open_without_value_reverts(escrow, chain, payer, payee):
    with reverts(escrow, "InvalidAmount"):
        transact(escrow.functions.open(payee, ETH, 1, chain.now() + DAY, HOUR, ZERO32), payer)
