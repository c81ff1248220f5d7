"""MicropayEscrow.claimRelayed: a payee holding no ETH signs a relay request; anyone submits it,
takes its fee out of the payout and the payee gets the rest, all or nothing, once."""

import pytest
from escrow_kit import REVERT, ROOT, compact, local_account, pack, relay_digest, sign_relay
from eth_utils import keccak

from helpers import DAY, ETH, events, gas_cost, reverts, transact
from micropay.packing import pack_vouchers
from micropay.voucher import Voucher

FAR = 2**40  # a deadline far in the future


@pytest.fixture(scope="module")
def poor_payee():
    """A payee key that has never held ETH."""
    return local_account("relay payee")


class Relay:
    """Relay requests a payee signs, and the claimRelayed calls that submit them."""

    def __init__(self, w3, escrow, payee_account):
        self.w3, self.escrow = w3, escrow
        self.account = payee_account
        self.payee = payee_account.address

    def sign(self, vouchers, max_fee, deadline=FAR, *, token=ETH, chain_id=None, escrow=None, signer=None):
        return sign_relay((signer or self.account).key, chain_id or self.w3.eth.chain_id,
                          escrow or self.escrow.address, self.payee, token, vouchers, max_fee, deadline)

    def call(self, vouchers, max_fee, fee, deadline=FAR, *, token=ETH, signature=None):
        signature = signature if signature is not None else self.sign(vouchers, max_fee, deadline, token=token)
        return self.escrow.functions.claimRelayed(self.payee, token, vouchers, max_fee, deadline, fee, signature)


@pytest.fixture
def relay(w3, escrow, poor_payee):
    return Relay(w3, escrow, poor_payee)


def voucher(channels, key, amount):
    """A micropay Voucher of ``key`` for ``amount``, signed by the channel's signer."""
    return Voucher(channels.w3.eth.chain_id, channels.escrow.address, key.id(), amount, ROOT,
                   channels.sign(key, amount))


def test_relay_digest_is_the_documented_eip712_hash(w3, escrow, poor_payee):
    vouchers = b"\x01" * 141
    assert escrow.functions.RELAY_TYPEHASH().call() == keccak(
        text="RelayRequest(address payee,address token,bytes32 vouchers,uint256 maxFee,uint256 deadline)")
    on_chain = escrow.functions.relayDigest(poor_payee.address, ETH, keccak(vouchers), 7, 99).call()
    assert on_chain == relay_digest(w3.eth.chain_id, escrow.address, poor_payee.address, ETH, vouchers, 7, 99)


def test_payee_without_eth_is_paid_and_the_relayer_takes_its_fee(w3, escrow, channels, relay, accounts, payer,
                                                                  relayer, hot_key):
    assert w3.eth.get_balance(relay.payee) == 0
    first, _ = channels.open(payer, relay.payee, 1000)
    second, _ = channels.open(accounts[6], relay.payee, 1000, signer=hot_key.address)  # a delegated signer
    vouchers = pack_vouchers([(first.channel_key(), voucher(channels, first, 300)),
                              (second.channel_key(), voucher(channels, second, 500))])
    relayer_before = w3.eth.get_balance(relayer)
    assert relay.call(vouchers, 100, 50).call({"from": relayer}) == 800

    receipt = transact(relay.call(vouchers, 100, 50), relayer)

    assert w3.eth.get_balance(relay.payee) == 750
    assert w3.eth.get_balance(relayer) - relayer_before == 50 - gas_cost(receipt)
    assert [channels.state(k)[1] for k in (first, second)] == [300, 500]
    claimed = events(escrow, receipt, "Claimed")
    assert [(e.args.channelId, e.args.claimed) for e in claimed] == [(first.id(), 300), (second.id(), 500)]
    (relayed,) = events(escrow, receipt, "Relayed")
    assert relayed.args == {"payee": relay.payee, "relayer": relayer, "token": ETH, "total": 800, "fee": 50}
    assert relayed.logIndex > claimed[-1].logIndex


def test_token_relay_pays_the_fee_in_the_token(w3, escrow, token, channels, relay, payer, relayer):
    key, _ = channels.open(payer, relay.payee, 1_000_000, token=token.address)
    vouchers = channels.voucher(key, 400_000)
    relayer_before = token.functions.balanceOf(relayer).call()
    receipt = transact(relay.call(vouchers, 5_000, 5_000, token=token.address), relayer)
    assert token.functions.balanceOf(relay.payee).call() == 395_000
    assert token.functions.balanceOf(relayer).call() - relayer_before == 5_000
    assert events(escrow, receipt, "Relayed")[0].args.token == token.address
    assert w3.eth.get_balance(relay.payee) == 0


def test_zero_fee_pays_the_payee_everything(w3, channels, relay, payer, relayer):
    key, _ = channels.open(payer, relay.payee, 1000)
    transact(relay.call(channels.voucher(key, 600), 0, 0), relayer)
    assert w3.eth.get_balance(relay.payee) == 600


