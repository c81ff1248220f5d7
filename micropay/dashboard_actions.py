"""Who may see and do what on the dashboard: its actions ("settle now", a client's review of a
delivered task), the rules every action obeys, and the login token of a dashboard served beyond
loopback (:class:`TokenGate`).

An action is offered only when the dashboard was given the key to act with, and it is taken only
when all of these hold: the request comes from loopback (the connection's address) and names a
loopback host (a page of another site that resolves its own name to 127.0.0.1 cannot pass: DNS
rebinding); it carries this dashboard's per-session CSRF token, which only its own pages hold; its
form is small. The page before it shows exactly what it will send: the dry-run figures of the
settlement (channels, gross, transactions, the most gas can cost, net).
"""

from __future__ import annotations

import contextlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs

from eth_account.signers.local import LocalAccount
from fastapi import Request

from micropay._utils.asgi import Receive, Scope, Send, send_whole
from micropay.errors import MicropayValueError, RequestRejected
from micropay.feedback import Feedback, SignedFeedback, Status
from micropay.inbox_client import send_document
from micropay.payer import Payer
from micropay.plan_payments import latest_delivery
from micropay.records import ChannelRecord

#: Hosts a request may name to act: loopback only.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
LOOPBACK_CLIENTS = frozenset({"127.0.0.1", "::1"})
#: The largest action form read.
MAX_FORM = 4096


class ActionGuard:
    """The CSRF token of one dashboard session and the checks of every action."""

    def __init__(self) -> None:
        self.csrf = secrets.token_urlsafe(32)

    @staticmethod
    def local(request: Request) -> bool:
        """Whether ``request`` came from loopback, to a loopback host name, not through a proxy
        (a reverse proxy on this host connects from loopback too, but says whom for)."""
        client = request.scope.get("client")
        host = request.headers.get("host") or ""
        host = host[: host.index("]") + 1] if host.startswith("[") and "]" in host else \
            host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        proxied = "x-forwarded-for" in request.headers or "forwarded" in request.headers
        return client is not None and str(client[0]) in LOOPBACK_CLIENTS and host in LOOPBACK_HOSTS and not proxied

    async def form(self, request: Request) -> dict[str, str]:
        """The action's form, once every rule holds. Raises :class:`RequestRejected` (403) if the
        request is not :meth:`local`, is too large, or lacks the token."""
        if not self.local(request):
            raise RequestRejected("actions are taken only on loopback", status=403)
        body = await request.body()
        if len(body) > MAX_FORM:
            raise RequestRejected("the form is too large", status=413)
        fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), max_num_fields=16).items()}
        if not hmac.compare_digest(fields.get("csrf", ""), self.csrf):
            raise RequestRejected("this form is not one of this dashboard's pages (its CSRF token is missing or "
                                  "wrong): open the page again", status=403)
        return fields


@dataclass(frozen=True)
class Review:
    """What a client's review would sign: the feedback as it will be (``at`` set when sent), and
    the project it is on. Raises :class:`MicropayValueError` for a status that is not a review."""

    root: bytes
    feedback: Feedback

    @classmethod
    def of(cls, payer: Payer, record: ChannelRecord, task_id: str, status: str) -> Review:
        """The review of ``task_id`` on the plan ``record`` was opened under. Raises
        :class:`MicropayValueError` for another status, what the plan book raises for the rest."""
        if status not in ("approved", "changes requested"):
            raise MicropayValueError("a review approves a task or requests changes to it")
        history = payer.plans.for_channel(record)
        plan = payer.plans.in_force(history.root)
        if not any(task.id == task_id for task in plan.tasks):
            raise MicropayValueError(f"the plan has no task {task_id!r}")
        said = [f.signed.feedback for f in payer.store.feedback(history.root) if f.signed.feedback.task_id == task_id]
        if not said or said[-1].status != "delivered":
            raise MicropayValueError(f"task {task_id!r} is not waiting for a review (its latest word is "
                                     f"{said[-1].status if said else 'none'}): nothing to sign")
        review_status: Status = "approved" if status == "approved" else "changes requested"
        return cls(history.root, Feedback(plan.chain_id, plan.escrow, history.root, task_id, review_status, 0,
                                          latest_delivery(payer.store, history.root, task_id)))

    def sign(self, payer: Payer, note: str) -> tuple[SignedFeedback, str]:
        """Sign and store it with ``note`` (the same fields shown, ``at`` now), then send it to the
        plan's inbox if it names one: the signed feedback and one sentence on its delivery. Raises
        what :meth:`PlanBook.give` raises; never for the network."""
        if not isinstance(payer.account, LocalAccount):
            raise MicropayValueError("this client's account is a contract wallet: its owners sign its reviews")
        f = self.feedback
        signed = payer.plans.give(payer.account, self.root, f.task_id, f.status, deliverable=f.deliverable, note=note)
        url = payer.plans.in_force(self.root).inbox
        if not url:
            return signed, "The plan names no inbox: send the feedback text to the freelancer."
        reason = send_document(url, signed.encode())
        if reason is not None:
            return signed, f"Not delivered to the freelancer's inbox ({reason}): send it yourself."
        return signed, "Delivered to the freelancer's inbox."


COOKIE = "micropay_dashboard"


class TokenGate:
    """ASGI middleware: the dashboard served by ``micropay serve`` (reachable beyond loopback) is
    for the holder of its login token only. ``?token=…`` on any page sets it as an HttpOnly,
    SameSite=Strict cookie and redirects to the page without it (so it leaves the address bar and
    the history); every other request must carry the cookie. Compared in constant time."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1"), max_num_fields=8)
        cookies = SimpleCookie()
        for name, value in scope.get("headers", []):
            if name == b"cookie":
                with contextlib.suppress(CookieError):
                    cookies.load(value.decode("latin-1"))
        given = query.get("token", [""])[0]
        if given and hmac.compare_digest(given, self.token):
            root, path = str(scope.get("root_path", "")), str(scope.get("path", "/"))
            path = path if path.startswith(root) else root + path  # Starlette keeps the mount's prefix in path
            await _answer(send, 303, b"", [("location", path), ("set-cookie", (
                f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path={scope.get('root_path') or '/'}"))])
            return
        held = cookies[COOKIE].value if COOKIE in cookies else ""
        if not held or not hmac.compare_digest(held, self.token):
            await _answer(send, 401, b"<!doctype html><title>login</title><p>Open the dashboard with the address "
                                     b"that micropay serve printed: it carries the login token.</p>",
                          [("content-type", "text/html; charset=utf-8")])
            return
        await self.app(scope, receive, send)


async def _answer(send: Send, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
    await send_whole(send, status, [*headers, ("cache-control", "no-store")], body)
