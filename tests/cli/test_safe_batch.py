"""Transaction Builder batch files (micropay.safe_batch): the app's checksum, exactly, and calls
whose decoded form the Safe app shows encodes to the very calldata the file carries."""

from __future__ import annotations

import copy
import json

import pytest
from eth_abi.abi import encode as abi_encode
from eth_utils.abi import function_signature_to_4byte_selector
from web3 import Web3

from micropay.channel import ChannelKey
from micropay.errors import MicropayValueError
from micropay.escrow import Escrow
from micropay.safe_batch import BatchCall, batch_file, call_of, open_calls, tx_builder_checksum, write_batch

# The Transaction Builder's own test object (apps/tx-builder/src/lib/checksum.test.ts).
UPSTREAM = {
    "version": "1.0",
    "chainId": "4",
    "createdAt": 1646321521061,
    "meta": {
        "name": "test batch file",
        "txBuilderVersion": "1.4.0",
        "checksum": "",
        "createdFromSafeAddress": "0xDF8a1Ce35c9a6ACE153B4e0767942f1E2291a1Aa",
        "createdFromOwnerAddress": "0x49d4450977E2c95362C13D3a31a09311E0Ea26A6",
    },
    "transactions": [
        {"to": "0x49d4450977E2c95362C13D3a31a09311E0Ea26A6", "value": "0",
         "contractMethod": {"inputs": [{"internalType": "address", "name": "paramAddress", "type": "address"}],
                            "name": "testAddress", "payable": False},
         "contractInputsValues": {"paramAddress": "0x49d4450977E2c95362C13D3a31a09311E0Ea26A6"}},
        {"to": "0x49d4450977E2c95362C13D3a31a09311E0Ea26A6", "value": "0",
         "contractMethod": {"inputs": [{"internalType": "bool", "name": "paramBool", "type": "bool"}],
                            "name": "testBool", "payable": False},
         "contractInputsValues": {"paramAddress": "", "paramBool": "false"}},
        {"to": "0x49d4450977E2c95362C13D3a31a09311E0Ea26A6", "value": "2000000000000000000",
         "data": "0x42f4579000000000000000000000000049d4450977e2c95362c13d3a31a09311e0ea26a6"},
    ],
}
UPSTREAM_CHECKSUM = "0x86c81826dbf7e8a37612153294cc85fdf5c81998dd0a44b86d945502a7eace7c"
SAFE = "0xDF8a1Ce35c9a6ACE153B4e0767942f1E2291a1Aa"


def test_checksum_matches_the_tx_builders_test_vector():
    assert tx_builder_checksum(UPSTREAM) == UPSTREAM_CHECKSUM


def test_checksum_ignores_key_order_the_name_and_the_checksum_itself():
    reordered = {key: UPSTREAM[key] for key in reversed(list(UPSTREAM))}
    reordered["meta"] = {key: UPSTREAM["meta"][key] for key in reversed(list(UPSTREAM["meta"]))}
    assert tx_builder_checksum(reordered) == UPSTREAM_CHECKSUM
    renamed = copy.deepcopy(UPSTREAM)
    renamed["meta"]["name"] = "another name"
    renamed["meta"]["checksum"] = "0x" + "ab" * 32
    assert tx_builder_checksum(renamed) == UPSTREAM_CHECKSUM


@pytest.mark.parametrize("change", ["reorder", "value", "description", "null data"])
def test_checksum_covers_transactions_and_meta(change):
    changed = copy.deepcopy(UPSTREAM)
    if change == "reorder":
        changed["transactions"].reverse()
    elif change == "value":
        changed["transactions"][2]["value"] = "2000000000000000001"
    elif change == "description":
        changed["meta"]["description"] = ""
    else:
        changed["transactions"][0]["data"] = None  # "data": null is not an absent key
    assert tx_builder_checksum(changed) != UPSTREAM_CHECKSUM


def test_checksum_serializes_like_javascript():
    # JSON.stringify: no spaces, non-ASCII as is, keys sorted by UTF-16 code units (an astral
    # character sorts before U+FFFD there, after it by code point).
    batch = {"meta": {"description": "caf\u00e9 \U0001f600"}, "b": {"\ufffd": 1, "\U0001f600": 2}}
    meta = {"description": "caf\u00e9 \U0001f600", "name": None}
    serialized = ('{["b","meta"]{["\U0001f600","\ufffd"]2,1,},{["description","name"]'
                  + json.dumps(meta["description"], ensure_ascii=False) + ",null,},}")
    expected = "0x" + Web3.keccak(text=serialized).hex().removeprefix("0x")
    assert tx_builder_checksum(batch) == expected


