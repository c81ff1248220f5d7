"""The packed voucher encoding, on both sides: the contract refuses malformed bytes with
InvalidEncoding and malleable or empty signatures with InvalidSignature; micropay.packing writes
exactly the layout the contract reads."""

import pytest
from escrow_kit import CONTRACT_SIGNATURE, DELEGATED, KEY_ONLY, ROOT, compact, head, key_only, pack
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import ETH, SECP256K1_N, Key, high_s, reverts, transact
from micropay.errors import InvalidVoucher
from micropay.packing import compact_signature, expand_signature, pack_key, pack_voucher
from micropay.voucher import sign_voucher


@pytest.fixture
def channel(channels, payer, payee):
    key, _ = channels.open(payer, payee, 1000)
    return key


def claim(escrow, key, data):
    return transact(escrow.functions.claim(key.payee, key.token, data), key.payee)


def claim_many(escrow, key, data):
    return transact(escrow.functions.claimMany(key.payee, key.token, data), key.payee)


def close(escrow, key, data):
    return transact(escrow.functions.close(key.token, data), key.payee)


# --- malformed bytes -------------------------------------------------------------------------------

@pytest.mark.parametrize("cut", [1, 32, 64, 100, 140], ids=lambda n: f"{n}-bytes-short")
@pytest.mark.parametrize("call", [claim, claim_many, close])
def test_truncated_voucher_is_invalid_encoding(escrow, channels, channel, cut, call):
    packed = channels.voucher(channel, 500)
    assert len(packed) == 141
    with reverts(escrow, "InvalidEncoding"):
        call(escrow, channel, packed[:-cut])
    assert channels.state(channel)[1] == 0 and channels.state(channel)[4] is False


@pytest.mark.parametrize("call", [claim, close])
def test_empty_bytes_are_invalid_encoding(escrow, channel, call):
    with reverts(escrow, "InvalidEncoding"):
        call(escrow, channel, b"")


def test_truncated_delegated_voucher_is_invalid_encoding(escrow, channels, payer, payee, hot_key):
    key, _ = channels.open(payer, payee, 1000, signer=hot_key.address)
    packed = channels.voucher(key, 500)
    assert len(packed) == 161
    with reverts(escrow, "InvalidEncoding"):
        claim(escrow, key, packed[:-1])


@pytest.mark.parametrize("extra", [8, 16, 32, 64, 128], ids=lambda bit: f"bit-{bit}")
@pytest.mark.parametrize("call", [claim, claim_many, close])
def test_unknown_flag_bits_are_invalid_encoding(escrow, channels, channel, extra, call):
    signature = channels.sign(channel, 500)
    with reverts(escrow, "InvalidEncoding"):
        call(escrow, channel, pack(channel, 500, ROOT, signature, flags=extra))
    assert channels.state(channel)[1] == 0


@pytest.mark.parametrize("call", [claim, claim_many])
def test_key_only_is_for_close_alone(escrow, channels, channel, call):
    with reverts(escrow, "InvalidEncoding"):
        call(escrow, channel, key_only(channel))
    # A whole voucher with the KEY_ONLY bit set is no better.
    with reverts(escrow, "InvalidEncoding"):
        call(escrow, channel, pack(channel, 500, ROOT, channels.sign(channel, 500), flags=KEY_ONLY))
    assert channels.state(channel)[1] == 0


@pytest.mark.parametrize("flags", [KEY_ONLY | CONTRACT_SIGNATURE, KEY_ONLY | 8, KEY_ONLY | 128])
def test_key_only_with_other_bits_is_invalid_encoding(escrow, channels, channel, flags):
    with reverts(escrow, "InvalidEncoding"):
        close(escrow, channel, head(channel, flags))
    assert channels.state(channel)[4] is False


def test_key_only_of_a_delegated_channel_needs_its_signer(escrow, channels, payer, payee, hot_key):
    key, _ = channels.open(payer, payee, 1000, signer=hot_key.address)
    with reverts(escrow, "InvalidEncoding"):
        close(escrow, key, key_only(key)[:-1])
    close(escrow, key, key_only(key))
    assert channels.state(key)[4] is True


@pytest.mark.parametrize(("form", "call"), [("voucher", claim), ("voucher", close), ("key-only", close)])
def test_trailing_bytes_are_invalid_encoding(escrow, channels, channel, form, call):
    packed = channels.voucher(channel, 500) if form == "voucher" else key_only(channel)
    for trailer in (b"\x00", b"\x01" * 32):
        with reverts(escrow, "InvalidEncoding"):
            call(escrow, channel, packed + trailer)
    assert channels.state(channel)[1] == 0 and channels.state(channel)[4] is False


def test_trailing_bytes_in_a_batch_revert_it(escrow, channels, channel):
    with reverts(escrow, "InvalidEncoding"):
        claim_many(escrow, channel, channels.voucher(channel, 500) + b"\x00")
    assert channels.state(channel)[1] == 0


