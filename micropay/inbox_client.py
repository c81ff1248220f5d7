"""The client's side of a freelancer's inbox (``micropay serve``): HTTP wire protocol v1.

:class:`InboxClient` posts a payment and reads the answer as a :class:`PaymentAnswer` (held,
with the payee's acknowledgment; a ledger gap, with the index to resend from; or a stale
voucher, with the acknowledgment of what the inbox holds), posts plan and feedback documents,
and reads a channel's progress with a signed request. It trusts nothing it is told: answers
are read with connect and read timeouts and an overall deadline, at most ``max_answer`` bytes
(streamed, never read whole), and bounded in nesting before they are parsed. What an
acknowledgment is worth is for the caller to judge (:mod:`micropay.outbox` verifies it against
the channel and its own store).

Every failure is one of :class:`DeliveryFailed` (unreachable, timed out, a server error or an
answer that is not an inbox's: try again later), :class:`RequestRejected` (the inbox refused
the request: ``status``, ``retry_after``), :class:`Unauthorized` (a read it would not allow), or
:class:`InvalidAcknowledgment` (a malformed acknowledgment).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import requests
from eth_account.signers.local import LocalAccount

from micropay._utils import bounded
from micropay.acknowledgment import Acknowledgment
from micropay.documents import read_document
from micropay.errors import (
    DeliveryFailed,
    MicropayError,
    MicropayValueError,
    RequestRejected,
    Unauthorized,
)
from micropay.payment import Payment
from micropay.plan import MAX_INBOX_BYTES
from micropay.signed_request import sign_request

#: The largest answer read from an inbox.
MAX_ANSWER_BYTES = 1024 * 1024
#: The longest reason kept from an inbox's error message.
MAX_REASON = 200
AnswerKind = Literal["held", "ledger_gap", "stale_voucher"]
_CHUNK = 64 * 1024
_MAX_RETRY_AFTER = 86_400.0
_PATH = re.compile(r"[A-Za-z0-9._~/-]*")


def inbox_url(text: object) -> str:
    """``text`` as an inbox URL: ``http://`` or ``https://`` with a host, at most 512 bytes, with no
    credentials, query or fragment; without a trailing slash or ``/v1`` (the API's version, which
    the client adds). Raises :class:`MicropayValueError` otherwise."""
    if not isinstance(text, str):
        raise MicropayValueError("an inbox URL is text, such as https://inbox.example.org")
    url = text.strip().rstrip("/")
    url = url[:-3] if url.endswith("/v1") else url  # the API's root, as `micropay serve` prints it, is fine too
    if len(url.encode()) > MAX_INBOX_BYTES:
        raise MicropayValueError(f"the inbox URL is longer than {MAX_INBOX_BYTES} bytes")
    if not url.isascii() or not url.isprintable() or " " in url:
        raise MicropayValueError(f"the inbox URL {url!r:.80} holds spaces, control or non-ASCII characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # a bad port raises here
    except ValueError as exc:
        raise MicropayValueError(f"the inbox URL {url!r:.80} is malformed: {exc}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise MicropayValueError(f"the inbox URL must be http:// or https:// with a host, got {url!r:.80}")
    if parts.username is not None or parts.password is not None:
        raise MicropayValueError("the inbox URL must not carry a user name or password")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise MicropayValueError(f"the inbox URL must have no query or fragment, got {url!r:.80}")
    if port == 0:
        raise MicropayValueError(f"the inbox URL's port must not be 0, got {url!r:.80}")
    if not _PATH.fullmatch(parts.path):  # sent as written, so a signed read signs the path the inbox sees
        raise MicropayValueError(f"the inbox URL's path may hold only letters, digits and - . _ ~ /, got {url!r:.80}")
    return url


def short_reason(text: str, limit: int = MAX_REASON) -> str:
    """Someone else's text as one printable line of at most ``limit`` characters."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass(frozen=True)
class PaymentAnswer:
    """An inbox's answer to a posted payment: ``held`` (``acknowledgment`` of the voucher posted;
    ``duplicate`` if it was held already), ``ledger_gap`` (resend the latest payment with the
    receipts from ``resend_from``), or ``stale_voucher`` (``acknowledgment`` of the later voucher
    the inbox holds). The acknowledgment is parsed, not yet verified."""

    kind: AnswerKind
    acknowledgment: Acknowledgment | None = None
    resend_from: int | None = None
    duplicate: bool = False


