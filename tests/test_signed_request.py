"""Signed requests: eth-account's EIP-712 digest, the time window, replays, altered requests."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from micropay._utils.crypto import SECP256K1_N
from micropay.errors import RequestRejected, Unauthorized
from micropay.signed_request import (
    SIGNATURE_HEADER,
    SIGNER_HEADER,
    TIMESTAMP_HEADER,
    RequestVerifier,
    request_typed_data,
    sign_request,
)

READER = Account.from_key(b"\x31" * 32)
PATH = "/v1/channels/0x" + "ab" * 32 + "/progress"
NOW = 1_800_000_000


def test_the_signature_is_eth_accounts_over_the_same_typed_data():
    headers = sign_request(READER, "get", PATH, b'{"x":1}', now=NOW)
    typed = request_typed_data("GET", PATH, b'{"x":1}', NOW * 1000)
    expected = Account.sign_message(encode_typed_data(full_message=typed), READER.key)
    assert headers[SIGNATURE_HEADER] == "0x" + expected.signature.hex()
    assert headers[SIGNER_HEADER] == READER.address and headers[TIMESTAMP_HEADER] == str(NOW * 1000)


def test_a_fresh_request_names_its_signer_once_and_a_replay_is_refused():
    verifier = RequestVerifier(window=60)
    headers = sign_request(READER, "GET", PATH, now=NOW)
    assert verifier.verify("GET", PATH, b"", headers, now=NOW + 5) == READER.address
    with pytest.raises(Unauthorized, match="already used"):
        verifier.verify("GET", PATH, b"", headers, now=NOW + 6)
    # The same request signed a millisecond later is a new request.
    assert verifier.verify("GET", PATH, b"", sign_request(READER, "GET", PATH, now=NOW + 0.001), now=NOW + 6)


@pytest.mark.parametrize("skew", [-61, 61, 10**6])
def test_a_request_outside_the_window_is_refused(skew):
    with pytest.raises(Unauthorized, match="window"):
        RequestVerifier(window=60).verify("GET", PATH, b"", sign_request(READER, "GET", PATH, now=NOW), now=NOW + skew)


@pytest.mark.parametrize(("method", "path", "body"), [("POST", PATH, b""), ("GET", PATH + "?all=1", b""),
                                                      ("GET", PATH, b"x"), ("GET", PATH.replace("ab", "cd"), b"")])
def test_an_altered_method_path_or_body_is_refused(method, path, body):
    headers = sign_request(READER, "GET", PATH, now=NOW)
    with pytest.raises(Unauthorized, match="not by its signer"):
        RequestVerifier().verify(method, path, body, headers, now=NOW)


@pytest.mark.parametrize("headers", [
    {},
    {SIGNER_HEADER: "alice", TIMESTAMP_HEADER: str(NOW), SIGNATURE_HEADER: "0x00"},
    {SIGNER_HEADER: READER.address, TIMESTAMP_HEADER: "soon", SIGNATURE_HEADER: "0x00"},
    {SIGNER_HEADER: READER.address, TIMESTAMP_HEADER: str(NOW), SIGNATURE_HEADER: "0x" + "zz" * 65},
    {SIGNER_HEADER: READER.address, TIMESTAMP_HEADER: str(NOW), SIGNATURE_HEADER: "0x" + "00" * 65},
    {SIGNER_HEADER: READER.address, TIMESTAMP_HEADER: "9" * 17, SIGNATURE_HEADER: "0x00"},
    {SIGNER_HEADER: READER.address, TIMESTAMP_HEADER: str(NOW), SIGNATURE_HEADER: "0x00"},  # seconds, not ms
])
def test_missing_or_malformed_headers_are_refused(headers):
    with pytest.raises(Unauthorized):
        RequestVerifier().verify("GET", PATH, b"", headers, now=NOW)


def test_another_signer_named_in_the_header_is_refused():
    headers = sign_request(READER, "GET", PATH, now=NOW) | {SIGNER_HEADER: Account.from_key(b"\x32" * 32).address}
    with pytest.raises(Unauthorized):
        RequestVerifier().verify("GET", PATH, b"", headers, now=NOW)


def test_remembered_requests_are_bounded_and_a_full_memory_refuses_instead_of_forgetting():
    verifier = RequestVerifier(window=60, max_remembered=10)
    for n in range(10):
        path = f"{PATH}?n={n}"
        verifier.verify("GET", path, b"", sign_request(READER, "GET", path, now=NOW), now=NOW)
    assert len(verifier) == 10
    with pytest.raises(RequestRejected) as full:
        verifier.verify("GET", PATH, b"", sign_request(READER, "GET", PATH, now=NOW), now=NOW)
    assert full.value.status == 503
    # Once their window has passed they are forgotten, and new requests are taken again.
    later = NOW + 200
    assert verifier.verify("GET", PATH, b"", sign_request(READER, "GET", PATH, now=later), now=later)
    assert len(verifier) == 1


def test_the_other_form_of_the_same_signature_is_refused():
    """(r, n - s, v ^ 1) recovers to the same key: taken, it would replay a captured request."""
    headers = sign_request(READER, "GET", PATH, now=NOW)
    signature = bytes.fromhex(headers[SIGNATURE_HEADER][2:])
    s_value = int.from_bytes(signature[32:64], "big")
    other = signature[:32] + (SECP256K1_N - s_value).to_bytes(32, "big") + bytes([55 - signature[64]])
    verifier = RequestVerifier()
    with pytest.raises(Unauthorized, match="canonical"):
        verifier.verify("GET", PATH, b"", headers | {SIGNATURE_HEADER: "0x" + other.hex()}, now=NOW)
    assert verifier.verify("GET", PATH, b"", headers, now=NOW) == READER.address
    with pytest.raises(Unauthorized, match="already used"):
        verifier.verify("GET", PATH, b"", headers, now=NOW)


def test_a_signer_refused_by_authorize_is_not_remembered():
    verifier = RequestVerifier()
    headers = sign_request(READER, "GET", PATH, now=NOW)

    def stranger(address):
        raise RequestRejected(f"{address} is not a party", status=403)

    with pytest.raises(RequestRejected):
        verifier.verify("GET", PATH, b"", headers, authorize=stranger, now=NOW)
    assert len(verifier) == 0
    assert verifier.verify("GET", PATH, b"", headers, authorize=lambda address: None, now=NOW) == READER.address
