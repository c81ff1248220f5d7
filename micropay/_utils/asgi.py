"""The ASGI interface's types, for the plain-ASGI parts (the inbox's guard, the dashboard's login
gate, the x402 paywall and proxy), so none needs a web framework for its signatures."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
