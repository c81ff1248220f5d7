"""The fast base32 decoder equals the standard library and rejects everything else."""

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from micropay._utils import base32


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=400))
def test_round_trip_equals_the_standard_library(data):
    text = base32.encode(data)
    assert text == base64.b32encode(data).decode().rstrip("=").lower()
    assert base32.decode(text) == data


@settings(max_examples=1000, deadline=None)
@given(text=st.text(max_size=60))
def test_decode_accepts_exactly_what_the_standard_library_accepts_canonically(text):
    ours = base32.decode(text)
    try:
        theirs = base64.b32decode(text.upper() + "=" * (-len(text) % 8)) if text == text.lower() else None
    except Exception:  # noqa: BLE001 - binascii.Error or ValueError: not base32
        theirs = None
    if theirs is not None and base32.encode(theirs) != text:
        theirs = None  # the standard library tolerates non-zero padding bits; we do not
    assert ours == theirs


@pytest.mark.parametrize("bad", ["aaaaaaa8", "aaaaaaa0", "aaaaaaa1", "aaaaaaa9", "aaaaaaaA", "aaaaaaa=", "aaaa aaa"],
                         ids=["digit-8", "digit-0", "digit-1", "digit-9", "upper-case", "padding", "space"])
def test_digits_outside_the_alphabet_are_rejected(bad):
    assert base32.decode(bad) is None
