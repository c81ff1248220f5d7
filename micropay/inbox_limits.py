"""What an inbox does against hostile traffic, and how every refusal is worded.

- :class:`InboxLimits`: the figures (body sizes, read timeout, rates), each 0 for off.
- :class:`InboxGuard`, an ASGI middleware: per-client rate limit before anything is read; then the
  body, bounded in size (``Content-Length`` and the bytes actually streamed: 413) and in time (a
  body that trickles in: 408), read whole before the app sees it; one access line per request;
  any exception that still escapes becomes a 500 without a trace.
- :class:`TokenBuckets` (per client address, per channel) and :class:`NegativeCache` (channels the
  chain says are unknown or not this payee's), both bounded: many addresses or channel ids cannot
  exhaust memory, the least recently seen are forgotten first.
- :func:`error_answer`: the one place where an error becomes a status and the JSON error shape
  ``{"error": code, "message": one sentence, ...}``.

Defaults suit one freelancer: 50 requests/s per client address (bursts of 100), 10/s per channel
(bursts of 50), one plan or feedback document per second per address (bursts of 20), 96 KiB
bodies (a payment text is at most 64 KiB), 2 MiB and a little for a document (its text form's
limit), 10 s to send a body, 60 s memory of an unknown channel.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import OrderedDict
from dataclasses import dataclass

from micropay._utils.asgi import ASGIApp, Message, Receive, Scope, Send, send_whole
from micropay.documents import MAX_TEXT as MAX_DOCUMENT_TEXT
from micropay.errors import (
    AmendmentRefused,
    ChannelExpired,
    ChannelFinal,
    DomainMismatch,
    InsufficientDeposit,
    InvalidPlan,
    InvalidSignature,
    InvalidVoucher,
    LedgerGap,
    LedgerMismatch,
    MicropayError,
    MicropayValueError,
    NodeError,
    NotParticipant,
    PlanMismatch,
    PlanNotInForce,
    RequestRejected,
    StaleVoucher,
    StoreError,
    TaskRefused,
    TransactionError,
    Unauthorized,
    Underpaid,
    UnknownChannel,
    UnknownPlan,
    WindowTooShort,
)
from micropay.server_log import ServerLog

#: Where an inbox keeps what it learns about a request, in the ASGI scope.
NOTE_KEY = "micropay.inbox"
_DOCUMENT_PATHS = ("/v1/plans", "/v1/feedback")


@dataclass(frozen=True)
class InboxLimits:
    """An inbox's limits; 0 turns one off. ``max_body``: bytes of a payment or read request;
    ``max_document``: of a plan or feedback post; ``read_timeout``: seconds to receive a body;
    ``client_rate``/``client_burst``: requests per second (and at once) per client address;
    ``channel_rate``/``channel_burst``: per channel; ``document_rate``/``document_burst``: plans
    and feedback per client address (each is stored: a stranger must not fill the disk);
    ``max_tracked``: client addresses and channels remembered per table; ``unknown_ttl``:
    seconds an unknown channel is remembered. Raises :class:`MicropayValueError` for a negative
    or non-numeric figure."""

    max_body: int = 96 * 1024
    max_document: int = MAX_DOCUMENT_TEXT + 64 * 1024
    read_timeout: float = 10.0
    client_rate: float = 50.0
    client_burst: int = 100
    channel_rate: float = 10.0
    channel_burst: int = 50
    document_rate: float = 1.0
    document_burst: int = 20
    max_tracked: int = 10_000
    unknown_ttl: float = 60.0

    def __post_init__(self) -> None:
        for name in ("max_body", "max_document", "read_timeout", "client_rate", "client_burst", "channel_rate",
                     "channel_burst", "document_rate", "document_burst", "max_tracked", "unknown_ttl"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise MicropayValueError(f"inbox limit {name} must be a number >= 0 (0: off), got {value!r}")


@dataclass
class RequestNote:
    """What the access log says about a request besides its line: the channel and error code."""

    channel: str | None = None
    error: str | None = None


def note_of(scope: Scope) -> RequestNote:
    """The request's note (a new one outside :class:`InboxGuard`)."""
    note = scope.get(NOTE_KEY)
    if not isinstance(note, RequestNote):
        note = RequestNote()
        scope[NOTE_KEY] = note
    return note


class TokenBuckets:
    """A token bucket per key: ``rate`` tokens a second, holding at most ``burst``. At most
    ``max_keys`` keys are kept, the least recently used dropped first (a dropped key starts again
    full: forgetting can only let a request through, never refuse one). For one event loop."""

    def __init__(self, rate: float, burst: int, max_keys: int) -> None:
        self.rate, self.burst, self.max_keys = rate, max(1, burst), max(1, max_keys)
        self._buckets: OrderedDict[object, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: object, now: float | None = None) -> float:
        """Take one token for ``key``: 0.0 if it had one, else the seconds until it will."""
        return self._use(key, time.monotonic() if now is None else now, take=True)

    def wait(self, key: object, now: float | None = None) -> float:
        """The seconds until ``key`` has a token (0.0: it has one now), taking none."""
        return self._use(key, time.monotonic() if now is None else now, take=False)

    def _use(self, key: object, now: float, *, take: bool) -> float:
        tokens, then = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
        if take and not wait:
            tokens -= 1
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait


