"""Untrusted text is bounded in size and nesting before it is parsed, and anything malformed is a
typed micropay error: never a crash, a ValueError, a UnicodeEncodeError or a RecursionError."""

import json

import pytest
from eth_account import Account

from micropay import InvalidVoucher, StoreError, Voucher, parse_payment
from micropay._utils import textform
from micropay.bundle import load_bundle
from micropay.ledger import InvalidReceipt, Ledger, TaskReceipt
from micropay.payment import TEXT_PREFIX, Payment, pack_receipts
from micropay.voucher import sign_voucher

PAYER = Account.from_key(b"\x41" * 32)


def voucher_for(receipts):
    ledger = Ledger.of(receipts)
    return sign_voucher(PAYER, chain_id=10, escrow="0x" + "ab" * 20, channel_id=b"\x07" * 32, amount=ledger.total,
                        ledger_root=ledger.root)


def legacy_text(receipts_json: bytes) -> str:
    """A payment in the older form, whose receipts are JSON, with whatever JSON is given."""
    voucher = voucher_for([TaskReceipt("a", 1)])
    return textform.wrap(TEXT_PREFIX, voucher.to_bytes() + (0).to_bytes(4, "big") + receipts_json)


def test_a_payment_nested_70000_deep_is_refused_for_its_size():
    text = legacy_text(b"[" * 70_000)
    assert len(text) > 100_000
    with pytest.raises(InvalidVoucher, match="above the limit of 65,536"):
        parse_payment(text)


def test_a_payment_nested_70000_deep_is_refused_for_its_depth_even_under_a_larger_limit():
    with pytest.raises(InvalidVoucher, match="nested deeper than 8 levels"):
        parse_payment(legacy_text(b"[" * 70_000), max_chars=10**6)


def test_a_20_megabyte_payment_is_refused_before_any_decoding():
    with pytest.raises(InvalidVoucher, match="above the limit"):
        parse_payment("mpp1" + "a" * 20_000_000)


@pytest.mark.parametrize("receipt", [
    pytest.param({"taskId": "a", "amount": "9" * 5000, "deliverable": "0x" + "00" * 32, "note": ""},
                 id="5000-digit-amount"),
    pytest.param({"taskId": "\ud800", "amount": "1", "deliverable": "0x" + "00" * 32, "note": ""},
                 id="lone-surrogate-task"),
    pytest.param({"taskId": "a", "amount": "1", "deliverable": "0x" + "00" * 32, "note": "\udfff"},
                 id="lone-surrogate-note"),
    pytest.param({"taskId": "a", "amount": "1", "deliverable": "0xzz", "note": ""}, id="deliverable-not-hex"),
])
def test_a_malformed_legacy_receipt_is_an_invalid_voucher(receipt):
    with pytest.raises(InvalidVoucher, match="receipts are malformed"):
        parse_payment(legacy_text(json.dumps([receipt]).encode()))


def test_the_older_json_form_still_decodes():
    receipts = (TaskReceipt("logo", 5, note="v1"), TaskReceipt("palette", 7))
    voucher = voucher_for(list(receipts))
    text = textform.wrap(TEXT_PREFIX, voucher.to_bytes() + (0).to_bytes(4, "big")
                         + json.dumps([r.to_dict() for r in receipts]).encode())
    assert parse_payment(text) == Payment.of(voucher, receipts, 0)


def test_the_compact_form_leaves_empty_fields_out():
    bare = pack_receipts((TaskReceipt("logo draft 1", 5 * 10**15),))
    assert len(bare) == 1 + 1 + 2 + len("logo draft 1") + 1 + 7  # format, flags, task, amount: no hash, no note
    full = (TaskReceipt("t", 1, b"\x01" * 32, "note"),)
    voucher = voucher_for(list(full))
    assert parse_payment(Payment.of(voucher, full, 0).encode()).receipts == full


@pytest.mark.parametrize("cut", [1, 5, 20])
def test_compact_receipts_cut_short_are_an_invalid_voucher(cut):
    receipts = (TaskReceipt("logo", 5, b"\x01" * 32, "a note"),)
    voucher = voucher_for(list(receipts))
    payload = voucher.to_bytes() + (0).to_bytes(4, "big") + pack_receipts(receipts)[:-cut]
    with pytest.raises(InvalidVoucher, match="malformed"):
        parse_payment(textform.wrap(TEXT_PREFIX, payload))


@pytest.mark.parametrize(("task", "note"), [("\ud800", ""), ("a", "\udfff")], ids=["task", "note"])
def test_lone_surrogates_are_an_invalid_receipt(task, note):
    with pytest.raises(InvalidReceipt, match="not valid Unicode"):
        TaskReceipt(task, 1, note=note)


def test_a_5000_digit_voucher_amount_is_an_invalid_voucher():
    data = voucher_for([TaskReceipt("a", 1)]).to_dict()
    data["cumulativeAmount"] = "9" * 5000
    with pytest.raises(InvalidVoucher, match="decimal string"):
        Voucher.from_dict(data)


@pytest.mark.parametrize("channel_id", ["0xnothex", "12", "0x" + "g" * 64])
def test_a_channel_id_that_is_not_hex_is_an_invalid_voucher(channel_id):
    data = voucher_for([TaskReceipt("a", 1)]).to_dict()
    data["channelId"] = channel_id
    with pytest.raises(InvalidVoucher):
        Voucher.from_dict(data)


@pytest.mark.parametrize(("text", "match"), [
    pytest.param("[" * 70_000, "nested deeper", id="deep"),
    pytest.param('{"a": "' + "x" * 2000 + '"}', "above the limit", id="large"),
    pytest.param(b"\xff\xfe", "not UTF-8", id="binary"),
    pytest.param("{not json", "not valid JSON", id="not-json"),
])
def test_a_bundle_is_bounded_before_it_is_parsed(text, match):
    with pytest.raises(StoreError, match=match):
        load_bundle(text, max_bytes=100_000 if match != "above the limit" else 1_000)


@pytest.mark.parametrize(("content", "match"), [
    pytest.param(b'{"address": "' + b"a" * 100_000 + b'"}', "above the limit", id="huge"),
    pytest.param(b"[" * 60_000, "nested deeper", id="deep"),
])
def test_a_key_file_is_bounded_before_it_is_parsed(tmp_path, content, match):
    from micropay.errors import KeystoreError
    from micropay.keystore import address_of, load_account

    path = tmp_path / "key.json"
    path.write_bytes(content)
    for read in (address_of, lambda p: load_account(p, "pw")):
        with pytest.raises(KeystoreError, match=match):
            read(path)