def test_a_batch_file_is_what_the_app_writes_and_validates(tmp_path):
    call = BatchCall("0x49d4450977E2c95362C13D3a31a09311E0Ea26A6", 5, b"\x01\x02", "poke", True,
                     (("who", "address", "address"), ("much", "uint256", "uint256")), (SAFE, "7"))
    batch = batch_file(11155111, SAFE.lower(), [call], name="a name", created_at_ms=1700000000000)
    assert (batch["version"], batch["chainId"], batch["createdAt"]) == ("1.0", "11155111", 1700000000000)
    assert batch["meta"]["createdFromSafeAddress"] == SAFE
    (tx,) = batch["transactions"]
    assert tx == {"to": call.to, "value": "5", "data": "0x0102",
                  "contractMethod": {"inputs": [{"internalType": "address", "name": "who", "type": "address"},
                                                {"internalType": "uint256", "name": "much", "type": "uint256"}],
                                     "name": "poke", "payable": True},
                  "contractInputsValues": {"who": SAFE, "much": "7"}}
    path = tmp_path / "batch.json"
    write_batch(path, batch)
    loaded = json.loads(path.read_text())
    assert loaded == batch and loaded["meta"]["checksum"] == tx_builder_checksum(loaded)
    with pytest.raises(MicropayValueError, match="already exists"):
        write_batch(path, batch)
    with pytest.raises(MicropayValueError, match="at least one"):
        batch_file(1, SAFE, [], name="empty")


def encoded(tx):
    """The calldata the Transaction Builder encodes from a transaction's decoded method and values."""
    method, values = tx["contractMethod"], tx["contractInputsValues"]
    types = [item["type"] for item in method["inputs"]]
    args = []
    for item in method["inputs"]:
        text = values[item["name"]]
        kind = item["type"]
        args.append(int(text) if kind.startswith("uint") else bytes.fromhex(text[2:]) if kind.startswith("bytes")
                    else text == "true" if kind == "bool" else text)
    selector = function_signature_to_4byte_selector(f"{method['name']}({','.join(types)})")
    return "0x" + (selector + abi_encode(types, args)).hex()


def call_for(escrow, key, deposit, expiry=2**32 - 1):
    return escrow.open_call(key, deposit, expiry=expiry, window=3_600)


def test_open_calls_decode_to_their_own_calldata(w3, deploy_helper, deployer):
    escrow = Escrow.deploy(w3, deployer)
    token = deploy_helper("TestToken")
    safe = "0x" + "5a" * 20
    signer = "0x" + "51" * 20
    payee = "0x" + "9e" * 20
    expiry = 2**32 - 1
    eth_key = ChannelKey(safe, payee, "0x" + "00" * 20, 7, signer)
    calls = open_calls(escrow, eth_key, 10**18, call_for(escrow, eth_key, 10**18))
    (opening,) = [call.to_json() for call in calls]
    assert (opening["to"], opening["value"], opening["contractMethod"]["name"]) == (escrow.address, str(10**18),
                                                                                    "open")
    assert opening["contractMethod"]["payable"] is True
    assert opening["contractInputsValues"] == {"payee": eth_key.payee, "signer": eth_key.signer, "salt": "7",
                                               "expiry": str(expiry), "window": "3600", "terms": "0x" + "00" * 32}
    assert encoded(opening) == opening["data"]
    token_key = ChannelKey(safe, payee, token.address, 8, signer)
    calls = open_calls(escrow, token_key, 500, call_for(escrow, token_key, 500))
    approve, open_token = [c.to_json() for c in calls]
    assert (approve["to"], approve["value"], approve["contractInputsValues"]) == (
        token.address, "0", {"spender": escrow.address, "amount": "500"})
    assert (open_token["to"], open_token["value"], open_token["contractMethod"]["name"]) == (escrow.address, "0",
                                                                                            "openToken")
    assert open_token["contractInputsValues"]["amount"] == "500"
    assert [encoded(tx) == tx["data"] for tx in (approve, open_token)] == [True, True]
    # A Safe that already allows the escrow something first resets it (USDT refuses nonzero to nonzero).
    w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(
        {"from": deployer, "to": token.address, "data": token.encode_abi("approve", args=[escrow.address, 3])}))
    from_deployer = ChannelKey(deployer, payee, token.address, 9, signer)
    calls = open_calls(escrow, from_deployer, 500, call_for(escrow, from_deployer, 500))
    assert [(c.method, c.values) for c in calls[:2]] == [("approve", (escrow.address, "0")),
                                                         ("approve", (escrow.address, "500"))]


def test_call_of_refuses_what_it_cannot_spell(w3):
    contract = w3.eth.contract(address="0x" + "11" * 20, abi=[
        {"type": "function", "name": "many", "stateMutability": "nonpayable",
         "inputs": [{"name": "xs", "type": "uint256[]"}], "outputs": []}])
    with pytest.raises(MicropayValueError, match="cannot spell"):
        call_of(contract.functions.many([1, 2]))
