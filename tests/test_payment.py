"""Payment text: round trip, and anything malformed is an InvalidVoucher and nothing else."""

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from micropay.errors import InvalidSignature, InvalidVoucher
from micropay.ledger import Ledger, TaskReceipt
from micropay.payment import Payment, parse_payment
from micropay.voucher import MAX_CONTRACT_SIGNATURE, Voucher, sign_voucher

PAYER = Account.from_key(b"\x05" * 32)
receipts = st.lists(st.builds(TaskReceipt, task_id=st.text(min_size=1, max_size=30).filter(str.strip),
                              amount=st.integers(1, 10**20), note=st.text(max_size=40)), min_size=1, max_size=4)


def payment_of(items, first_index=0):
    ledger = Ledger.of(items)
    voucher = sign_voucher(PAYER, chain_id=10, escrow="0x" + "ab" * 20, channel_id=b"\x07" * 32,
                           amount=ledger.total, ledger_root=ledger.root)
    return Payment.of(voucher, tuple(items[first_index:]), first_index)


@settings(max_examples=200, deadline=None)
@given(items=receipts)
def test_round_trip(items):
    payment = payment_of(items)
    text = payment.encode()
    assert text.startswith("mpp1") and text.isalnum()
    assert Payment.decode(text) == payment == parse_payment(text)


class WalletSigner:
    """A contract wallet's signer: its "signature" is any bytes (a Safe's owners' signatures)."""

    address = "0x" + "cd" * 20

    def __init__(self, size):
        self.size = size

    def sign_digest(self, digest):
        return (digest * (self.size // 32 + 1))[: self.size]


def contract_payment_of(items, size, first_index=0):
    ledger = Ledger.of(items)
    voucher = sign_voucher(WalletSigner(size), chain_id=10, escrow="0x" + "ab" * 20, channel_id=b"\x07" * 32,
                           amount=ledger.total, ledger_root=ledger.root)
    return Payment.of(voucher, tuple(items[first_index:]), first_index)


@settings(max_examples=100, deadline=None)
@given(items=receipts, size=st.integers(1, MAX_CONTRACT_SIGNATURE).filter(lambda n: n != 65),
       first_index=st.integers(0, 3))
def test_a_contract_signature_travels_as_mpp2(items, size, first_index):
    payment = contract_payment_of(items, size, min(first_index, len(items) - 1))
    assert payment.voucher.is_contract_signature and len(payment.voucher.signature) == size
    text = payment.encode()
    assert text.startswith("mpp2") and text.isalnum()
    assert Payment.decode(text) == payment == parse_payment(text) == parse_payment(text.upper())


def test_a_key_signature_still_travels_as_mpp1():
    payment = payment_of([TaskReceipt("logo", 5)])
    assert payment.encode().startswith("mpp1") and not payment.voucher.is_contract_signature


@pytest.mark.parametrize("length", [0, 65, MAX_CONTRACT_SIGNATURE + 1, 2**16 - 1])
def test_an_mpp2_payment_with_a_length_no_contract_signature_has_is_rejected(length):
    from micropay._utils import textform

    payment = contract_payment_of([TaskReceipt("logo", 5)], 100)
    raw = payment.voucher.to_bytes()
    body = raw[:104] + length.to_bytes(2, "big") + b"\x01" * min(length, 5000) + (0).to_bytes(4, "big") + b"\x01"
    with pytest.raises(InvalidVoucher):
        Payment.decode(textform.wrap("mpp2", body))


def test_a_bare_voucher_with_a_contract_signature_is_mpv1():
    voucher = contract_payment_of([TaskReceipt("logo", 5)], 130).voucher
    assert parse_payment(voucher.encode()) == Payment.bare(voucher)
    with pytest.raises(InvalidSignature):
        Voucher(10, voucher.escrow, voucher.channel_id, voucher.amount, voucher.ledger_root, b"")


@settings(max_examples=300, deadline=None)
@given(items=receipts, data=st.data())
def test_single_character_mutations_of_mpp2_are_caught(items, data):
    text = contract_payment_of(items, 130).encode()
    i = data.draw(st.integers(0, len(text) - 1))
    char = data.draw(st.sampled_from("abcdefghijklmnopqrstuvwxyz234567018!"))
    if char == text[i]:
        return
    with pytest.raises(InvalidVoucher):
        Payment.decode(text[:i] + char + text[i + 1:])


def test_parse_payment_reads_a_bare_voucher_as_a_payment_without_receipts():
    voucher = payment_of([TaskReceipt("logo", 5)]).voucher
    parsed = parse_payment(voucher.encode())
    assert parsed == Payment.bare(voucher) and parsed.voucher == voucher and parsed.is_bare


@settings(max_examples=800, deadline=None)
@given(items=receipts, data=st.data())
def test_single_character_mutations_are_caught(items, data):
    text = payment_of(items).encode()
    i = data.draw(st.integers(0, len(text) - 1))
    char = data.draw(st.sampled_from("abcdefghijklmnopqrstuvwxyz234567018!"))
    if char == text[i]:
        return
    with pytest.raises(InvalidVoucher):
        Payment.decode(text[:i] + char + text[i + 1:])


@settings(max_examples=500, deadline=None)
@given(text=st.one_of(st.text(), st.text(alphabet="abcdefghijklmnopqrstuvwxyz234567").map(lambda s: "mpp1" + s)))
def test_random_text_raises_only_invalid_voucher(text):
    with pytest.raises(InvalidVoucher):
        parse_payment(text)