class NegativeCache:
    """Errors remembered for ``ttl`` seconds per key (at most ``max_keys``, the oldest dropped):
    what the chain said about a channel that is not this payee's, so asking again costs nothing."""

    def __init__(self, ttl: float, max_keys: int) -> None:
        self.ttl, self.max_keys = ttl, max(1, max_keys)
        self._errors: OrderedDict[bytes, tuple[float, MicropayError]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._errors)

    def get(self, key: bytes, now: float | None = None) -> MicropayError | None:
        """The error remembered for ``key``, if it has not expired."""
        found = self._errors.get(key)
        if found is None:
            return None
        if found[0] <= (time.monotonic() if now is None else now):
            del self._errors[key]
            return None
        return type(found[1])(str(found[1]))  # a new error each time: raising one again would grow its traceback

    def put(self, key: bytes, error: MicropayError, now: float | None = None) -> None:
        """Remember ``error`` for ``key`` (nothing if the cache is off)."""
        if self.ttl <= 0:
            return
        self._errors.pop(key, None)
        self._errors[key] = ((time.monotonic() if now is None else now) + self.ttl, error)
        while len(self._errors) > self.max_keys:
            self._errors.popitem(last=False)


# -- the one mapping of errors to answers ------------------------------------------------------

#: (error class, code, status), the first match wins: subclasses before their bases.
ERROR_CODES: tuple[tuple[type[BaseException], str, int], ...] = (
    (LedgerGap, "ledger_gap", 409), (StaleVoucher, "stale_voucher", 409), (Underpaid, "underpaid", 402),
    (InvalidSignature, "invalid_signature", 400), (DomainMismatch, "domain_mismatch", 400),
    (InvalidVoucher, "invalid_payment", 400), (LedgerMismatch, "ledger_mismatch", 409),
    (NotParticipant, "not_participant", 403), (UnknownChannel, "unknown_channel", 404),
    (ChannelFinal, "channel_final", 409), (ChannelExpired, "channel_expired", 409),
    (InsufficientDeposit, "insufficient_deposit", 409), (WindowTooShort, "window_too_short", 409),
    (PlanMismatch, "plan_mismatch", 403), (AmendmentRefused, "amendment_refused", 409),
    (TaskRefused, "task_refused", 409), (InvalidPlan, "invalid_plan", 400), (UnknownPlan, "unknown_plan", 404),
    (PlanNotInForce, "plan_not_in_force", 409), (Unauthorized, "unauthorized", 401),
    (StoreError, "unavailable", 503), (NodeError, "unavailable", 503), (TransactionError, "unavailable", 503),
    (MicropayValueError, "invalid_payment", 400),
)
#: The code of a :class:`RequestRejected` by its status.
REJECTION_CODES = {400: "too_deep", 403: "forbidden", 404: "not_found", 405: "method_not_allowed", 408: "timeout",
                   413: "payload_too_large", 429: "rate_limited", 503: "unavailable"}


@dataclass(frozen=True)
class Answer:
    """An error answer: status, JSON body and extra headers."""

    status: int
    body: dict[str, object]
    headers: dict[str, str]

    def encode(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False).encode()


def error_answer(exc: BaseException, *, redact: tuple[str, ...] = (), **extra: object) -> Answer:
    """The answer to ``exc``: its code, status and one-sentence message (``redact``: strings such
    as the store's path, never shown), plus ``extra`` fields. An error that is not micropay's
    (a bug) is ``internal`` with no detail; a node or socket failure is ``unavailable``."""
    if isinstance(exc, RequestRejected):
        status = exc.status
        code = REJECTION_CODES.get(status, "rejected")
    elif isinstance(exc, MicropayError):
        code, status = next(((c, s) for kind, c, s in ERROR_CODES if isinstance(exc, kind)), ("rejected", 400))
    elif isinstance(exc, (OSError, asyncio.TimeoutError)):
        code, status = "unavailable", 503
    else:
        return Answer(500, {"error": "internal", "message": "the inbox failed on this request; it is logged"}, {})
    if code == "rejected" and isinstance(exc, MicropayError) and not isinstance(exc, RequestRejected):
        code, status = "internal", 500  # a micropay error no inbox route should raise: a bug
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(exc, StoreError):  # its text may name the database's server: never shown
        message, retry_after = "the inbox's store is unavailable: try again in a moment", 1.0
    elif code == "unavailable" and not isinstance(exc, RequestRejected):
        message = "the node or the store is unavailable: try again later"
    else:
        message = (str(exc).strip().splitlines() or [code])[0]
    for secret in redact:
        message = message.replace(secret, "the inbox's store") if secret else message
    body: dict[str, object] = {"error": code, "message": message[:400]}
    headers: dict[str, str] = {}
    if isinstance(exc, LedgerGap):
        body["resendFrom"] = exc.have
    if isinstance(exc, InsufficientDeposit):
        body["shortfall"] = str(exc.shortfall)
    if isinstance(retry_after, (int, float)) and retry_after > 0:
        body["retryAfter"] = max(0.001, math.ceil(float(retry_after) * 1000) / 1000)  # never 0: round up to ms
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    body.update(extra)
    return Answer(status, body, headers)


