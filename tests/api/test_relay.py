"""Relayed claims: a payee holding no ETH signs a request, a relayer submits it for a fee."""

import dataclasses
import logging
from datetime import timedelta

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from micropay import (
    ChannelExpired,
    Escrow,
    InvalidRelayRequest,
    InvalidSignature,
    InvalidVoucher,
    MicropayValueError,
    NothingToClaim,
    Payee,
    Relayer,
    RelayRequest,
    sign_relay_request,
)
from micropay._utils import textform
from micropay.channel import ETH, ChannelKey
from micropay.packing import CONTRACT_SIGNATURE, DELEGATED, pack_voucher, pack_vouchers
from micropay.relay import MAX_PAYLOAD, MAX_TEXT, TEXT_PREFIX
from micropay.voucher import sign_voucher

BROKE = Account.from_key(b"\x33" * 32)  # never funded: holds no ETH at all
OWNER = Account.from_key(b"\x34" * 32)


@pytest.fixture
def broke_payee(lib_escrow, store_at):
    return Payee(lib_escrow, BROKE, store_at("broke"))


@pytest.fixture
def relayer(lib_escrow, fund):
    return Relayer(lib_escrow, fund(Account.from_key(b"\x35" * 32)))


def paid(make_payer, client, payee, amounts, deposit=10**17, **open_kwargs):
    """Open one channel per amount from ``client`` to ``payee`` and pay it; the payee receives each."""
    payer = make_payer(client)
    records = []
    for n, amount in enumerate(amounts):
        record = payer.open_channel(payee.address, deposit, **open_kwargs)
        payee.receive(payer.pay(record.id, amount, task=f"task {n}"))
        records.append(record)
    return payer, records


def typed_digest(typed_data):
    signable = encode_typed_data(full_message=typed_data)
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


# -- the request itself --------------------------------------------------------------------------


def test_digest_matches_the_contract_and_eth_account(make_payer, clients, broke_payee, lib_escrow):
    paid(make_payer, clients[0], broke_payee, [3 * 10**16, 10**16])
    request = broke_payee.authorize_relay(max_fee=10**15)
    assert request.digest() == lib_escrow.relay_digest(request) == typed_digest(request.typed_data())
    reference = Account.sign_message(encode_typed_data(full_message=request.typed_data()), BROKE.key)
    assert request.signature == bytes(reference.signature)
    other = dataclasses.replace(request, max_fee=request.max_fee + 1)
    assert other.digest() == lib_escrow.relay_digest(other) != request.digest()


def test_channels_lists_what_the_packed_vouchers_hold():
    payer, payee, signer, stranger = (Account.from_key(bytes([b]) * 32) for b in (0x41, 0x42, 0x43, 0x44))
    own = ChannelKey(payer.address, payee.address, ETH, 7)
    delegated = ChannelKey(payer.address, payee.address, ETH, 8, signer.address)
    odd = ChannelKey(payer.address, payee.address, ETH, 9)

    def voucher(key, amount, by):
        return sign_voucher(by, chain_id=5, escrow="0x" + "ab" * 20, channel_id=key.id, amount=amount,
                            ledger_root=bytes([amount % 256]) * 32)

    items = [(own, voucher(own, 100, payer)), (delegated, voucher(delegated, 200, signer)),
             (odd, voucher(odd, 300, stranger))]  # not the signer's: sent whole, for EIP-1271
    packed = pack_vouchers(items)
    assert packed[0] == 0 and packed[141] == DELEGATED and packed[141 + 161] == CONTRACT_SIGNATURE
    request = sign_relay_request(payee, chain_id=5, escrow="0x" + "ab" * 20, payee=payee.address, token=ETH,
                                 vouchers=packed, max_fee=1, deadline=2**40)
    inside = request.channels()
    assert [(v.key, v.amount, v.ledger_root, v.signature) for v in inside] == \
        [(key, v.amount, v.ledger_root, v.signature) for key, v in items]
    assert [v.channel_id for v in inside] == [own.id, delegated.id, odd.id]


def test_text_round_trip_survives_wrapping_and_case(make_payer, clients, broke_payee):
    paid(make_payer, clients[0], broke_payee, [10**16])
    request = broke_payee.authorize_relay(max_fee=10**14)
    text = request.encode()
    assert text.startswith("mpr1") and text == text.lower()
    assert RelayRequest.decode(text) == request
    wrapped = "\n".join(text[i : i + 60] for i in range(0, len(text), 60)).upper()
    assert RelayRequest.decode(wrapped) == request


