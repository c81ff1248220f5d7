"""Relayed claims on a real anvil node over JSON-RPC: a payee holding no ETH gets paid, with real
base fees, real gas accounting and real time."""

from datetime import timedelta

import pytest
from eth_account import Account

from chains import AnvilChain
from micropay import (
    Escrow,
    InvalidRelayRequest,
    NothingToClaim,
    Payee,
    Payer,
    Relayer,
    RelayRequest,
    TxOptions,
)
from micropay._utils.reverts import ErrorDecoder
from micropay.transactions import TransactionPipeline


@pytest.fixture(scope="module")
def node(anvil):
    """Anvil only (the conftest's `node` runs on both chains); rolled back after each test."""
    return AnvilChain(anvil.url)


@pytest.fixture
def parties(node, deployed, tmp_path):
    escrow, token, deployer = deployed
    proxy = Escrow(node.w3, escrow.address, from_block=escrow.from_block, options=TxOptions(poll_interval=0.02))
    client, broke = node.fund(), Account.create()  # the freelancer never holds any ETH
    TransactionPipeline(node.w3, ErrorDecoder(token.abi)).send(deployer, token.functions.mint(client.address, 10**9))
    payer = Payer(proxy, client, tmp_path / "client.db")
    payee = Payee(proxy, broke, tmp_path / "freelancer.db")
    return payer, payee, Relayer(proxy, node.fund()), token


def test_a_payee_with_no_eth_is_paid_in_eth_and_in_a_token(node, parties):
    payer, payee, relayer, token = parties
    w3, escrow = node.w3, payee.escrow
    for n in range(3):
        channel = payer.open_channel(payee.address, 10**17)
        payee.receive(payer.pay(channel.id, (n + 1) * 10**16, task=f"task {n}").encode())
    usd = payer.open_channel(payee.address, 50_000_000, token=token.address)
    payee.receive(payer.pay(usd.id, 20_000_000, task="in dollars"))
    assert w3.eth.get_balance(payee.address) == 0
    request = RelayRequest.decode(payee.authorize_relay(max_fee=10**15, deadline=timedelta(minutes=30)).encode())
    assert request.digest() == escrow.relay_digest(request) and request.chain_id == 31337
    quote = relayer.quote(request)
    assert (quote.total, quote.fee) == (6 * 10**16, 10**15)
    before = w3.eth.get_balance(relayer.account.address)
    receipt = relayer.submit(request)
    assert receipt.fee > 0 and receipt.gas_used <= quote.gas  # anvil charges a real base fee
    assert w3.eth.get_balance(payee.address) == 6 * 10**16 - 10**15
    assert w3.eth.get_balance(relayer.account.address) - before == 10**15 - receipt.fee
    tokens = payee.authorize_relay(max_fee=300_000, token=token.address)
    assert escrow.relayed_in(relayer.submit(tokens)) == (20_000_000, 300_000)
    assert token.functions.balanceOf(payee.address).call() == 19_700_000
    assert token.functions.balanceOf(relayer.account.address).call() == 300_000
    nonce = w3.eth.get_transaction_count(relayer.account.address)
    with pytest.raises(NothingToClaim):  # a replay
        relayer.submit(request)
    assert w3.eth.get_transaction_count(relayer.account.address) == nonce
    with pytest.raises(NothingToClaim):
        escrow.claim_relayed(relayer.account, tokens, 0)  # the escrow's own refusal, decoded
    with pytest.raises(NothingToClaim):
        payee.plan_settlement()


def test_an_expired_request_is_refused_before_sending(node, parties):
    payer, payee, relayer, _ = parties
    channel = payer.open_channel(payee.address, 10**17, expires_in=timedelta(days=2))
    payee.receive(payer.pay(channel.id, 10**16, task="late"))
    request = payee.authorize_relay(max_fee=10**14, deadline=timedelta(minutes=10))
    node.travel(11 * 60)
    nonce = node.w3.eth.get_transaction_count(relayer.account.address)
    with pytest.raises(InvalidRelayRequest, match="expired"):
        relayer.submit(request)
    with pytest.raises(InvalidRelayRequest, match="RelayExpired"):
        payee.escrow.claim_relayed(relayer.account, request, 0)
    assert node.w3.eth.get_transaction_count(relayer.account.address) == nonce
    assert payee.escrow.channel(channel.key).claimed == 0
    with pytest.raises(NothingToClaim, match="expires before the deadline"):  # it would be stale before it is due
        payee.authorize_relay(max_fee=10**14, deadline=timedelta(days=3))
    fresh = payee.authorize_relay(max_fee=10**18, deadline=timedelta(days=1))  # any fee, up to the payout
    with pytest.raises(InvalidRelayRequest, match="above the payout"):
        relayer.submit(fresh, fee=10**16 + 1)
    assert payee.escrow.relayed_in(relayer.submit(fresh, fee=10**14)) == (10**16, 10**14)
    assert node.w3.eth.get_balance(payee.address) == 10**16 - 10**14
