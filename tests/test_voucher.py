"""Vouchers: the fast path equals eth-account and the contract; every malformed input is rejected."""

import json
import string

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak as reference_keccak
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from helpers import ETH, SECP256K1_N, high_s
from micropay.errors import DomainMismatch, InvalidSignature, InvalidVoucher
from micropay.packing import pack_voucher
from micropay.types import MAX_AMOUNT
from micropay.voucher import (
    HEADER_SIZE,
    MAX_CHAIN_ID,
    MAX_CONTRACT_SIGNATURE,
    TEXT_PREFIX,
    Voucher,
    sign_voucher,
    voucher_digest,
)

ACCOUNT = Account.from_key(b"\x42" * 32)
ESCROW = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
CHAIN = 131277322940537

accounts = st.integers(1, SECP256K1_N - 1).map(lambda k: Account.from_key(k.to_bytes(32, "big")))
addresses = st.binary(min_size=20, max_size=20).map(lambda b: Account.from_key(reference_keccak(b)).address)
voucher_fields = st.fixed_dictionaries({
    "chain_id": st.integers(1, MAX_CHAIN_ID),
    "escrow": addresses,
    "channel_id": st.binary(min_size=32, max_size=32),
    "amount": st.integers(0, MAX_AMOUNT),
    "ledger_root": st.binary(min_size=32, max_size=32),
})
FAST = settings(deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.large_base_example])


def make(amount=1000, **overrides):
    fields = {"chain_id": CHAIN, "escrow": ESCROW, "channel_id": b"\x01" * 32, "amount": amount,
              "ledger_root": b"\x02" * 32}
    fields.update(overrides)
    return sign_voucher(ACCOUNT, **fields)


def eth_account_signature(account, fields):
    typed = {
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                             {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}],
            "Voucher": [{"name": "channelId", "type": "bytes32"}, {"name": "cumulativeAmount", "type": "uint256"},
                        {"name": "ledgerRoot", "type": "bytes32"}],
        },
        "primaryType": "Voucher",
        "domain": {"name": "MicropayEscrow", "version": "2", "chainId": fields["chain_id"],
                   "verifyingContract": fields["escrow"]},
        "message": {"channelId": fields["channel_id"], "cumulativeAmount": fields["amount"],
                    "ledgerRoot": fields["ledger_root"]},
    }
    signable = encode_typed_data(full_message=typed)
    digest = reference_keccak(b"\x19" + signable.version + signable.header + signable.body)
    return digest, Account.sign_message(signable, account.key)


# --- the fast path equals the reference implementations -------------------------------------

@settings(max_examples=2000, deadline=None)
@given(account=accounts, fields=voucher_fields)
def test_fast_path_equals_eth_account_byte_for_byte(account, fields):
    voucher = sign_voucher(account, **fields)
    digest, reference = eth_account_signature(account, fields)
    assert voucher.digest() == digest
    assert voucher.signature == bytes(reference.signature)
    assert voucher.signer == account.address


@settings(FAST, max_examples=1000)
@given(fields=voucher_fields)
def test_recovery_equals_eth_account(fields):
    voucher = sign_voucher(ACCOUNT, **fields)
    signable = encode_typed_data(full_message=voucher.typed_data())
    assert Account.recover_message(signable, signature=voucher.signature) == voucher.signer == ACCOUNT.address


digest_inputs = st.tuples(st.binary(min_size=32, max_size=32), st.integers(0, MAX_AMOUNT),
                          st.binary(min_size=32, max_size=32))


@pytest.fixture(scope="module")
def digest_probe(deploy_helper):
    return deploy_helper("DigestProbe")


@settings(FAST, max_examples=20)
@given(batch=st.lists(digest_inputs, min_size=100, max_size=100))
def test_digest_equals_the_contracts_voucher_digest(w3, escrow, digest_probe, batch):
    ids, amounts, roots = (list(column) for column in zip(*batch, strict=False))
    contract = digest_probe.functions.digests(escrow.address, ids, amounts, roots).call()
    ours = [voucher_digest(w3.eth.chain_id, bytes.fromhex(escrow.address[2:]), *item) for item in batch]
    assert ours == contract  # 20 batches of 100: 2,000 vouchers


