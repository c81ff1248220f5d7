"""Signed requests: eth-account's EIP-712 digest, the time window, replays, altered requests."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from micropay.errors import Unauthorized
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


def test_remembered_signatures_are_bounded():
    verifier = RequestVerifier(window=60, max_remembered=10)
    for n in range(50):
        path = f"{PATH}?n={n}"
        verifier.verify("GET", path, b"", sign_request(READER, "GET", path, now=NOW), now=NOW)
    assert len(verifier) == 10
