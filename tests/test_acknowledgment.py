"""Acknowledgments: the digest equals eth-account's EIP-712 encoding; forms and signers are checked."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import given
from hypothesis import strategies as st

from micropay.acknowledgment import Acknowledgment, sign_acknowledgment
from micropay.errors import InvalidAcknowledgment, MicropayError
from micropay.voucher import sign_voucher

PAYEE = Account.from_key(b"\x21" * 32)
ESCROW = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def ack(**overrides):
    fields = {"chain_id": 31337, "escrow": ESCROW, "channel_id": b"\x01" * 32, "amount": 5 * 10**15,
              "ledger_root": b"\x02" * 32} | overrides
    return sign_acknowledgment(PAYEE, **fields)


@given(chain_id=st.integers(1, 2**64 - 1), channel=st.binary(min_size=32, max_size=32),
       amount=st.integers(0, 2**96 - 1), root=st.binary(min_size=32, max_size=32))
def test_the_signature_is_eth_accounts_over_the_same_typed_data(chain_id, channel, amount, root):
    signed = ack(chain_id=chain_id, channel_id=channel, amount=amount, ledger_root=root)
    expected = Account.sign_message(encode_typed_data(full_message=signed.typed_data()), PAYEE.key)
    assert signed.signature == expected.signature
    assert signed.signer == PAYEE.address


def test_the_json_form_round_trips_and_names_its_signer():
    signed = ack()
    assert Acknowledgment.from_dict(signed.to_dict()) == signed
    assert signed.to_dict()["signer"] == PAYEE.address


def test_verify_refuses_another_signer_and_another_channel():
    signed = ack()
    signed.verify(PAYEE.address, chain_id=31337, escrow=ESCROW, channel_id=b"\x01" * 32)
    with pytest.raises(InvalidAcknowledgment, match="not by the payee"):
        signed.verify(Account.from_key(b"\x22" * 32).address, chain_id=31337, escrow=ESCROW, channel_id=b"\x01" * 32)
    for chain_id, channel in ((1, b"\x01" * 32), (31337, b"\x03" * 32)):
        with pytest.raises(InvalidAcknowledgment, match="another channel"):
            signed.verify(PAYEE.address, chain_id=chain_id, escrow=ESCROW, channel_id=channel)


def test_a_voucher_signature_is_not_an_acknowledgment():
    """Same fields, same domain, another type name: the payer's voucher cannot pass as the payee's word."""
    voucher = sign_voucher(PAYEE, chain_id=31337, escrow=ESCROW, channel_id=b"\x01" * 32, amount=5,
                           ledger_root=b"\x02" * 32)
    forged = Acknowledgment(31337, ESCROW, b"\x01" * 32, 5, b"\x02" * 32, voucher.signature)
    assert forged.signer != PAYEE.address


@pytest.mark.parametrize("change", [
    {"signer": Account.from_key(b"\x22" * 32).address},
    {"cumulativeAmount": "6"},
    {"cumulativeAmount": "-1"},
    {"cumulativeAmount": 5},
    {"channelId": "0x01"},
    {"micropay": "voucher"},
    {"signature": "0x" + "00" * 65},
    {"extra": 1},
])
def test_a_tampered_or_malformed_json_form_is_refused(change):
    data = ack(amount=5).to_dict() | change
    with pytest.raises(InvalidAcknowledgment):
        Acknowledgment.from_dict(data)


@pytest.mark.parametrize("value", [None, [], "ack", {"micropay": "acknowledgment"}])
def test_anything_else_is_refused_with_the_root_error(value):
    with pytest.raises(MicropayError):
        Acknowledgment.from_dict(value)