def test_a_relay_request_is_usable_once(w3, escrow, channels, relay, payer, relayer, stranger):
    key, _ = channels.open(payer, relay.payee, 1000)
    vouchers = channels.voucher(key, 600)
    signature = relay.sign(vouchers, 10)
    transact(relay.call(vouchers, 10, 10, signature=signature), relayer)
    transact(escrow.functions.topUp(*key.payer_args(), 1000), payer, 1000)  # more money does not revive it
    before = w3.eth.get_balance(relay.payee), w3.eth.get_balance(escrow.address)
    with reverts(escrow, "NothingToClaim", channelId=key.id(), claimed=600):
        transact(relay.call(vouchers, 10, 10, signature=signature), stranger)
    assert (w3.eth.get_balance(relay.payee), w3.eth.get_balance(escrow.address)) == before
    assert channels.state(key)[1] == 600


def test_fee_above_max_fee_reverts(escrow, channels, relay, payer, relayer):
    key, _ = channels.open(payer, relay.payee, 1000)
    with reverts(escrow, "FeeTooHigh", fee=11, limit=10):
        transact(relay.call(channels.voucher(key, 600), 10, 11), relayer)
    assert channels.state(key)[1] == 0


def test_fee_above_the_total_reverts(escrow, channels, relay, payer, relayer):
    key, _ = channels.open(payer, relay.payee, 1000)
    with reverts(escrow, "FeeTooHigh", fee=601, limit=600):
        transact(relay.call(channels.voucher(key, 600), 10_000, 601), relayer)
    assert channels.state(key)[1] == 0


def test_fee_with_nothing_to_claim_reverts(escrow, relay, relayer):
    with reverts(escrow, "FeeTooHigh", fee=1, limit=0):
        transact(relay.call(b"", 10, 1), relayer)


@pytest.mark.parametrize("rewrite", [
    pytest.param(lambda a, b, c: a + c, id="swap-for-a-higher-voucher"),
    pytest.param(lambda a, b, c: a, id="drop"),
    pytest.param(lambda a, b, c: b + a, id="reorder"),
    pytest.param(lambda a, b, c: a + b + b, id="duplicate"),
])
def test_relayer_cannot_change_the_vouchers(w3, escrow, channels, relay, payer, relayer, rewrite):
    first, _ = channels.open(payer, relay.payee, 1000)
    second, _ = channels.open(payer, relay.payee, 1000)
    a, b, c = channels.voucher(first, 100), channels.voucher(second, 200), channels.voucher(second, 900)
    signature = relay.sign(a + b, 50)
    with reverts(escrow, "InvalidSignature"):
        transact(relay.call(rewrite(a, b, c), 50, 50, signature=signature), relayer)
    assert [channels.state(k)[1] for k in (first, second)] == [0, 0]
    transact(relay.call(a + b, 50, 50, signature=signature), relayer)  # the request as signed works
    assert w3.eth.get_balance(relay.payee) == 250


@pytest.mark.parametrize("change", ["payee", "token", "max_fee", "deadline"])
def test_relayer_cannot_change_the_request(escrow, token, channels, relay, payer, relayer, stranger, change):
    key, _ = channels.open(payer, relay.payee, 1000)
    vouchers = channels.voucher(key, 600)
    signature = relay.sign(vouchers, 10, FAR)
    args = {"payee": relay.payee, "token": ETH, "max_fee": 10, "deadline": FAR}
    args[change] = {"payee": stranger, "token": token.address, "max_fee": 11, "deadline": FAR + 1}[change]
    call = escrow.functions.claimRelayed(args["payee"], args["token"], vouchers, args["max_fee"], args["deadline"],
                                         10, signature)
    with reverts(escrow, "InvalidSignature"):
        transact(call, relayer)
    assert channels.state(key)[1] == 0


def test_request_after_its_deadline_reverts(escrow, channels, chain, relay, payer, relayer):
    key, _ = channels.open(payer, relay.payee, 1000)
    vouchers = channels.voucher(key, 600)
    deadline = chain.now() + DAY
    signature = relay.sign(vouchers, 10, deadline)
    chain.next_tx_at(deadline + 1)
    with reverts(escrow, "RelayExpired", deadline=deadline):
        transact(relay.call(vouchers, 10, 10, deadline, signature=signature), relayer)
    assert channels.state(key)[1] == 0


def test_request_at_its_deadline_succeeds(channels, chain, relay, payer, relayer):
    key, _ = channels.open(payer, relay.payee, 1000)
    vouchers = channels.voucher(key, 600)
    deadline = chain.now() + DAY
    signature = relay.sign(vouchers, 10, deadline)
    chain.next_tx_at(deadline)
    transact(relay.call(vouchers, 10, 10, deadline, signature=signature), relayer)
    assert channels.state(key)[1] == 600


@pytest.mark.parametrize("domain", ["chain", "escrow"])
def test_request_signed_for_another_domain_is_rejected(w3, escrow, other_escrow, channels, relay, payer, relayer,
                                                       domain):
    key, _ = channels.open(payer, relay.payee, 1000)
    vouchers = channels.voucher(key, 600)
    if domain == "chain":
        signature = relay.sign(vouchers, 10, chain_id=w3.eth.chain_id + 1)
    else:
        signature = relay.sign(vouchers, 10, escrow=other_escrow.address)
    with reverts(escrow, "InvalidSignature"):
        transact(relay.call(vouchers, 10, 10, signature=signature), relayer)
    assert channels.state(key)[1] == 0


