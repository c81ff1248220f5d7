"""Payment text: round trip, and anything malformed is an InvalidVoucher and nothing else."""

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from micropay.errors import InvalidVoucher
from micropay.ledger import Ledger, TaskReceipt
from micropay.payment import Payment, parse_payment
from micropay.voucher import sign_voucher

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