@pytest.mark.parametrize("delta", [1, -1, 1000])
def test_contract_signature_length_must_match_the_bytes(escrow, channels, channel, delta):
    signature = channels.sign(channel, 500)
    packed = pack(channel, 500, ROOT, signature, contract=True)
    body, tail = packed[:77], packed[79:]
    wrong = body + (len(signature) + delta).to_bytes(2, "big") + tail
    with reverts(escrow, "InvalidEncoding"):
        claim(escrow, channel, wrong)
    assert channels.state(channel)[1] == 0


# --- the signature forms -----------------------------------------------------------------------------

def test_high_s_in_the_compact_form_is_rejected(escrow, channels, channel):
    signature = channels.sign(channel, 500)
    twin = high_s(signature)
    assert int.from_bytes(twin[32:64], "big") > SECP256K1_N // 2
    for packed in (pack(channel, 500, ROOT, twin),  # yParity bit flipped, s high
                   pack(channel, 500, ROOT, signature[:32] + twin[32:64])):  # s high, yParity 0
        with reverts(escrow, "InvalidSignature"):
            claim(escrow, channel, packed)
    assert channels.state(channel)[1] == 0


@pytest.mark.parametrize("signature", [b"\x00" * 64, b"\x00" * 32 + b"\x80" + b"\x00" * 31, b"\xff" * 64],
                         ids=["all-zero", "zero-with-parity", "all-ones"])
def test_degenerate_compact_signatures_are_rejected(escrow, channels, channel, signature):
    with reverts(escrow, "InvalidSignature"):
        claim(escrow, channel, pack(channel, 500, ROOT, signature))
    assert channels.state(channel)[1] == 0


def test_both_forms_of_an_eoa_signature_are_accepted(escrow, channels, channel):
    first, second = channels.sign(channel, 300), channels.sign(channel, 500)
    claim(escrow, channel, pack(channel, 300, ROOT, first))  # 64 bytes, ERC-2098
    assert channels.state(channel)[1] == 300
    claim(escrow, channel, pack(channel, 500, ROOT, second, contract=True))  # 65 bytes behind a length
    assert channels.state(channel)[1] == 500


def test_both_forms_are_accepted_for_a_delegated_key(escrow, channels, payer, payee, hot_key):
    key, _ = channels.open(payer, payee, 1000, signer=hot_key.address)
    claim(escrow, key, pack(key, 300, ROOT, channels.sign(key, 300)))
    claim(escrow, key, pack(key, 500, ROOT, channels.sign(key, 500), contract=True))
    assert channels.state(key)[1] == 500


# --- micropay.packing writes what the contract reads ------------------------------------------------

PAYER = Account.from_key(b"\x07" * 32)
HOT = Account.from_key(b"\x08" * 32)
ESCROW = "0x" + "ab" * 20
PAYEE = "0x000000000000000000000000000000000000dEaD"


@settings(max_examples=40, deadline=None)
@given(salt=st.integers(0, 2**96 - 1), amount=st.integers(0, 2**96 - 1), root=st.binary(min_size=32, max_size=32),
       delegated=st.booleans(), token=st.sampled_from([ETH, "0x" + "cd" * 20]))
def test_pack_voucher_matches_the_reference_layout(salt, amount, root, delegated, token):
    key = Key(PAYER.address, PAYEE, token, salt, HOT.address if delegated else ETH)
    voucher = sign_voucher(HOT if delegated else PAYER, chain_id=1, escrow=ESCROW, channel_id=key.id(),
                           amount=amount, ledger_root=root)
    packed = pack_voucher(key.channel_key(), voucher)
    assert packed == pack(key, amount, root, voucher.signature)
    assert len(packed) == (161 if delegated else 141)
    assert packed[0] == (DELEGATED if delegated else 0)
    assert expand_signature(packed[-64:]) == voucher.signature
    assert compact_signature(voucher.signature) == compact(voucher.signature)
    assert pack_key(key.channel_key()) == key_only(key)


def test_pack_voucher_sends_another_keys_signature_whole():
    # A signature that is not the signer's own key (say, an EIP-1271 wallet's owner) goes in the
    # contract form: flags CONTRACT_SIGNATURE, a 2-byte length, the 65 bytes.
    key = Key(PAYER.address, PAYEE, ETH, 5)
    voucher = sign_voucher(HOT, chain_id=1, escrow=ESCROW, channel_id=key.id(), amount=9, ledger_root=ROOT)
    packed = pack_voucher(key.channel_key(), voucher)
    assert packed == pack(key, 9, ROOT, voucher.signature, contract=True)
    assert packed[0] == CONTRACT_SIGNATURE and len(packed) == 77 + 2 + 65


@pytest.mark.parametrize("length", [0, 63, 65])
def test_expand_signature_needs_64_bytes(length):
    with pytest.raises(InvalidVoucher, match="64 bytes"):
        expand_signature(b"\x01" * length)


def test_python_packed_vouchers_claim_on_chain(w3, escrow, channels, payer, payee, relayer, hot_key):
    own, _ = channels.open(payer, payee, 1000)
    delegated, _ = channels.open(payer, payee, 1000, signer=hot_key.address)
    before = w3.eth.get_balance(payee)
    transact(escrow.functions.claimMany(payee, ETH, channels.voucher(own, 100) + channels.voucher(delegated, 200)),
             relayer)
    assert w3.eth.get_balance(payee) - before == 300