def test_contract_accepts_a_fast_path_voucher(w3, escrow, channels, payer, payee, key_of):
    key, _ = channels.open(payer, payee, 10**18)
    voucher = sign_voucher(Account.from_key(key_of(payer)), chain_id=w3.eth.chain_id, escrow=escrow.address,
                           channel_id=key.id(), amount=12345, ledger_root=b"\x07" * 32)
    before = w3.eth.get_balance(payee)
    packed = pack_voucher(key.channel_key(), voucher)
    assert len(packed) == 141  # the payer's own ECDSA signature travels as ERC-2098's 64 bytes
    w3.eth.wait_for_transaction_receipt(escrow.functions.claim(payee, ETH, packed).transact({"from": payer}))
    assert w3.eth.get_balance(payee) - before == 12345


def test_contract_accepts_a_delegated_voucher_and_a_wallets_contract_signature(w3, escrow, channels, payer, payee,
                                                                               deploy_helper):
    hot = Account.create()
    key, _ = channels.open(payer, payee, 10**18, signer=hot.address)
    voucher = sign_voucher(hot, chain_id=w3.eth.chain_id, escrow=escrow.address, channel_id=key.id(), amount=7,
                           ledger_root=b"\x07" * 32)
    with pytest.raises(InvalidSignature, match="not by the payer"):
        voucher.verify(payer)
    voucher.verify(hot.address)
    w3.eth.wait_for_transaction_receipt(escrow.functions.claim(
        payee, ETH, pack_voucher(key.channel_key(), voucher)).transact({"from": payer}))
    assert escrow.functions.channel(key.id()).call()[1] == 7
    # A wallet whose owner signs: 65 bytes of the owner's key, which the escrow hands to EIP-1271.
    owner = Account.create()
    wallet = deploy_helper("OwnerWallet", owner.address)
    wallet_key, _ = channels.open(payer, payee, 10**18, signer=wallet.address)
    signed = sign_voucher(owner, chain_id=w3.eth.chain_id, escrow=escrow.address, channel_id=wallet_key.id(),
                          amount=9, ledger_root=b"\x07" * 32)
    assert not signed.is_contract_signature and signed.signer == owner.address
    w3.eth.wait_for_transaction_receipt(escrow.functions.claim(
        payee, ETH, pack_voucher(wallet_key.channel_key(), signed)).transact({"from": payer}))
    assert escrow.functions.channel(wallet_key.id()).call()[1] == 9


# --- wallets ------------------------------------------------------------------------------------

def test_typed_data_is_what_a_wallet_signs():
    voucher = make()
    typed = json.loads(json.dumps(voucher.typed_data()))  # as it crosses to a browser wallet and back
    signed = Account.sign_message(encode_typed_data(full_message=typed), ACCOUNT.key)
    wrapped = Voucher.from_typed_signature(typed, "0x" + signed.signature.hex())  # as MetaMask returns it
    assert wrapped == voucher


def test_wallet_signature_with_v_0_or_1_is_normalised():
    voucher = make()
    raw = voucher.signature[:64] + bytes([voucher.signature[64] - 27])
    assert Voucher.from_typed_signature(voucher.typed_data(), raw) == voucher


@pytest.mark.parametrize("mutate", [
    lambda t: t.update(primaryType="Permit"),
    lambda t: t["domain"].update(name="Other"),
    lambda t: t["types"].update(Voucher=[]),
    lambda t: t.pop("message"),
    lambda t: t["message"].update(cumulativeAmount="12x"),
])
def test_foreign_typed_data_is_rejected(mutate):
    voucher = make()
    typed = voucher.typed_data()
    mutate(typed)
    with pytest.raises(InvalidVoucher):
        Voucher.from_typed_signature(typed, voucher.signature)


# --- verify -------------------------------------------------------------------------------------

def test_verify_accepts_the_payer():
    make().verify(ACCOUNT.address, chain_id=CHAIN, escrow=ESCROW.lower())


def test_verify_rejects_another_signer():
    with pytest.raises(InvalidSignature, match="not by the payer"):
        make().verify(Account.create().address)


@pytest.mark.parametrize("domain", [
    pytest.param({"chain_id": 1}, id="another-chain"),
    pytest.param({"escrow": "0x" + "11" * 20}, id="another-escrow"),
])
def test_verify_rejects_another_domain(domain):
    with pytest.raises(DomainMismatch):
        make().verify(ACCOUNT.address, **domain)