@pytest.mark.parametrize("corrupt", [
    lambda t: t[:-1] + ("a" if t[-1] != "a" else "b"),  # a mistyped character
    lambda t: t[: len(t) // 2],  # cut
    lambda t: "mpv1" + t[4:],  # another object's prefix
    lambda t: t + "1",  # outside base32
])
def test_corrupted_text_is_a_typed_error(corrupt):
    payee = Account.from_key(b"\x42" * 32)
    key = ChannelKey(Account.from_key(b"\x41" * 32).address, payee.address, ETH, 1)
    voucher = sign_voucher(Account.from_key(b"\x41" * 32), chain_id=5, escrow="0x" + "ab" * 20, channel_id=key.id,
                           amount=10, ledger_root=bytes(32))
    request = sign_relay_request(payee, chain_id=5, escrow="0x" + "ab" * 20, payee=payee.address, token=ETH,
                                 vouchers=pack_voucher(key, voucher), max_fee=1, deadline=2**40)
    with pytest.raises(InvalidRelayRequest) as info:
        RelayRequest.decode(corrupt(request.encode()))
    assert isinstance(info.value, InvalidVoucher) and isinstance(info.value, ValueError)


def test_oversized_or_malformed_text_is_refused_before_parsing():
    with pytest.raises(InvalidRelayRequest, match="above the limit"):
        RelayRequest.decode("mpr1" + "a" * MAX_TEXT)
    with pytest.raises(InvalidRelayRequest, match="bytes, got"):  # a valid checksum around too many bytes
        RelayRequest.decode(textform.wrap(TEXT_PREFIX, bytes(MAX_PAYLOAD + 1)))
    with pytest.raises(InvalidRelayRequest, match="bytes, got"):
        RelayRequest.decode(textform.wrap(TEXT_PREFIX, bytes(50)))
    with pytest.raises(InvalidRelayRequest, match="must be a string"):
        RelayRequest.decode(b"mpr1aaaa")  # type: ignore[arg-type]


def test_malformed_vouchers_are_refused_on_construction():
    payee = Account.from_key(b"\x42" * 32)
    payer = Account.from_key(b"\x41" * 32)
    key = ChannelKey(payer.address, payee.address, ETH, 1)
    packed = pack_voucher(key, sign_voucher(payer, chain_id=5, escrow="0x" + "ab" * 20, channel_id=key.id,
                                            amount=10, ledger_root=bytes(32)))

    def build(vouchers):
        return sign_relay_request(payee, chain_id=5, escrow="0x" + "ab" * 20, payee=payee.address, token=ETH,
                                  vouchers=vouchers, max_fee=1, deadline=2**40)

    for bad, reason in [(b"", "1 to"), (packed[:-1], "cut short"), (packed[:50], "cut short"),
                        (bytes([8]) + packed[1:], "unknown flags"), (packed + packed, "appears twice"),
                        (packed + bytes([CONTRACT_SIGNATURE]) + packed[1:77] + b"\xff\xff", "cut short")]:
        with pytest.raises(InvalidRelayRequest, match=reason):
            build(bad)
    with pytest.raises(InvalidRelayRequest, match="above 65,536 bytes"):
        build(packed * 464)  # too large to travel as one text (before anything is parsed)
    with pytest.raises(InvalidRelayRequest, match="max fee"):
        sign_relay_request(payee, chain_id=5, escrow="0x" + "ab" * 20, payee=payee.address, token=ETH,
                           vouchers=packed, max_fee=-1, deadline=2**40)


# -- choosing what to relay -------------------------------------------------------------------------


def test_authorize_relay_picks_only_fully_funded_claimable_vouchers(make_payer, clients, broke_payee, lib_escrow,
                                                                    api_token, caplog):
    _, (good, later, over, claimed) = paid(make_payer, clients[0], broke_payee,
                                           [3 * 10**16, 2 * 10**16, 10**15, 10**16])
    # a channel that expires before the deadline, and one whose only voucher is in another token
    (soon,) = paid(make_payer, clients[1], broke_payee, [10**16], expires_in=timedelta(hours=2))[1]
    paid(make_payer, clients[2], broke_payee, [5_000], deposit=10_000, token=api_token.address)
    # a voucher above its deposit (the store took it in from elsewhere): claimRelayed would refuse it
    above = sign_voucher(clients[0], chain_id=lib_escrow.chain_id, escrow=lib_escrow.address, channel_id=over.id,
                         amount=2 * 10**17, ledger_root=b"\x77" * 32)
    with broke_payee.store.transaction() as tx:
        tx.add_voucher(above, 2, over.ref)
    best, _ = broke_payee.store.best_voucher(claimed.ref)
    lib_escrow.claim(clients[0], claimed.key, best)  # anyone may claim: nothing is left on this one
    with caplog.at_level(logging.WARNING, logger="micropay.relay"):
        request = broke_payee.authorize_relay(max_fee=10**15, deadline=timedelta(hours=3))
    inside = request.channels()
    assert [(v.channel_id, v.amount) for v in inside] == [(good.id, 3 * 10**16), (later.id, 2 * 10**16)]
    assert (request.payee, request.token, request.max_fee) == (BROKE.address, ETH, 10**15)
    assert request.deadline == lib_escrow.now() + 3 * 3600
    left_out = caplog.text
    assert over.id.hex() in left_out and "above its deposit" in left_out
    assert soon.id.hex() in left_out and "before the deadline" in left_out
    assert claimed.id.hex() not in left_out
    token_request = broke_payee.authorize_relay(max_fee=100, token=api_token.address)
    assert [v.amount for v in token_request.channels()] == [5_000]


def test_nothing_to_relay_and_bad_arguments(make_payer, clients, broke_payee, lib_escrow):
    with pytest.raises(NothingToClaim):
        broke_payee.authorize_relay(max_fee=1)
    paid(make_payer, clients[0], broke_payee, [10**16])
    with pytest.raises(InvalidRelayRequest, match="deadline"):
        broke_payee.authorize_relay(max_fee=1, deadline=3600)  # a unix time: long past
    with pytest.raises(InvalidRelayRequest, match="max fee"):
        broke_payee.authorize_relay(max_fee=-5)
    with pytest.raises(MicropayValueError, match="LocalAccount"):
        Payee(lib_escrow, BROKE.address, broke_payee.store).authorize_relay(max_fee=1)


# -- relaying -------------------------------------------------------------------------------------------


def test_a_payee_with_no_eth_gets_paid_through_a_relayer(make_payer, clients, broke_payee, lib_escrow, relayer):
    _, records = paid(make_payer, clients[0], broke_payee, [3 * 10**16, 2 * 10**16])
    assert lib_escrow.balance(BROKE.address) == 0
    request = RelayRequest.decode(broke_payee.authorize_relay(max_fee=10**15).encode())  # as it travels
    quote = relayer.quote(request)
    assert (quote.total, quote.max_fee, quote.fee) == (5 * 10**16, 10**15, 10**15) and quote.gas > 50_000
    relayer_before = lib_escrow.balance(relayer.account.address)
    receipt = relayer.submit(request)
    assert lib_escrow.relayed_in(receipt) == (5 * 10**16, 10**15)
    assert lib_escrow.balance(BROKE.address) == 5 * 10**16 - 10**15
    assert lib_escrow.balance(relayer.account.address) - relayer_before == 10**15 - receipt.fee
    assert receipt.gas_used <= quote.gas
    assert [lib_escrow.channel(r.key).claimed for r in records] == [3 * 10**16, 2 * 10**16]
    assert [u.claimed for u in broke_payee.unclaimed()] == [3 * 10**16, 2 * 10**16]  # the store reads it back
    with pytest.raises(NothingToClaim):
        broke_payee.plan_settlement()


def test_a_replayed_request_finds_nothing_to_claim(make_payer, clients, broke_payee, lib_escrow, relayer):
    paid(make_payer, clients[0], broke_payee, [10**16])
    request = broke_payee.authorize_relay(max_fee=10**14)
    relayer.submit(request)
    nonce = lib_escrow.w3.eth.get_transaction_count(relayer.account.address)
    with pytest.raises(NothingToClaim, match="submitted already"):
        relayer.submit(request)
    assert lib_escrow.w3.eth.get_transaction_count(relayer.account.address) == nonce  # refused before sending
    with pytest.raises(NothingToClaim):  # and the escrow itself refuses it: the revert, decoded
        lib_escrow.claim_relayed(relayer.account, request, 10**14)


def test_an_expired_request_is_refused_before_sending(make_payer, clients, broke_payee, lib_escrow, relayer):
    paid(make_payer, clients[0], broke_payee, [10**16])
    fresh = broke_payee.authorize_relay(max_fee=10**14)
    expired = sign_relay_request(BROKE, chain_id=fresh.chain_id, escrow=fresh.escrow, payee=fresh.payee,
                                 token=fresh.token, vouchers=fresh.vouchers, max_fee=fresh.max_fee,
                                 deadline=lib_escrow.now() - 1)
    nonce = lib_escrow.w3.eth.get_transaction_count(relayer.account.address)
    with pytest.raises(InvalidRelayRequest, match="expired"):
        relayer.submit(expired)
    with pytest.raises(InvalidRelayRequest, match="expired"):
        relayer.quote(expired)
    assert lib_escrow.w3.eth.get_transaction_count(relayer.account.address) == nonce
    with pytest.raises(InvalidRelayRequest, match="RelayExpired"):  # the escrow's own refusal, decoded
        lib_escrow.claim_relayed(relayer.account, expired, 0)


def test_fees_are_capped_by_the_request_and_the_payout(make_payer, clients, broke_payee, lib_escrow, relayer):
    paid(make_payer, clients[0], broke_payee, [10**15])
    greedy = broke_payee.authorize_relay(max_fee=10**18)  # more than the payout
    assert relayer.quote(greedy).fee == 10**15
    with pytest.raises(InvalidRelayRequest, match="above the payout"):
        relayer.quote(greedy, fee=10**15 + 1)
    modest = broke_payee.authorize_relay(max_fee=10**12)
    with pytest.raises(InvalidRelayRequest, match="max fee"):
        relayer.submit(modest, fee=10**12 + 1)
    with pytest.raises(InvalidRelayRequest, match="FeeTooHigh"):
        lib_escrow.claim_relayed(relayer.account, modest, 10**12 + 1)
    receipt = relayer.submit(modest, fee=10**11)
    assert lib_escrow.relayed_in(receipt) == (10**15, 10**11)
    assert lib_escrow.balance(BROKE.address) == 10**15 - 10**11


def test_a_tampered_request_or_another_escrow_is_refused(make_payer, clients, broke_payee, lib_escrow, relayer,
                                                         w3, fund):
    paid(make_payer, clients[0], broke_payee, [10**16])
    request = broke_payee.authorize_relay(max_fee=10**14)
    tampered = dataclasses.replace(request, max_fee=10**16)
    with pytest.raises(InvalidSignature, match="not signed by its payee"):
        relayer.submit(tampered)
    with pytest.raises(InvalidSignature):
        lib_escrow.claim_relayed(relayer.account, tampered, 10**16)
    other = Escrow.deploy(w3, fund(Account.from_key(b"\x36" * 32)))
    with pytest.raises(InvalidRelayRequest, match="is for escrow"):
        Relayer(other, relayer.account).submit(request)
    assert lib_escrow.balance(BROKE.address) == 0


def test_a_channel_that_expired_since_signing_is_refused(make_payer, clients, broke_payee, lib_escrow, relayer,
                                                         tester):
    paid(make_payer, clients[0], broke_payee, [10**16], expires_in=timedelta(hours=3))
    signed = broke_payee.authorize_relay(max_fee=10**14, deadline=timedelta(hours=2))
    request = sign_relay_request(BROKE, chain_id=signed.chain_id, escrow=signed.escrow, payee=signed.payee,
                                 token=signed.token, vouchers=signed.vouchers, max_fee=signed.max_fee,
                                 deadline=lib_escrow.now() + 10 * 3600)  # outlives the channel
    tester.time_travel(lib_escrow.now() + 4 * 3600)
    tester.mine_blocks(1)
    with pytest.raises(ChannelExpired):
        relayer.submit(request)


def test_erc20_relay_pays_the_fee_in_the_token(make_payer, clients, broke_payee, lib_escrow, relayer, api_token):
    paid(make_payer, clients[0], broke_payee, [7_000_000], deposit=10_000_000, token=api_token.address)
    request = broke_payee.authorize_relay(max_fee=250_000, token=api_token.address)
    receipt = relayer.submit(request)
    assert lib_escrow.relayed_in(receipt) == (7_000_000, 250_000)
    assert api_token.functions.balanceOf(BROKE.address).call() == 6_750_000
    assert api_token.functions.balanceOf(relayer.account.address).call() == 250_000
    assert lib_escrow.balance(BROKE.address) == 0


def test_a_contract_payee_signs_through_its_owner(make_payer, clients, lib_escrow, relayer, deploy_helper):
    wallet = deploy_helper("OwnerWallet", OWNER.address)  # EIP-1271: accepts its owner's signatures
    payer = make_payer(clients[0])
    record = payer.open_channel(wallet.address, 10**17)
    payment = payer.pay(record.id, 4 * 10**16, task="for a wallet")
    request = sign_relay_request(OWNER, chain_id=lib_escrow.chain_id, escrow=lib_escrow.address,
                                 payee=wallet.address, token=ETH,
                                 vouchers=pack_voucher(record.key, payment.voucher), max_fee=10**15,
                                 deadline=lib_escrow.now() + 600)
    relayer.submit(request)
    assert lib_escrow.balance(wallet.address) == 4 * 10**16 - 10**15
