"""A paying reverse proxy: ``micropay serve --paywall UPSTREAM --price "GET /v1/*=0.001 USDC"``.

For a freelancer whose API is not written in Python (or not by them): :class:`UpstreamProxy`
forwards each request to the upstream server and its answer back, and ``serve`` puts it behind a
:class:`~micropay.x402.paywall.Paywall`, beside the inbox (:class:`BesideInbox`: the inbox's own
routes stay the inbox's). A priced call reaches the upstream only once its payment checked out;
the upstream's answer goes back only once the payment is stored; an upstream failure (an error
status, or no answer: 502) is not charged.

Bounded: a request body above ``max_body`` is refused (413) before the upstream sees it, an answer
above ``max_answer`` is not passed on (502); ``PAYMENT-SIGNATURE`` never reaches the upstream.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from urllib.parse import quote

import httpx
from starlette.routing import Match
from starlette.types import ASGIApp as StarletteApp

from micropay._utils.asgi import ASGIApp, Message, Receive, Scope, Send, send_whole
from micropay.errors import MicropayValueError
from micropay.server_log import ServerLog

#: Headers that describe one connection, not the message: never forwarded either way.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "transfer-encoding", "upgrade", "host", "content-length", "payment-signature"})


def parse_prices(specs: Sequence[str]) -> dict[str, str]:
    """``--price`` options ("GET /v1/*=0.001 USDC") as the paywall's prices. Raises
    :class:`MicropayValueError` for one that is not ``ROUTE=AMOUNT``."""
    prices: dict[str, str] = {}
    for spec in specs:
        route, sep, amount = spec.rpartition("=")
        if not sep or not route.strip() or not amount.strip():
            raise MicropayValueError(f'--price {spec!r}: write ROUTE=AMOUNT, e.g. "GET /v1/*=0.001 ETH"')
        if not any(c.isalpha() for c in amount):
            raise MicropayValueError(f'--price {spec!r}: give the unit, e.g. "{route.strip()}={amount.strip()} ETH"')
        prices[route.strip()] = amount.strip()
    return prices


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send_whole(send, status, [("content-type", "application/json")], body)


class UpstreamProxy:
    """Forwards HTTP requests to ``upstream`` (``http://host:port``, with an optional path prefix)."""

    def __init__(self, upstream: str, *, max_body: int = 10 * 1024 * 1024, max_answer: int = 64 * 1024 * 1024,
                 timeout: float = 60.0) -> None:
        if not upstream.startswith(("http://", "https://")):
            raise MicropayValueError(f"--paywall {upstream!r}: give the upstream's URL, e.g. http://127.0.0.1:9000")
        self.upstream = upstream.rstrip("/")
        self.max_body, self.max_answer = max_body, max_answer
        self.http = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > self.max_body:
                await _answer(send, 413, b'{"error":"payload_too_large"}')
                return
            if not message.get("more_body", False):
                break
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", [])
                   if k.decode("latin-1").lower() not in HOP_BY_HOP]
        client = scope.get("client")
        if client:
            headers.append(("x-forwarded-for", str(client[0])))
        # The decoded path the paywall priced, encoded again: the upstream gets exactly that route.
        query = scope.get("query_string", b"")
        url = self.upstream + quote(scope["path"], safe="/:@!$&'()*+,;=-._~") + \
            (f"?{query.decode('latin-1')}" if query else "")
        try:
            request = self.http.build_request(scope["method"], url, headers=headers, content=bytes(body))
            upstream = await self.http.send(request, stream=True)
            try:
                answer = bytearray()
                async for chunk in upstream.aiter_raw():
                    answer += chunk
                    if len(answer) > self.max_answer:
                        await _answer(send, 502, b'{"error":"upstream_answer_too_large"}')
                        return
            finally:
                await upstream.aclose()
        except httpx.HTTPError:
            await _answer(send, 502, b'{"error":"upstream_unavailable"}')
            return
        await send_whole(send, upstream.status_code,
                         [(k, v) for k, v in upstream.headers.multi_items() if k.lower() not in HOP_BY_HOP],
                         bytes(answer))

    async def aclose(self) -> None:
        await self.http.aclose()


class BesideInbox:
    """The inbox (and what is mounted in it) for the routes it owns, ``other`` for every other request."""

    def __init__(self, inbox: StarletteApp, other: ASGIApp) -> None:
        self.inbox, self.other = inbox, other
        self.routes = list(getattr(inbox, "routes", []))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or any(route.matches(scope)[0] is not Match.NONE for route in self.routes):
            await self.inbox(scope, receive, send)
        else:
            await self.other(scope, receive, send)


class AccessLogged:
    """``app`` with one access line per request in ``log`` (method, path without its query, status, time)."""

    def __init__(self, app: ASGIApp, log: ServerLog) -> None:
        self.app, self.log = app, log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), [500]

        async def noted(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, noted)
        finally:
            client = scope.get("client")
            self.log.access(method=str(scope["method"]), path=str(scope["path"]), status=status[0],
                            ms=round((time.perf_counter() - start) * 1000, 2),
                            client=str(client[0]) if client else None)
