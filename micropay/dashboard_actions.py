"""The dashboard's one action so far, "settle now", and the rules every action obeys.

An action is offered only when the dashboard was given the key to act with, and it is taken only
when all of these hold: the request comes from loopback (the connection's address) and names a
loopback host (a page of another site that resolves its own name to 127.0.0.1 cannot pass: DNS
rebinding); it carries this dashboard's per-session CSRF token, which only its own pages hold; its
form is small. The page before it shows exactly what it will send: the dry-run figures of the
settlement (channels, gross, transactions, the most gas can cost, net).
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qs

from fastapi import Request

from micropay.errors import RequestRejected

#: Hosts a request may name to act: loopback only.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
LOOPBACK_CLIENTS = frozenset({"127.0.0.1", "::1"})
#: The largest action form read.
MAX_FORM = 4096


class ActionGuard:
    """The CSRF token of one dashboard session and the checks of every action."""

    def __init__(self) -> None:
        self.csrf = secrets.token_urlsafe(32)

    async def form(self, request: Request) -> dict[str, str]:
        """The action's form, once every rule holds. Raises :class:`RequestRejected` (403) if the
        request is not from loopback, names another host, is too large, or lacks the token."""
        client = request.scope.get("client")
        host = (request.headers.get("host") or "").rsplit(":", 1)[0] if request.headers.get("host") else ""
        if not client or str(client[0]) not in LOOPBACK_CLIENTS or host not in LOOPBACK_HOSTS:
            raise RequestRejected("actions are taken only on loopback", status=403)
        body = await request.body()
        if len(body) > MAX_FORM:
            raise RequestRejected("the form is too large", status=413)
        fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), max_num_fields=16).items()}
        if not hmac.compare_digest(fields.get("csrf", ""), self.csrf):
            raise RequestRejected("this form is not one of this dashboard's pages (its CSRF token is missing or "
                                  "wrong): open the page again", status=403)
        return fields
