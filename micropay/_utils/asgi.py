"""The ASGI interface's types, for the plain-ASGI parts (the inbox's guard, the dashboard's login
gate, the x402 paywall and proxy), so none needs a web framework for its signatures."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def send_whole(send: Send, status: int, headers: Iterable[tuple[str, str]], body: bytes) -> None:
    """Send one whole HTTP response: ``headers`` (any content-length among them is replaced by
    the body's own), then ``body``."""
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers if k.lower() != "content-length"]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
