"""Delegated inbox keys: the digest equals eth-account's EIP-712 encoding, and an acknowledgment
signed by a delegated key passes for the payee only while the payee's delegation holds."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import given
from hypothesis import strategies as st

from micropay.acknowledgment import Acknowledgment, sign_acknowledgment
from micropay.delegation import InboxDelegation, delegate_inbox
from micropay.errors import InvalidAcknowledgment

PAYEE = Account.from_key(b"\x31" * 32)
KEY = Account.from_key(b"\x32" * 32)
STRANGER = Account.from_key(b"\x33" * 32)
ESCROW = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
CHANNEL = b"\x01" * 32
NOW = 1_800_000_000


def delegation(signer=PAYEE, key=KEY, until=NOW + 3600, escrow=ESCROW):
    return delegate_inbox(signer, key.address, chain_id=31337, escrow=escrow, until=until)


def ack_by(key, with_delegation):
    return sign_acknowledgment(key, chain_id=31337, escrow=ESCROW, channel_id=CHANNEL, amount=7,
                               ledger_root=b"\x02" * 32, delegation=with_delegation)


@given(until=st.integers(0, 2**64 - 1), chain_id=st.integers(1, 2**64 - 1))
def test_the_signature_is_eth_accounts_over_the_same_typed_data(until, chain_id):
    signed = delegate_inbox(PAYEE, KEY.address, chain_id=chain_id, escrow=ESCROW, until=until)
    expected = Account.sign_message(encode_typed_data(full_message=signed.typed_data()), PAYEE.key)
    assert signed.signature == expected.signature and signed.signer == PAYEE.address


def test_an_acknowledgment_by_a_delegated_key_passes_for_the_payee_while_the_delegation_holds():
    ack = ack_by(KEY, delegation())
    assert ack.signer == KEY.address
    ack.verify(PAYEE.address, chain_id=31337, escrow=ESCROW, channel_id=CHANNEL, now=NOW)
    again = Acknowledgment.from_dict(ack.to_dict())  # the JSON an inbox answers with, delegation included
    assert again == ack
    again.verify(PAYEE.address, chain_id=31337, escrow=ESCROW, channel_id=CHANNEL, now=NOW)
    with pytest.raises(InvalidAcknowledgment, match="ran out"):
        ack.verify(PAYEE.address, chain_id=31337, escrow=ESCROW, channel_id=CHANNEL, now=NOW + 3601)


@pytest.mark.parametrize(("given", "reason"), [
    (None, "not by the payee"),  # no delegation at all
    (InboxDelegation(31337, ESCROW, PAYEE.address, KEY.address, NOW + 3600, delegation(signer=STRANGER).signature),
     "signed by .*, not by the payee"),  # naming the payee, signed by another
    (delegation(key=STRANGER), "no delegation from the payee"),  # delegated to another key
    (delegation(escrow="0x" + "44" * 20), "another escrow"),
])
def test_an_acknowledgment_by_another_key_is_refused_without_the_payees_delegation_to_it(given, reason):
    ack = ack_by(KEY, given)
    with pytest.raises(InvalidAcknowledgment, match=reason):
        ack.verify(PAYEE.address, chain_id=31337, escrow=ESCROW, channel_id=CHANNEL, now=NOW)


def test_a_tampered_delegation_is_refused():
    data = delegation().to_dict() | {"until": NOW + 10**9}  # the key stretches its own term
    forged = InboxDelegation.from_dict(data)
    with pytest.raises(InvalidAcknowledgment, match="not by the payee"):
        forged.verify(PAYEE.address, KEY.address, chain_id=31337, escrow=ESCROW, now=NOW)
    for bad in ({**data, "until": -1}, {**data, "signature": "0x00"}, {**data, "extra": 1}, "garbage"):
        with pytest.raises(InvalidAcknowledgment):
            InboxDelegation.from_dict(bad)
