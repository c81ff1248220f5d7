"""Signed requests: how a channel's payer or payee reads from an inbox without a password.

A read carries three headers: the signer's address, a unix time in milliseconds, and the signer's
EIP-712 signature over ``Request(string method, string path, bytes32 bodyHash, uint64 timestamp)``
under the domain ``{name: "micropay inbox", version: "1"}`` (keccak256 of the body, of an empty
body for a GET). The inbox accepts it only inside a short window around its own clock, and only
once: a signature it has seen is refused until its window has passed, so a captured request cannot
be replayed (milliseconds, so that the same read signed twice in one second is two requests). Who
may read what (the channel's payer or payee) is the inbox's decision; this module says only who
signed, and that the request is fresh and whole.

The digest is built here from its parts (cheap enough to judge a stranger's request); tests hold
it equal to eth-account's ``encode_typed_data``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from eth_account.signers.local import LocalAccount

from micropay._utils.addresses import normalize
from micropay._utils.crypto import SECP256K1_HALF_N, keccak, recover_address, unsafe_sign_digest
from micropay.errors import RequestRejected, Unauthorized

DOMAIN_NAME = "micropay inbox"
DOMAIN_VERSION = "1"
REQUEST_TYPE = "Request(string method,string path,bytes32 bodyHash,uint64 timestamp)"
REQUEST_FIELDS = [{"name": "method", "type": "string"}, {"name": "path", "type": "string"},
                  {"name": "bodyHash", "type": "bytes32"}, {"name": "timestamp", "type": "uint64"}]
SIGNER_HEADER = "Micropay-Signer"
TIMESTAMP_HEADER = "Micropay-Timestamp"
SIGNATURE_HEADER = "Micropay-Signature"
#: Seconds a signed request stays valid either side of the inbox's clock.
DEFAULT_WINDOW = 60
_DOMAIN_SEPARATOR = keccak(keccak(b"EIP712Domain(string name,string version)") + keccak(DOMAIN_NAME.encode())
                           + keccak(DOMAIN_VERSION.encode()))
_TYPEHASH = keccak(REQUEST_TYPE.encode())
_MAX_PATH = 2048


def request_digest(method: str, path: str, body: bytes, timestamp: int) -> bytes:
    """The EIP-712 digest of a request (``path`` with its query string, if any; ``timestamp`` in unix milliseconds)."""
    struct_hash = keccak(_TYPEHASH + keccak(method.encode()) + keccak(path.encode()) + keccak(body)
                         + timestamp.to_bytes(32, "big"))
    return keccak(b"\x19\x01" + _DOMAIN_SEPARATOR + struct_hash)


def request_typed_data(method: str, path: str, body: bytes, timestamp: int) -> dict[str, object]:
    """The same request as EIP-712 typed data, for a wallet that signs typed data itself."""
    return {"types": {"EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"}],
                      "Request": REQUEST_FIELDS},
            "primaryType": "Request", "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION},
            "message": {"method": method, "path": path, "bodyHash": "0x" + keccak(body).hex(), "timestamp": timestamp}}


def sign_request(account: LocalAccount, method: str, path: str, body: bytes = b"", *,
                 now: float | None = None) -> dict[str, str]:
    """The headers that sign ``method path`` with ``body`` as ``account``, now (``now``: unix seconds)."""
    timestamp = int((time.time() if now is None else now) * 1000)
    signature = unsafe_sign_digest(account, request_digest(method.upper(), path, body, timestamp))
    return {SIGNER_HEADER: account.address, TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: "0x" + signature.hex()}


class RequestVerifier:
    """Judges signed requests: whole, inside ``window`` seconds of this clock, and never seen before.

    Remembers each accepted request until its window has passed, at most ``max_remembered`` at
    once (more are refused, never forgotten early: a forgotten request could be replayed). Only
    requests ``authorize`` accepted are remembered. Thread-safe."""

    def __init__(self, *, window: int = DEFAULT_WINDOW, max_remembered: int = 100_000) -> None:
        self.window = window
        self.max_remembered = max_remembered
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many signatures it remembers now."""
        return len(self._seen)

    def verify(self, method: str, path: str, body: bytes, headers: Mapping[str, str], *,
               authorize: Callable[[str], None] | None = None, now: float | None = None) -> str:
        """The checksummed address that signed this request. ``authorize`` judges that signer
        (raising to refuse it) before the request is remembered, so a stranger's valid signatures
        take no room among those that guard the parties' requests against replay.

        Raises :class:`Unauthorized` for a missing or malformed header, a timestamp outside the
        window, a bad or malleable (high-s) signature, or a replay; :class:`RequestRejected`
        (503) while it remembers as many live requests as it may; what ``authorize`` raises."""
        now = time.time() if now is None else now
        signer_text, timestamp_text, signature_text = (headers.get(name) for name in
                                                       (SIGNER_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER))
        if signer_text is None or timestamp_text is None or signature_text is None:
            raise Unauthorized(f"this needs a signed request ({SIGNER_HEADER}, {TIMESTAMP_HEADER} and "
                               f"{SIGNATURE_HEADER} headers) by the channel's payer or payee")
        signer = normalize(signer_text) if len(signer_text) <= 42 else None
        if signer is None:
            raise Unauthorized(f"{SIGNER_HEADER} is not an address")
        if not (timestamp_text.isascii() and timestamp_text.isdigit() and len(timestamp_text) <= 16):
            raise Unauthorized(f"{TIMESTAMP_HEADER} is not a unix time in milliseconds")
        timestamp = int(timestamp_text)
        if abs(timestamp / 1000 - now) > self.window:
            raise Unauthorized(f"the request's timestamp is {timestamp / 1000 - now:+.0f}s from this inbox's clock, "
                               f"outside its {self.window}s window (check the clock, then sign again)")
        try:
            signature = bytes.fromhex(signature_text[2:]) if signature_text.startswith("0x") else b""
        except ValueError:
            signature = b""
        if len(signature) != 65 or signature[64] not in (27, 28) or len(path) > _MAX_PATH:
            raise Unauthorized(f"{SIGNATURE_HEADER} is not a 65-byte signature")
        if int.from_bytes(signature[32:64], "big") > SECP256K1_HALF_N:
            # (r, n - s) with the other v is the same signature: only the low-s form is taken.
            raise Unauthorized(f"{SIGNATURE_HEADER} is not in its canonical (low-s) form")
        digest = request_digest(method.upper(), path, body, timestamp)
        if recover_address(digest, signature) != signer[1]:
            raise Unauthorized("the request's signature is not by its signer (or the request was altered)")
        if authorize is not None:
            authorize(signer[0])
        self._remember(digest, timestamp / 1000 + self.window, now)
        return signer[0]

    def _remember(self, key: bytes, expires: float, now: float) -> None:
        """Remember a request's digest (not its signature: each request is taken once, whoever signed
        it in whatever form) until its window has passed."""
        with self._lock:
            while self._seen:
                oldest, until = next(iter(self._seen.items()))
                if until >= now:
                    break
                del self._seen[oldest]
            if key in self._seen:
                raise Unauthorized("this signed request was already used: sign each request anew")
            if len(self._seen) >= self.max_remembered:
                raise RequestRejected("too many signed requests at once: try again in a minute", status=503,
                                      retry_after=float(self.window))
            self._seen[key] = expires
