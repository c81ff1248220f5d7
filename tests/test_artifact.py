"""The artifact shipped in the package is exactly what contracts/ compiles to."""

import json

import pytest

import compile_contracts
from micropay.artifact import _artifact_text, load_artifact, matches_artifact
from micropay.errors import ArtifactError
from micropay.voucher import DOMAIN_NAME, DOMAIN_VERSION, domain_separator


@pytest.fixture(scope="module")
def fresh_artifact():
    return compile_contracts.escrow_artifact()


def test_shipped_artifact_matches_a_fresh_compile(fresh_artifact):
    shipped = load_artifact()
    assert shipped["compiler"] == fresh_artifact["compiler"]
    assert shipped["sourceSha256"] == fresh_artifact["sourceSha256"], "contracts/ changed: recompile"
    assert shipped["abi"] == fresh_artifact["abi"]
    assert shipped["bytecode"] == fresh_artifact["bytecode"]
    assert shipped["deployedBytecode"] == fresh_artifact["deployedBytecode"]
    assert compile_contracts.render(fresh_artifact) == _artifact_text()


def test_artifact_pins_compiler_and_evm(fresh_artifact):
    assert fresh_artifact["compiler"]["version"] == "0.8.30"
    assert fresh_artifact["compiler"]["settings"]["evmVersion"] == "cancun"
    source = (compile_contracts.ROOT / compile_contracts.ESCROW_SOURCE).read_text()
    assert "pragma solidity 0.8.30;" in source


def test_artifact_lists_the_immutables_a_deployment_fills_in():
    assert load_artifact()["immutableReferences"], "EIP712 caches its domain in immutables"


def flip_a_byte(code: bytes) -> bytes:
    tampered = bytearray(code)
    tampered[10] ^= 0xFF
    return bytes(tampered)


@pytest.mark.parametrize(("contract", "edit", "matches"), [
    pytest.param("escrow", bytes, True, id="deployed-escrow"),
    pytest.param("token", bytes, False, id="another-contract"),
    pytest.param("escrow", flip_a_byte, False, id="escrow-with-a-flipped-byte"),
])
def test_deployed_code_matches_the_artifact(w3, escrow, token, contract, edit, matches):
    address = {"escrow": escrow, "token": token}[contract].address
    assert matches_artifact(edit(bytes(w3.eth.get_code(address)))) is matches


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("{not json", "corrupt", id="not-json"),
    pytest.param(json.dumps({"abi": []}), "lacks", id="missing-fields"),
])
def test_corrupt_artifact_raises_artifact_error(monkeypatch, text, message):
    monkeypatch.setattr("micropay.artifact._artifact_text", lambda: text)
    with pytest.raises(ArtifactError, match=message):
        load_artifact()


def test_load_artifact_returns_independent_copies():
    first = load_artifact()
    first["abi"].clear()
    assert load_artifact()["abi"]


def test_artifact_is_the_version_2_interface():
    abi = load_artifact()["abi"]
    errors = {item["name"] for item in abi if item["type"] == "error"}
    assert {"InvalidSigner", "InvalidEncoding", "NotFullyFunded", "RelayExpired", "FeeTooHigh",
            "Reentrancy"} <= errors
    assert not {"NotPayer", "NotPayee"} & errors
    functions = {item["name"]: item for item in abi if item["type"] == "function"}
    assert {"claimRelayed", "relayDigest", "withdrawFor"} <= set(functions)
    assert [i["type"] for i in functions["claim"]["inputs"]] == ["address", "address", "bytes"]
    assert [i["type"] for i in functions["close"]["inputs"]] == ["address", "bytes"]
    (claimed,) = [item for item in abi if item["type"] == "event" and item["name"] == "Claimed"]
    assert [(i["name"], i["indexed"]) for i in claimed["inputs"]] == [
        ("channelId", True), ("claimed", False), ("ledgerRoot", False)]


def test_deployed_domain_is_the_one_micropay_signs_for(w3, escrow):
    _, name, version, chain_id, contract, _, _ = escrow.functions.eip712Domain().call()
    assert (name, version) == (DOMAIN_NAME, DOMAIN_VERSION) == ("MicropayEscrow", "2")
    assert escrow.functions.domainSeparator().call() == domain_separator(chain_id, bytes.fromhex(contract[2:]))