def test_voucher_moved_to_another_domain_recovers_someone_else():
    voucher = make()
    moved = Voucher(1, voucher.escrow, voucher.channel_id, voucher.amount, voucher.ledger_root, voucher.signature)
    with pytest.raises(InvalidSignature):
        moved.verify(ACCOUNT.address)


# --- rejections -----------------------------------------------------------------------------------

def test_high_s_is_rejected():
    voucher = make()
    with pytest.raises(InvalidSignature, match="high s"):
        Voucher(CHAIN, ESCROW, voucher.channel_id, voucher.amount, voucher.ledger_root, high_s(voucher.signature))


@pytest.mark.parametrize("v", [0, 1, 26, 29, 255])
def test_v_outside_27_28_is_rejected(v):
    voucher = make()
    with pytest.raises(InvalidSignature, match="v must be 27 or 28"):
        Voucher(CHAIN, ESCROW, voucher.channel_id, voucher.amount, voucher.ledger_root,
                voucher.signature[:64] + bytes([v]))


@pytest.mark.parametrize("length", [0, MAX_CONTRACT_SIGNATURE + 1])
def test_signature_of_no_or_too_many_bytes_is_rejected(length):
    with pytest.raises(InvalidSignature, match="65 bytes"):
        Voucher(CHAIN, ESCROW, b"\x01" * 32, 1, b"\x02" * 32, b"\x01" * length)


@pytest.mark.parametrize("length", [1, 64, 66, 130, MAX_CONTRACT_SIGNATURE])
def test_a_contract_signature_of_any_other_length_is_carried_but_names_no_key(length):
    voucher = Voucher(CHAIN, ESCROW, b"\x01" * 32, 1, b"\x02" * 32, b"\x01" * length)
    assert voucher.is_contract_signature
    with pytest.raises(InvalidSignature, match="verify it through the escrow"):
        voucher.verify(ACCOUNT.address)
    with pytest.raises(InvalidSignature, match="names no key"):
        _ = voucher.signer
    raw = voucher.to_bytes()
    assert len(raw) == HEADER_SIZE + length and Voucher.from_bytes(raw) == voucher
    assert Voucher.decode(voucher.encode()) == voucher
    assert Voucher.from_dict(json.loads(json.dumps(voucher.to_dict()))) == voucher


def test_the_binary_form_of_a_key_signature_is_unchanged():
    voucher = make()
    raw = voucher.to_bytes()
    assert len(raw) == 169 and raw[HEADER_SIZE:] == voucher.signature
    assert raw[:8] == CHAIN.to_bytes(8, "big") and raw[8:28] == bytes.fromhex(ESCROW[2:])


@pytest.mark.parametrize("size", [HEADER_SIZE, HEADER_SIZE + MAX_CONTRACT_SIGNATURE + 1])
def test_voucher_bytes_outside_the_bounds_are_rejected(size):
    with pytest.raises(InvalidVoucher, match="long"):
        Voucher.from_bytes(make().to_bytes()[:HEADER_SIZE].ljust(size, b"\x01"))


def test_zero_r_is_rejected():
    with pytest.raises(InvalidSignature):
        Voucher(CHAIN, ESCROW, b"\x01" * 32, 1, b"\x02" * 32, bytes(32) + (1).to_bytes(32, "big") + b"\x1b")


@pytest.mark.parametrize("amount", [-1, MAX_AMOUNT + 1, 2**256, True, 1.5, "10"])
def test_amount_outside_the_contracts_range_is_rejected(amount):
    with pytest.raises(InvalidVoucher):
        make(amount=amount)


@pytest.mark.parametrize("overrides", [
    {"channel_id": b"\x01" * 31}, {"channel_id": "0x" + "01" * 32}, {"ledger_root": b"\x01" * 33},
    {"chain_id": 0}, {"chain_id": MAX_CHAIN_ID + 1}, {"chain_id": True},
    {"escrow": "0x1234"}, {"escrow": "0x5fbDB2315678afecb367f032d93F642f64180aa3"},  # bad EIP-55 checksum
])
def test_malformed_fields_are_rejected(overrides):
    with pytest.raises(InvalidVoucher):
        make(**overrides)


def test_signer_is_recovered_once():
    voucher = make()
    assert voucher.signer == ACCOUNT.address
    assert "signer_bytes" in voucher.__dict__  # cached after the first recovery


# --- text form ----------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(fields=voucher_fields)
def test_text_round_trip(fields):
    voucher = sign_voucher(ACCOUNT, **fields)
    text = voucher.encode()
    assert text.startswith(TEXT_PREFIX) and text.isalnum() and text == text.lower()
    assert Voucher.decode(text) == voucher


