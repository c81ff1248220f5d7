"""The Escrow proxy: keys hash like the contract, prechecks and reverts become typed errors."""

import pytest
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from micropay import ETH, ChannelKey, Escrow, Payee
from micropay.errors import (
    ChannelExpired,
    ChannelNotExpired,
    InsufficientFunds,
    InvalidVoucher,
    MicropayValueError,
    NothingToClaim,
    NotParticipant,
    UnknownChannel,
    UnknownEscrow,
)

addresses = st.binary(min_size=20, max_size=20).map(lambda b: Account.from_key(keccak(b)).address)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payer=addresses, payee=addresses, token=addresses, salt=st.integers(0, 2**96 - 1),
       signer=st.one_of(st.none(), addresses))
def test_channel_key_id_equals_the_contract_and_eth_abi(lib_escrow, payer, payee, token, salt, signer):
    if signer in (payer, payee):
        signer = None
    key = ChannelKey(payer, payee, token, salt, signer)
    assert key.id == keccak(abi_encode(["address", "address", "address", "uint96", "address"],
                                       [payer, payee, token, salt, signer or ETH]))
    assert key.id == lib_escrow.contract.functions.channelId(key.as_tuple()).call()
    assert key.voucher_signer == (signer or payer)


def test_at_checks_the_code(w3, lib_escrow, token):
    assert Escrow.at(w3, lib_escrow.address).address == lib_escrow.address
    with pytest.raises(UnknownEscrow, match="no contract"):
        Escrow.at(w3, "0x" + "77" * 20)
    with pytest.raises(UnknownEscrow, match="not the micropay escrow"):
        Escrow.at(w3, token.address)


def test_bad_channel_keys_are_value_errors():
    with pytest.raises(MicropayValueError):
        ChannelKey("0x1234", ETH, ETH, 1)
    with pytest.raises(MicropayValueError):
        ChannelKey(ETH, ETH, ETH, 2**96)


def test_prechecks_raise_typed_errors_without_sending(w3, lib_escrow, clients, freelancer, make_payer):
    payer = make_payer(clients[0])
    channel = payer.open_channel(freelancer.address, 1000)
    nonce = w3.eth.get_transaction_count(freelancer.address)
    with pytest.raises(NotParticipant):
        lib_escrow.request_close(freelancer, channel.key)
    with pytest.raises(ChannelNotExpired):
        lib_escrow.reclaim(clients[0], channel.key)
    with pytest.raises(UnknownChannel):
        lib_escrow.channel(b"\x42" * 32)
    with pytest.raises(NothingToClaim):
        lib_escrow.withdraw(freelancer)
    with pytest.raises(MicropayValueError, match="window"):
        lib_escrow.open(clients[0], freelancer.address, 10, expiry=lib_escrow.now() + 86400, window=60)
    with pytest.raises(MicropayValueError, match="payee"):
        lib_escrow.open(clients[0], clients[0].address, 10, expiry=lib_escrow.now() + 86400)
    assert w3.eth.get_transaction_count(freelancer.address) == nonce  # nothing was sent


def test_a_revert_that_slips_past_the_prechecks_is_decoded(lib_escrow, clients, freelancer, make_payer):
    payer = make_payer(clients[0])
    channel = payer.open_channel(freelancer.address, 1000)
    with pytest.raises(ChannelNotExpired) as info:  # sent straight to the chain, no precheck
        lib_escrow.unsafe_send(clients[0], lib_escrow.contract.functions.reclaim(*channel.key.payer_args()))
    assert info.value.revert.name == "ChannelNotExpired"
    # The payer's calls name the channel with the sender as payer: anyone else finds no channel.
    with pytest.raises(UnknownChannel) as info:
        lib_escrow.unsafe_send(freelancer, lib_escrow.contract.functions.requestClose(*channel.key.payer_args()))
    assert info.value.revert.name == "ChannelNotFound"
    with pytest.raises(MicropayValueError) as info:
        lib_escrow.unsafe_send(clients[0], lib_escrow.contract.functions.open(
            freelancer.address, clients[0].address, 99, lib_escrow.now() + 86400, 86400, bytes(32)), 10)
    assert info.value.revert.name == "InvalidSigner"
    with pytest.raises(InvalidVoucher) as info:
        lib_escrow.unsafe_send(freelancer, lib_escrow.contract.functions.claim(freelancer.address, ETH, b"\x00" * 50))
    assert info.value.revert.name == "InvalidEncoding"


def test_expired_channel_cannot_be_claimed(tester, lib_escrow, clients, freelancer, make_payer):
    payer = make_payer(clients[0])
    channel = payer.open_channel(freelancer.address, 10**15, expires_in=7200)
    payment = payer.pay(channel.id, 10, task="late")
    tester.time_travel(channel.expiry + 5)
    with pytest.raises(ChannelExpired):
        lib_escrow.claim(freelancer, channel.key, payment.voucher)


def test_not_enough_eth_is_insufficient_funds(lib_escrow, freelancer):
    poor = Account.create()
    with pytest.raises(InsufficientFunds):
        lib_escrow.open(poor, freelancer.address, 10**18, expiry=lib_escrow.now() + 86400)


def test_node_managed_accounts_work(w3, lib_escrow, accounts, store_at, clients, make_payer):
    node_payee = accounts[7]  # unlocked in the node: no private key in this process
    payer = make_payer(clients[0])
    channel = payer.open_channel(node_payee, 10**17)
    payee = Payee(lib_escrow, node_payee, store_at("node"))
    payee.receive(payer.pay(channel.id, 10**16, task="node work"))
    before = w3.eth.get_balance(node_payee)
    settlement = payee.settle()
    assert w3.eth.get_balance(node_payee) - before == settlement.gross - settlement.fee == 10**16 - settlement.fee
    key, _ = lib_escrow.open(accounts[8], node_payee, 500, expiry=lib_escrow.now() + 86400)
    assert lib_escrow.channel(key).deposit == 500