@pytest.mark.parametrize("signature", [
    pytest.param(lambda relay, vouchers: relay.sign(vouchers, 10, signer=local_account("not the payee")),
                 id="another-key"),
    pytest.param(lambda relay, vouchers: compact(relay.sign(vouchers, 10)), id="erc2098-form"),
    pytest.param(lambda relay, vouchers: b"", id="empty"),
])
def test_request_not_signed_by_the_payee_is_rejected(escrow, channels, relay, payer, relayer, signature):
    key, _ = channels.open(payer, relay.payee, 1000)
    vouchers = channels.voucher(key, 600)
    with reverts(escrow, "InvalidSignature"):
        transact(relay.call(vouchers, 10, 10, signature=signature(relay, vouchers)), relayer)
    assert channels.state(key)[1] == 0


def test_voucher_above_its_deposit_is_not_fully_funded(escrow, channels, relay, payer, relayer):
    # A claim capped at the deposit could be replayed after a top-up: relayed vouchers must be covered.
    covered, _ = channels.open(payer, relay.payee, 1000)
    short, _ = channels.open(payer, relay.payee, 1000)
    vouchers = channels.voucher(covered, 300) + channels.voucher(short, 1001)
    with reverts(escrow, "NotFullyFunded", channelId=short.id(), deposit=1000):
        transact(relay.call(vouchers, 10, 10), relayer)
    assert [channels.state(k)[1] for k in (covered, short)] == [0, 0]


def test_voucher_of_exactly_the_deposit_is_accepted(w3, channels, relay, payer, relayer):
    key, _ = channels.open(payer, relay.payee, 1000)
    transact(relay.call(channels.voucher(key, 1000), 10, 10), relayer)
    assert w3.eth.get_balance(relay.payee) == 990


@pytest.mark.parametrize("bad", ["forged", "expired", "closed", "unknown", "spent"])
def test_any_bad_voucher_reverts_the_whole_call(w3, escrow, channels, chain, relay, payer, relayer, stranger, bad):
    good, _ = channels.open(payer, relay.payee, 1000)
    other, _ = channels.open(payer, relay.payee, 1000, expiry=chain.now() + DAY)
    entry = channels.voucher(other, 200)
    if bad == "forged":
        entry = pack(other, 200, ROOT, channels.sign(other, 200, signer=stranger))
    elif bad == "unknown":
        entry = channels.voucher(other.__class__(payer, relay.payee, ETH, 9999), 200)
    elif bad == "spent":
        channels.claim(other, 200, relayer)
    elif bad in ("expired", "closed"):
        chain.next_tx_at(chain.now() + DAY + 10)
        if bad == "closed":
            transact(escrow.functions.reclaim(*other.payer_args()), payer)
    error = {"forged": "InvalidSignature", "unknown": "ChannelNotFound", "spent": "NothingToClaim",
             "expired": "ChannelExpired", "closed": "ChannelFinal"}[bad]
    payee_before = w3.eth.get_balance(relay.payee)
    with reverts(escrow, error):
        transact(relay.call(channels.voucher(good, 300) + entry, 10, 10), relayer)
    assert channels.state(good)[1] == 0
    assert w3.eth.get_balance(relay.payee) == payee_before


def test_a_relayer_that_cannot_take_eth_is_credited_its_fee(w3, escrow, channels, deploy_helper, deployer, relay,
                                                            payer):
    actor = deploy_helper("Actor")
    transact(actor.functions.setMode(REVERT), deployer)
    key, _ = channels.open(payer, relay.payee, 1000)
    call = relay.call(channels.voucher(key, 600), 10, 10)._encode_transaction_data()
    transact(actor.functions.execute(escrow.address, 0, call), deployer)
    assert w3.eth.get_balance(relay.payee) == 590
    assert escrow.functions.owed(actor.address, ETH).call() == 10


def test_contract_payee_signs_with_eip1271(w3, escrow, channels, payer, relayer, owner_wallet, wallet_owner, key_of,
                                           stranger):
    key, _ = channels.open(payer, owner_wallet.address, 1000)
    vouchers = channels.voucher(key, 600)
    args = (w3.eth.chain_id, escrow.address, owner_wallet.address, ETH, vouchers, 10, FAR)
    call = escrow.functions.claimRelayed(owner_wallet.address, ETH, vouchers, 10, FAR, 10,
                                         sign_relay(key_of(stranger), *args))
    with reverts(escrow, "InvalidSignature"):  # the wallet refuses a key that is not its owner's
        transact(call, relayer)

    receipt = transact(escrow.functions.claimRelayed(owner_wallet.address, ETH, vouchers, 10, FAR, 10,
                                                     sign_relay(key_of(wallet_owner), *args)), relayer)

    assert w3.eth.get_balance(owner_wallet.address) == 590
    assert events(escrow, receipt, "Relayed")[0].args.payee == owner_wallet.address