@settings(max_examples=300, deadline=None)
@given(fields=voucher_fields)
def test_json_round_trip(fields):
    voucher = sign_voucher(ACCOUNT, **fields)
    assert Voucher.from_dict(json.loads(json.dumps(voucher.to_dict()))) == voucher


def test_decode_ignores_line_wraps_and_case():
    text = make().encode()
    wrapped = "\n".join(text[i:i + 70] for i in range(0, len(text), 70))
    assert Voucher.decode("  " + wrapped.upper() + "\r\n") == make()


ALPHABET = string.ascii_lowercase + "234567"


@pytest.mark.parametrize("kind", ["substitute", "delete", "insert"])
@settings(max_examples=500, deadline=None)
@given(data=st.data())
def test_every_single_character_mutation_is_caught(kind, data):
    text = make(amount=data.draw(st.integers(0, MAX_AMOUNT))).encode()
    i = data.draw(st.integers(0, len(text) - 1))
    char = data.draw(st.sampled_from(ALPHABET + "018!-_ /+=é"))
    if kind == "substitute":
        if char == text[i]:
            return
        mutated = text[:i] + char + text[i + 1:]
    elif kind == "delete":
        mutated = text[:i] + text[i + 1:]
    else:
        mutated = text[:i] + char + text[i:]
    if "".join(mutated.split()) == text:
        return  # inserting whitespace is ignored by design
    with pytest.raises(InvalidVoucher):
        Voucher.decode(mutated)


@settings(max_examples=1000, deadline=None)
@given(text=st.one_of(st.text(), st.text(alphabet=ALPHABET).map(lambda s: TEXT_PREFIX + s)))
@example(text=TEXT_PREFIX)
@example(text=TEXT_PREFIX + "a")
@example(text=TEXT_PREFIX + "aaaaaaa=")
def test_random_text_raises_only_invalid_voucher(text):
    with pytest.raises(InvalidVoucher):
        Voucher.decode(text)


@pytest.mark.parametrize("parse", [
    pytest.param(Voucher.decode, id="decode-bytes"),
    pytest.param(lambda raw: Voucher.decode(raw.decode("latin-1")), id="decode-latin-1-text"),
])
@settings(max_examples=500, deadline=None)
@given(raw=st.binary())
def test_random_bytes_raise_only_invalid_voucher(parse, raw):
    with pytest.raises(InvalidVoucher):
        parse(raw)


@settings(max_examples=500, deadline=None)
@given(raw=st.binary(max_size=HEADER_SIZE + MAX_CONTRACT_SIGNATURE + 10))
def test_random_bytes_are_a_faithful_voucher_or_invalid_voucher(raw):
    # Past the header, any bytes may be a contract signature: a voucher's bytes carry no checksum
    # (its text does), so random bytes of a voucher's length are often one.
    try:
        voucher = Voucher.from_bytes(raw)
    except InvalidVoucher:
        return
    assert voucher.to_bytes() == raw


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=6),
    max_leaves=12,
)


@pytest.mark.parametrize("whole", [
    pytest.param(True, id="any-json-value"),
    pytest.param(False, id="one-field-replaced"),
])
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_arbitrary_json_gives_a_voucher_or_invalid_voucher(whole, data):
    valid = make().to_dict()
    if whole:
        candidate = data.draw(json_values)
    else:
        candidate = dict(valid)
        candidate[data.draw(st.sampled_from(sorted(valid)))] = data.draw(json_values)
    try:
        result = Voucher.from_dict(candidate)
    except InvalidVoucher:
        return
    # Accepted only when every field is well formed: then it is a faithful, valid Voucher.
    assert isinstance(result, Voucher)
    assert Voucher.from_dict(result.to_dict()) == result


def test_parsed_signing_key_lives_only_as_long_as_its_account():
    import gc

    from micropay._utils import crypto

    gc.collect()
    before = len(crypto._parsed_keys)
    account = Account.create()
    sign_voucher(account, chain_id=CHAIN, escrow=ESCROW, channel_id=b"\x01" * 32, amount=1, ledger_root=bytes(32))
    assert account in crypto._parsed_keys and len(crypto._parsed_keys) == before + 1
    del account
    gc.collect()
    assert len(crypto._parsed_keys) == before
