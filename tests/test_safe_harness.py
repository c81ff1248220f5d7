"""The Safe harness (tests/safe.py) drives a real Safe 1.4.1: setup, execTransaction, MultiSend
batches and EIP-1271 signatures, on eth-tester and, end to end, on anvil."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_tester.exceptions import TransactionFailed
from eth_typing import Hash32
from eth_utils.crypto import keccak
from web3 import Web3
from web3.types import Wei

from chains import Anvil, AnvilChain
from safe import (
    CALL,
    EIP1271_MAGIC_VALUE,
    SAFE_VERSION,
    Safe,
    SafeStack,
    SafeTx,
    SafeTxFailed,
    deploy_safe_stack,
    encode_multisend,
    safe_contracts,
    safe_message_hash,
    sign_hash,
)

ETHER = 10**18
#: Where Safe's FallbackManager keeps the handler: keccak256("fallback_manager.handler.address").
FALLBACK_HANDLER_SLOT = keccak(text="fallback_manager.handler.address")


@pytest.fixture(scope="session")
def owners() -> list[LocalAccount]:
    """Three owner keys, fixed so failures reproduce; ordered by address, descending, so that
    signing in list order is the wrong order and the harness must sort."""
    keys = [Account.from_key(keccak(text=f"micropay safe owner {i}")) for i in range(3)]
    return sorted(keys, key=lambda account: int(account.address, 16), reverse=True)


@pytest.fixture(scope="session")
def safe_stack(w3: Web3, deployer: str) -> SafeStack:
    return deploy_safe_stack(w3, deployer)


@pytest.fixture(scope="session")
def safe(safe_stack: SafeStack, owners: list[LocalAccount], w3: Web3, deployer: str) -> Safe:
    """A 2-of-3 Safe holding 10 ETH (session-wide: each test's changes are rolled back)."""
    created = safe_stack.create_safe(owners, threshold=2)
    w3.eth.wait_for_transaction_receipt(
        w3.eth.send_transaction({"from": deployer, "to": created.address, "value": Wei(10 * ETHER)}))
    return created


def safe_message_typed_data(chain_id: int, safe_address: str, digest: bytes) -> dict[str, Any]:
    """The EIP-712 typed data a wallet signs for a Safe message (eth_signTypedData_v4)."""
    return {
        "types": {
            "EIP712Domain": [{"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}],
            "SafeMessage": [{"name": "message", "type": "bytes"}],
        },
        "primaryType": "SafeMessage",
        "domain": {"chainId": chain_id, "verifyingContract": safe_address},
        "message": {"message": digest},
    }


def typed_data_hash(typed: dict[str, Any]) -> bytes:
    signable = encode_typed_data(full_message=typed)
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


# -- the stack and a new Safe ----------------------------------------------------------------------


def test_contracts_compile_once_through_the_project_pipeline() -> None:
    contracts = safe_contracts()
    assert set(contracts) == {"Safe", "SafeL2", "SafeProxyFactory", "CompatibilityFallbackHandler",
                              "MultiSendCallOnly"}
    assert all(len(c["bytecode"]) > 2 and c["abi"] for c in contracts.values())
    assert safe_contracts() is contracts  # in-process cache


def test_create_safe_sets_owners_threshold_and_fallback_handler(
        safe: Safe, safe_stack: SafeStack, owners: list[LocalAccount], w3: Web3) -> None:
    assert safe.contract.functions.VERSION().call() == SAFE_VERSION
    assert safe.owners() == [owner.address for owner in owners]
    assert safe.threshold() == 2
    assert safe.nonce() == 0
    handler_word = w3.eth.get_storage_at(safe.address, int.from_bytes(FALLBACK_HANDLER_SLOT, "big"))
    assert Web3.to_checksum_address(handler_word[-20:]) == safe_stack.handler.address
    assert w3.eth.get_balance(safe.address) == 10 * ETHER


def test_create_safe_with_a_bad_threshold_reverts(safe_stack: SafeStack, owners: list[LocalAccount]) -> None:
    with pytest.raises(SafeTxFailed) as info:
        safe_stack.create_safe(owners, threshold=4)  # setup reverts GS201: threshold above the owner count
    assert info.value.reason is None  # SafeProxyFactory 1.4.1 re-reverts with empty data


def test_l2_singleton_deploys_and_creates_safes(w3: Web3, deployer: str, owners: list[LocalAccount]) -> None:
    created = deploy_safe_stack(w3, deployer, l2=True).create_safe(owners[:1], threshold=1)
    assert created.owners() == [owners[0].address]


# -- execTransaction -------------------------------------------------------------------------------


def test_transaction_hash_is_the_eip712_hash_owners_sign(safe: Safe, w3: Web3) -> None:
    tx = safe.transaction("0x" + "ab" * 20, 123, b"\x01\x02", safe_tx_gas=7)
    on_chain = safe.transaction_hash(tx)
    assert tx.eip712_hash(w3.eth.chain_id, safe.address) == on_chain
    assert on_chain != safe.transaction_hash(SafeTx(tx.to, tx.value, tx.data, tx.nonce + 1))


def test_exec_transfers_eth_with_two_of_three(safe: Safe, owners: list[LocalAccount], w3: Web3,
                                              deployer: str) -> None:
    recipient = Account.create().address
    receipt = safe.exec(recipient, ETHER, b"", signers=[owners[2], owners[0]], sender=deployer)
    assert receipt.status == 1
    assert w3.eth.get_balance(recipient) == ETHER
    assert w3.eth.get_balance(safe.address) == 9 * ETHER
    assert safe.nonce() == 1
    # A second transaction signs the next nonce.
    safe.exec(recipient, ETHER, b"", signers=owners[1:], sender=deployer)
    assert w3.eth.get_balance(recipient) == 2 * ETHER
    assert safe.nonce() == 2


def test_exec_calls_a_contract(safe: Safe, owners: list[LocalAccount], deploy_helper: Callable[..., Any],
                               deployer: str) -> None:
    token = deploy_helper("TestToken")
    recipient = Account.create().address
    data = bytes.fromhex(token.encode_abi("mint", args=[recipient, 5])[2:])
    safe.exec(token.address, 0, data, owners[:2], deployer)
    assert token.functions.balanceOf(recipient).call() == 5


@pytest.mark.parametrize(("signer_indexes", "reason"), [((0,), "GS020"), ((), "GS020")], ids=["one", "none"])
def test_exec_needs_threshold_signatures(safe: Safe, owners: list[LocalAccount], deployer: str,
                                         signer_indexes: tuple[int, ...], reason: str) -> None:
    with pytest.raises(SafeTxFailed) as info:
        safe.exec(Account.create().address, 1, b"", [owners[i] for i in signer_indexes], deployer)
    assert info.value.reason == reason
    assert safe.nonce() == 0


def test_exec_rejects_a_non_owner_signature(safe: Safe, owners: list[LocalAccount], deployer: str) -> None:
    with pytest.raises(SafeTxFailed) as info:
        safe.exec(Account.create().address, 1, b"", [owners[0], Account.create()], deployer)
    assert info.value.reason == "GS026"


def test_exec_raises_when_the_inner_call_fails(safe: Safe, owners: list[LocalAccount], deployer: str) -> None:
    too_much = 100 * ETHER
    # safeTxGas 0: the Safe reverts the whole transaction (GS013) and the nonce stays.
    with pytest.raises(SafeTxFailed) as info:
        safe.exec(Account.create().address, too_much, b"", owners[:2], deployer)
    assert info.value.reason == "GS013"
    assert safe.nonce() == 0
    # safeTxGas set: execTransaction succeeds, emits ExecutionFailure and uses the nonce.
    with pytest.raises(SafeTxFailed, match="ExecutionFailure"):
        safe.exec(Account.create().address, too_much, b"", owners[:2], deployer, safe_tx_gas=100_000)
    assert safe.nonce() == 1


# -- MultiSend batches -----------------------------------------------------------------------------


def test_multisend_encoding_is_packed() -> None:
    to = "0x" + "11" * 20
    packed = encode_multisend([(to, 2, b"\xaa\xbb")])
    assert packed == bytes([CALL]) + bytes.fromhex("11" * 20) + (2).to_bytes(32, "big") + (2).to_bytes(32, "big") \
        + b"\xaa\xbb"


def test_exec_batch_of_two_eth_transfers(safe: Safe, owners: list[LocalAccount], w3: Web3, deployer: str) -> None:
    first, second = Account.create().address, Account.create().address
    receipt = safe.exec_batch([(first, ETHER, b""), (second, 2 * ETHER, b"")], owners[1:], deployer)
    assert receipt.status == 1
    assert (w3.eth.get_balance(first), w3.eth.get_balance(second)) == (ETHER, 2 * ETHER)
    assert w3.eth.get_balance(safe.address) == 7 * ETHER
    assert safe.nonce() == 1


def test_exec_batch_approve_and_transfer(safe: Safe, owners: list[LocalAccount], deploy_helper: Callable[..., Any],
                                         deployer: str) -> None:
    token = deploy_helper("TestToken")
    token.functions.mint(safe.address, 1_000).transact({"from": deployer})
    spender, recipient = Account.create().address, Account.create().address
    approve = bytes.fromhex(token.encode_abi("approve", args=[spender, 300])[2:])
    transfer = bytes.fromhex(token.encode_abi("transfer", args=[recipient, 200])[2:])
    safe.exec_batch([(token.address, 0, approve), (token.address, 0, transfer)], owners[:2], deployer)
    assert token.functions.allowance(safe.address, spender).call() == 300
    assert token.functions.balanceOf(recipient).call() == 200
    assert token.functions.balanceOf(safe.address).call() == 800


def test_exec_batch_is_atomic(safe: Safe, owners: list[LocalAccount], deploy_helper: Callable[..., Any],
                              deployer: str) -> None:
    token = deploy_helper("TestToken")
    token.functions.mint(safe.address, 100).transact({"from": deployer})
    spender = Account.create().address
    approve = bytes.fromhex(token.encode_abi("approve", args=[spender, 50])[2:])
    overdraw = bytes.fromhex(token.encode_abi("transfer", args=[spender, 101])[2:])
    with pytest.raises(SafeTxFailed) as info:
        safe.exec_batch([(token.address, 0, approve), (token.address, 0, overdraw)], owners[:2], deployer)
    assert info.value.reason == "GS013"
    assert token.functions.allowance(safe.address, spender).call() == 0


# -- EIP-1271 --------------------------------------------------------------------------------------


def test_message_hash_agrees_on_chain_in_python_and_as_typed_data(safe: Safe, w3: Web3) -> None:
    digest = keccak(text="a voucher digest")
    on_chain = safe.message_hash(digest)
    assert on_chain == safe_message_hash(w3.eth.chain_id, safe.address, digest)
    assert on_chain == typed_data_hash(safe_message_typed_data(w3.eth.chain_id, safe.address, digest))
    # The Safe's own view through its fallback handler (getMessageHash, msg.sender = the Safe).
    assert on_chain == bytes(safe.handler.functions.getMessageHash(digest).call({"from": safe.address}))


def test_is_valid_signature_accepts_threshold_owner_signatures(safe: Safe, owners: list[LocalAccount]) -> None:
    digest = keccak(text="a voucher digest")
    signature = safe.sign_message(digest, [owners[0], owners[2]])
    assert len(signature) == 130
    assert safe.is_valid_signature(digest, signature) == EIP1271_MAGIC_VALUE == bytes.fromhex("1626ba7e")
    assert safe.accepts_signature(digest, signature)
    # All three owners signing is fine too: the Safe checks the first `threshold` signatures.
    assert safe.accepts_signature(digest, safe.sign_message(digest, owners))


def test_wallet_typed_data_signatures_are_accepted(safe: Safe, owners: list[LocalAccount], w3: Web3) -> None:
    """What a wallet produces for eth_signTypedData_v4 on the SafeMessage verifies the same."""
    digest = keccak(text="signed in a wallet")
    typed = safe_message_typed_data(w3.eth.chain_id, safe.address, digest)
    ordered = sorted(owners[:2], key=lambda owner: int(owner.address, 16))
    signature = b"".join(bytes(owner.sign_typed_data(full_message=typed).signature) for owner in ordered)
    assert signature == safe.sign_message(digest, owners[:2])
    assert safe.is_valid_signature(digest, signature) == EIP1271_MAGIC_VALUE


def test_is_valid_signature_rejects_bad_signatures(safe: Safe, owners: list[LocalAccount]) -> None:
    digest = keccak(text="a voucher digest")
    good = safe.sign_message(digest, owners[:2])
    one_owner = safe.sign_message(digest, owners[:1])
    with pytest.raises(TransactionFailed, match="GS020"):  # Safe 1.4.1 reverts rather than return 0
        safe.is_valid_signature(digest, one_owner)
    message_hash = safe.message_hash(digest)
    unsorted = b"".join(bytes(owner.unsafe_sign_hash(Hash32(message_hash)).signature)
                        for owner in sorted(owners[:2], key=lambda owner: int(owner.address, 16), reverse=True))
    rejected = {
        "one owner": one_owner,
        "a stranger": safe.sign_message(digest, [owners[0], Account.create()]),
        "another digest": safe.sign_message(keccak(text="something else"), owners[:2]),
        "unsorted": unsorted,
        "the raw digest signed": sign_hash(digest, owners[:2]),
        "empty (no approved hash)": b"",
        "tampered": good[:-1] + bytes([good[-1] ^ 1]),
    }
    for name, signature in rejected.items():
        assert not safe.accepts_signature(digest, signature), name
    assert safe.accepts_signature(digest, good)


# -- end to end, on eth-tester and on anvil --------------------------------------------------------


@pytest.fixture(scope="module")
def anvil_w3() -> Iterator[Web3]:
    node = Anvil()
    yield AnvilChain(node.url).w3
    node.stop()


@pytest.mark.usefixtures("tester")  # so the eth-tester run is rolled back like every other test
@pytest.mark.parametrize("node", ["eth-tester", "anvil"])
def test_end_to_end(node: str, request: pytest.FixtureRequest, owners: list[LocalAccount]) -> None:
    """Deploy, create a 2-of-3 Safe, pay from it (single and batched) and sign for it, with a
    node-managed deployer and a LocalAccount relayer that is no owner."""
    w3: Web3 = request.getfixturevalue("w3" if node == "eth-tester" else "anvil_w3")
    deployer = w3.eth.accounts[0]
    relayer = Account.create()
    w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({"from": deployer, "to": relayer.address,
                                                                 "value": Wei(ETHER)}))
    stack = deploy_safe_stack(w3, deployer)
    safe = stack.create_safe(owners, 2, sender=relayer)
    w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({"from": deployer, "to": safe.address,
                                                                 "value": Wei(3 * ETHER)}))
    a, b = Account.create().address, Account.create().address
    safe.exec(a, ETHER, b"", owners[:2], relayer)
    safe.exec_batch([(a, 1, b""), (b, 2, b"")], owners[1:], deployer)
    assert (w3.eth.get_balance(a), w3.eth.get_balance(b), safe.nonce()) == (ETHER + 1, 2, 2)
    digest = keccak(text=node)
    assert safe.is_valid_signature(digest, safe.sign_message(digest, owners[:2])) == EIP1271_MAGIC_VALUE
    assert not safe.accepts_signature(digest, safe.sign_message(digest, owners[:1]))