async def send_answer(send: Send, answer: Answer) -> None:
    """Send ``answer`` as a whole HTTP response."""
    await send_whole(send, answer.status, [("content-type", "application/json"), *answer.headers.items()],
                     answer.encode())


# -- the middleware ------------------------------------------------------------------------------

class InboxGuard:
    """What an inbox and its middleware share: the limits, the rate limits (None: off), the
    negative cache of channels, the log, and what never to show (``redact``)."""

    def __init__(self, limits: InboxLimits, log: ServerLog, *, redact: tuple[str, ...] = ()) -> None:
        self.limits = limits
        self.log = log
        self.redact = redact
        self.clients = (TokenBuckets(limits.client_rate, limits.client_burst, limits.max_tracked)
                        if limits.client_rate > 0 else None)
        self.channels = (TokenBuckets(limits.channel_rate, limits.channel_burst, limits.max_tracked)
                         if limits.channel_rate > 0 else None)
        self.documents = (TokenBuckets(limits.document_rate, limits.document_burst, limits.max_tracked)
                          if limits.document_rate > 0 else None)
        self.unknown = NegativeCache(limits.unknown_ttl, limits.max_tracked)

    def check_client(self, address: str | None) -> None:
        """Raises :class:`RequestRejected` (429) when ``address`` has sent too many requests."""
        wait = self.clients.take(address) if self.clients is not None else 0.0
        if wait:
            raise RequestRejected(f"too many requests from this address: retry in {wait:.2f}s", status=429,
                                  retry_after=wait)

    def check_document(self, address: str | None) -> None:
        """Raises :class:`RequestRejected` (429) when ``address`` has sent too many documents."""
        wait = self.documents.take(address) if self.documents is not None else 0.0
        if wait:
            raise RequestRejected(f"too many documents from this address: retry in {wait:.2f}s", status=429,
                                  retry_after=wait)

    def check_channel(self, channel_id: bytes) -> None:
        """Raises :class:`RequestRejected` (429) when the channel has had too many requests. Takes
        nothing: only a request its party signed is counted (:meth:`count_channel`), so a
        stranger naming a channel cannot use up its payer's allowance."""
        wait = self.channels.wait(channel_id) if self.channels is not None else 0.0
        if wait:
            raise RequestRejected(f"too many requests on this channel: retry in {wait:.2f}s", status=429,
                                  retry_after=wait)

    def count_channel(self, channel_id: bytes) -> None:
        """Count a request on the channel that its payer or payee signed."""
        if self.channels is not None:
            self.channels.take(channel_id)

    def answer(self, exc: BaseException, note: RequestNote, **extra: object) -> Answer:
        """The error answer to ``exc`` (the one mapping), its code noted for the access log; an
        unexpected error is logged (type and where, no values)."""
        answer = error_answer(exc, redact=self.redact, **extra)
        note.error = str(answer.body["error"])
        if answer.status == 500:
            self.log.failure("internal_error", exc)
        return answer

    async def read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, or None if the client disconnected. Raises :class:`RequestRejected`
        (413) past the path's size limit, (408) past the read timeout."""
        limit = (self.limits.max_document if str(scope.get("path", "")).endswith(_DOCUMENT_PATHS)
                 else self.limits.max_body)
        too_large = RequestRejected(f"the request body is larger than this inbox's limit of {limit:,} bytes",
                                    status=413)
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and limit and value.strip().isdigit() and int(value) > limit:
                raise too_large
        timeout = self.limits.read_timeout
        deadline = time.monotonic() + timeout
        chunks, size = [], 0
        while True:
            try:
                message = (await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic())) if timeout
                           else await receive())
            except asyncio.TimeoutError:
                raise RequestRejected(f"the request body did not arrive within {timeout:g}s", status=408) from None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if limit and size > limit:
                raise too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


class GuardMiddleware:
    """ASGI middleware in front of an inbox app (see the module docstring), with its ``guard``."""

    def __init__(self, app: ASGIApp, guard: InboxGuard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        note = note_of(scope)
        status = [0]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        client = scope.get("client")
        address = str(client[0]) if client else None
        try:
            await self._serve(scope, receive, sending, address)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the last line of defence: a 500 without a trace, logged
            answer = self.guard.answer(exc, note)
            if not status[0]:
                await send_answer(sending, answer)
        finally:
            self.guard.log.access(method=str(scope.get("method", "")), path=str(scope.get("path", "")),
                                  status=status[0] or 499, ms=(time.monotonic() - started) * 1000, client=address,
                                  channel=note.channel, error=note.error)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, address: str | None) -> None:
        note = note_of(scope)
        try:
            self.guard.check_client(address)
            body = await self.guard.read_body(scope, receive)
        except RequestRejected as exc:
            await send_answer(send, self.guard.answer(exc, note))
            return
        if body is None:
            return  # the client went away
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: only a disconnect can come

        await self.app(scope, replay, send)
