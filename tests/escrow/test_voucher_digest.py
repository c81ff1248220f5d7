"""MicropayEscrow.voucherDigest equals eth-account's EIP-712 hash of the same voucher."""

import pytest
from eth_account.messages import encode_typed_data
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import voucher_typed_data
from micropay.voucher import voucher_digest


def eth_account_digest(chain_id, escrow, channel_id, amount, root):
    signable = encode_typed_data(full_message=voucher_typed_data(chain_id, escrow, channel_id, amount, root))
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


@settings(max_examples=60, deadline=None)
@given(channel_id=st.binary(min_size=32, max_size=32), amount=st.integers(0, 2**256 - 1),
       root=st.binary(min_size=32, max_size=32))
def test_digest_matches_eth_account(w3, escrow, channel_id, amount, root):
    expected = eth_account_digest(w3.eth.chain_id, escrow.address, channel_id, amount, root)
    assert escrow.functions.voucherDigest(channel_id, amount, root).call() == expected


@pytest.mark.parametrize("digest_elsewhere", [
    pytest.param(lambda w3, escrow, other_escrow, args: other_escrow.functions.voucherDigest(*args).call(),
                 id="another-escrow"),
    pytest.param(lambda w3, escrow, other_escrow, args: eth_account_digest(w3.eth.chain_id + 1, escrow.address, *args),
                 id="another-chain"),
])
def test_domain_commits_to_chain_and_contract(w3, escrow, other_escrow, digest_elsewhere):
    args = (b"\x01" * 32, 5, b"\x02" * 32)
    assert escrow.functions.voucherDigest(*args).call() != digest_elsewhere(w3, escrow, other_escrow, args)


def test_typehash_is_the_documented_type(escrow):
    assert escrow.functions.VOUCHER_TYPEHASH().call() == keccak(
        text="Voucher(bytes32 channelId,uint256 cumulativeAmount,bytes32 ledgerRoot)")


def test_domain_is_version_2(w3, escrow):
    _, name, version, chain_id, contract, salt, extensions = escrow.functions.eip712Domain().call()
    assert (name, version, chain_id, contract) == ("MicropayEscrow", "2", w3.eth.chain_id, escrow.address)
    assert (salt, extensions) == (b"\x00" * 32, [])


def test_library_digest_matches_the_contract(w3, escrow):
    args = (b"\x03" * 32, 10**18, b"\x04" * 32)
    ours = voucher_digest(w3.eth.chain_id, bytes.fromhex(escrow.address[2:]), *args)
    assert escrow.functions.voucherDigest(*args).call() == ours
