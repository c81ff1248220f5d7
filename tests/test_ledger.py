"""The task ledger: a hash chain over receipts that each voucher commits to."""

import pytest
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from micropay.errors import LedgerMismatch, MicropayValueError
from micropay.ledger import (
    EMPTY_ROOT,
    InvalidReceipt,
    Ledger,
    TaskReceipt,
    extend_root,
    ledger_root,
    verify_ledger,
)
from micropay.types import MAX_AMOUNT
from micropay.voucher import sign_voucher

PAYER = Account.from_key(b"\x07" * 32)
ESCROW = "0x5FbDB2315678afecb367f032d93F642f64180aa3"

receipts = st.builds(
    TaskReceipt,
    task_id=st.text(min_size=1, max_size=40).filter(str.strip),
    amount=st.integers(1, 10**24),
    deliverable=st.binary(min_size=32, max_size=32),
    note=st.text(max_size=60),
)


def voucher_for(ledger: Ledger):
    return sign_voucher(PAYER, chain_id=1, escrow=ESCROW, channel_id=b"\x01" * 32, amount=ledger.total,
                        ledger_root=ledger.root)


def test_receipt_hash_is_eip712_struct_hashing():
    receipt = TaskReceipt("logo draft 1", 5_000, b"\xaa" * 32, "first pass")
    typehash = keccak(text="TaskReceipt(string taskId,uint256 amount,bytes32 deliverable,string note)")
    expected = keccak(abi_encode(["bytes32", "bytes32", "uint256", "bytes32", "bytes32"],
                                 [typehash, keccak(text="logo draft 1"), 5_000, b"\xaa" * 32,
                                  keccak(text="first pass")]))
    assert receipt.hash() == expected
    assert extend_root(EMPTY_ROOT, receipt) == keccak(EMPTY_ROOT + expected)


@settings(max_examples=200, deadline=None)
@given(items=st.lists(receipts, max_size=8))
def test_ledger_root_is_the_hash_chain_and_verifies(items):
    ledger = Ledger.of(items)
    assert ledger.root == ledger_root(items)
    assert ledger.total == sum(r.amount for r in items)
    if items:
        assert ledger.root == extend_root(Ledger.of(items[:-1]).root, items[-1])
        assert verify_ledger(items, voucher_for(ledger)) == ledger


def drop(items, data):
    i = data.draw(st.integers(0, len(items) - 1))
    return items[:i] + items[i + 1:]


def swap(items, data):
    return [items[1], items[0], *items[2:]]


def reprice(items, data):
    i = data.draw(st.integers(0, len(items) - 1))
    r = items[i]
    return [*items[:i], TaskReceipt(r.task_id, r.amount + 1, r.deliverable, r.note), *items[i + 1:]]


def rename(items, data):
    r = items[0]
    return [TaskReceipt(r.task_id + "!", r.amount, r.deliverable, r.note), *items[1:]]


def add(items, data):
    return [*items, data.draw(receipts)]


@pytest.mark.parametrize("change", [drop, swap, reprice, rename, add], ids=lambda change: change.__name__)
@settings(max_examples=100, deadline=None)
@given(items=st.lists(receipts, min_size=2, max_size=6, unique_by=lambda r: r.hash()), data=st.data())
def test_any_change_to_the_receipts_is_caught(change, items, data):
    voucher = voucher_for(Ledger.of(items))
    with pytest.raises(LedgerMismatch):
        verify_ledger(change(items, data), voucher)


def test_same_total_but_different_tasks_fails_on_the_root():
    honest = [TaskReceipt("a", 3), TaskReceipt("b", 4)]
    other = [TaskReceipt("a", 4), TaskReceipt("b", 3)]
    with pytest.raises(LedgerMismatch, match="ledger root"):
        verify_ledger(other, voucher_for(Ledger.of(honest)))


@pytest.mark.parametrize("kwargs", [
    pytest.param({"task_id": ""}, id="empty-task-id"),
    pytest.param({"task_id": "   "}, id="blank-task-id"),
    pytest.param({"task_id": "x" * 257}, id="task-id-too-long"),
    pytest.param({"task_id": 5}, id="task-id-not-text"),
    pytest.param({"amount": 0}, id="zero-amount"),
    pytest.param({"amount": -1}, id="negative-amount"),
    pytest.param({"amount": MAX_AMOUNT + 1}, id="amount-above-max"),
    pytest.param({"amount": True}, id="bool-amount"),
    pytest.param({"deliverable": b"\x01" * 31}, id="short-deliverable"),
    pytest.param({"deliverable": "0x00"}, id="deliverable-not-bytes"),
    pytest.param({"note": "n" * 2049}, id="note-too-long"),
    pytest.param({"note": None}, id="note-none"),
])
def test_malformed_receipts_are_rejected(kwargs):
    fields = {"task_id": "t", "amount": 1, **kwargs}
    with pytest.raises(InvalidReceipt):
        TaskReceipt(**fields)


def test_invalid_receipt_is_a_micropay_value_error():
    assert issubclass(InvalidReceipt, MicropayValueError)


def test_ledger_total_cannot_exceed_the_escrow_range():
    with pytest.raises(InvalidReceipt):
        Ledger.of([TaskReceipt("a", MAX_AMOUNT), TaskReceipt("b", 1)])


@settings(max_examples=100, deadline=None)
@given(receipt=receipts)
def test_receipt_json_round_trip(receipt):
    assert TaskReceipt.from_dict(receipt.to_dict()) == receipt


@pytest.mark.parametrize("data", [
    None, [], {}, {"taskId": "a", "amount": 1, "deliverable": "0x" + "00" * 32, "note": ""},
    {"taskId": "a", "amount": "1", "deliverable": "00" * 32, "note": ""},
    {"taskId": "a", "amount": "1", "deliverable": "0xzz", "note": ""},
    {"taskId": "a", "amount": "1", "deliverable": "0x" + "00" * 32, "note": "", "extra": 1},
])
def test_malformed_receipt_json_is_rejected(data):
    with pytest.raises(InvalidReceipt):
        TaskReceipt.from_dict(data)