@dataclass(frozen=True)
class InboxProgress:
    """A channel's progress as its inbox reports it (``Progress.to_dict()`` JSON), and every plan
    version and feedback document of its plan, as text (unverified)."""

    progress: dict[str, object]
    documents: tuple[str, ...]


class InboxClient:
    """Talks to the inbox at ``url`` (see :func:`inbox_url`). Use it as a context manager, or
    :meth:`close` it: it keeps one connection open between requests.

    ``connect_timeout`` and ``read_timeout`` bound each socket operation, ``deadline`` the whole
    answer (a server that trickles it is cut off). Raises :class:`MicropayValueError` for a bad URL."""

    def __init__(self, url: str, *, connect_timeout: float = 5.0, read_timeout: float = 15.0,
                 deadline: float = 30.0, max_answer: int = MAX_ANSWER_BYTES) -> None:
        self.url = inbox_url(url)
        self.timeouts = (connect_timeout, read_timeout)
        self.deadline = deadline
        self.max_answer = max_answer
        self._http = requests.Session()

    def close(self) -> None:
        """Close the connection."""
        self._http.close()

    def __enter__(self) -> InboxClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the endpoints -----------------------------------------------------------------------------

    def post_payment(self, payment: Payment | str) -> PaymentAnswer:
        """Post a payment (or its text). Returns what the inbox answered: held, a ledger gap, or a
        stale voucher. Raises :class:`DeliveryFailed`, :class:`RequestRejected` (any other
        refusal), :class:`Unauthorized`, or :class:`InvalidAcknowledgment` for a malformed acknowledgment."""
        text = payment.encode() if isinstance(payment, Payment) else payment
        status, body, retry_after = self._request("POST", "/v1/payments", {"payment": text})
        if status == 200:
            if body.get("held") is not True:
                raise DeliveryFailed(f"the inbox at {self.url} answered 200 without holding the payment")
            duplicate = body.get("duplicate")
            return PaymentAnswer("held", Acknowledgment.from_dict(body.get("acknowledgment")),
                                 duplicate=duplicate is True)
        code = body.get("error")
        if status == 409 and code == "ledger_gap":
            index = body.get("resendFrom")
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 2**32:
                raise DeliveryFailed(f"the inbox at {self.url} reported a ledger gap without a valid resendFrom")
            return PaymentAnswer("ledger_gap", resend_from=index)
        if status == 409 and code == "stale_voucher":
            return PaymentAnswer("stale_voucher", Acknowledgment.from_dict(body.get("acknowledgment")))
        raise self._refusal(status, body, retry_after)

    def post_document(self, document: str | dict[str, object]) -> dict[str, object]:
        """Post a plan (proposal, acceptance, amendment) or feedback document: its ``mpl1…``/
        ``mpf1…`` text, its JSON text or its JSON object. Returns the inbox's answer (``stored``,
        ``kind``, …). Raises :class:`InvalidPlan` for what is no such document (nothing is sent),
        :class:`DeliveryFailed`, :class:`RequestRejected` or :class:`Unauthorized`."""
        data = document if isinstance(document, dict) else read_document(document)
        kind = "feedback" if data.get("micropay") == "feedback" else "plans"
        status, body, retry_after = self._request("POST", f"/v1/{kind}", {"document": document})
        if status != 200 or body.get("stored") is not True:
            raise self._refusal(status, body, retry_after)
        return body

    def progress(self, channel_id: bytes, account: LocalAccount) -> InboxProgress:
        """A channel's progress, read with a request signed by ``account`` (the channel's payer,
        voucher signer or payee). Raises :class:`Unauthorized` (401/403), :class:`RequestRejected`
        (another refusal, such as an unknown channel: status 404), or :class:`DeliveryFailed`."""
        if not isinstance(channel_id, bytes) or len(channel_id) != 32:
            raise MicropayValueError("a channel id is 32 bytes")
        path = f"/v1/channels/0x{channel_id.hex()}/progress"
        headers = sign_request(account, "GET", urlsplit(self.url).path + path)
        status, body, retry_after = self._request("GET", path, None, headers)
        if status != 200:
            raise self._refusal(status, body, retry_after)
        progress, documents = body.get("progress"), body.get("documents")
        if not isinstance(progress, dict) or not isinstance(documents, list) or \
                not all(isinstance(d, str) for d in documents):
            raise DeliveryFailed(f"the inbox at {self.url} answered a progress read with something else")
        return InboxProgress(progress, tuple(documents))

    # -- HTTP ----------------------------------------------------------------------------------------

    def _request(self, method: str, path: str, payload: dict[str, object] | None,
                 headers: dict[str, str] | None = None) -> tuple[int, dict[str, object], str | None]:
        """(status, JSON object, Retry-After header) of one request; never follows a redirect.
        Raises :class:`DeliveryFailed`."""
        where = f"the inbox at {self.url}"
        try:
            with self._http.request(method, self.url + path, json=payload, headers=headers, timeout=self.timeouts,
                                    allow_redirects=False, stream=True) as response:
                status, data = response.status_code, self._read(response, where)
                retry_after = response.headers.get("Retry-After")
        except requests.Timeout:
            raise DeliveryFailed(f"{where} did not answer in time") from None
        except requests.RequestException as exc:
            raise DeliveryFailed(f"cannot reach {where}: {_cause(exc)}") from None
        if 300 <= status < 400:
            raise DeliveryFailed(f"{where} answered with a redirect (HTTP {status}): set the inbox to the URL it "
                                 "moved to")
        try:
            body = bounded.loads(data, what=f"answer of {where}", max_bytes=self.max_answer, error=DeliveryFailed)
        except DeliveryFailed:
            if status >= 500:
                raise DeliveryFailed(f"{where} failed (HTTP {status})") from None
            raise
        if not isinstance(body, dict):
            raise DeliveryFailed(f"the answer of {where} (HTTP {status}) is not a JSON object")
        return status, body, retry_after

    def _read(self, response: requests.Response, where: str) -> bytes:
        """The answer's bytes: at most ``max_answer``, within the deadline. Raises :class:`DeliveryFailed`."""
        stop = time.monotonic() + self.deadline
        data = bytearray()
        for chunk in response.iter_content(_CHUNK):
            data += chunk
            if len(data) > self.max_answer:
                raise DeliveryFailed(f"the answer of {where} is larger than {self.max_answer:,} bytes")
            if time.monotonic() > stop:
                raise DeliveryFailed(f"{where} took longer than {self.deadline:g}s to answer")
        return bytes(data)

    def _refusal(self, status: int, body: dict[str, object], retry_after: str | None) -> Exception:
        """The error for an answer that is not a success."""
        code, message = body.get("error"), body.get("message")
        said = f"{short_reason(str(code), 40)}: {short_reason(str(message))}" if code is not None else "no reason"
        where = f"the inbox at {self.url}"
        if status >= 500 or status < 400:
            return DeliveryFailed(f"{where} could not take it now (HTTP {status}, {said})")
        if status == 401 or code in ("unauthorized", "forbidden"):
            return Unauthorized(f"{where} refused the request (HTTP {status}, {said})")
        return RequestRejected(f"{where} refused it (HTTP {status}, {said})", status=status,
                               retry_after=_seconds(body.get("retryAfter", retry_after)))


def _seconds(value: object) -> float | None:
    """A Retry-After value (seconds, as a number or text), bounded; None if absent or not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER) if math.isfinite(seconds) else None


def _cause(exc: requests.RequestException) -> str:
    """Why a request failed, in a few words (never a whole traceback or a server's text)."""
    if isinstance(exc, requests.ConnectionError):
        if "timed out" in str(exc).lower():  # a read that timed out inside the body
            return "it stopped answering"
        return "connection refused or the host is unreachable"
    return type(exc).__name__


__all__ = ["MAX_ANSWER_BYTES", "InboxClient", "InboxProgress", "PaymentAnswer", "inbox_url", "short_reason"]


def send_document(url: str, text: str) -> str | None:
    """Post a signed plan or feedback ``text`` to the inbox at ``url``: None once it holds it,
    else the one-line reason it does not (never raises for the network or the inbox's answer)."""
    try:
        with InboxClient(url) as client:
            client.post_document(text)
    except MicropayError as exc:
        return short_reason(str(exc))
    return None
