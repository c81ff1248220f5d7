"""A paying front for an ASGI app: its priced routes answer 402 until paid with a micropay voucher.

:class:`Paywall` builds the x402 resource server (the ``micropay-channel`` scheme on the payee's
chain, a local facilitator, any other schemes and facilitators given, such as x402's ``exact``)
and wraps an app in :class:`PaywallMiddleware`, plain ASGI (no web framework needed):

- an unpriced route goes straight to the app;
- a priced route without a valid payment gets the 402 (``PAYMENT-REQUIRED``), and the app is
  never called;
- a paid one runs the app with its answer held back; if the app fails (an error status or an
  exception), nothing is charged and its answer goes out as it is; if it succeeds, the payment is
  stored durably and charged, and only then does the answer go out, with ``PAYMENT-RESPONSE``.

A ``PAYMENT-SIGNATURE`` header longer than :data:`MAX_PAYMENT_HEADER` is refused (431) before
anything parses it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from x402 import AssetAmount, FacilitatorClient, Network, x402ResourceServer
from x402.http import (
    PAYMENT_SIGNATURE_HEADER,
    HTTPRequestContext,
    HTTPResponseInstructions,
    PaymentOption,
    RouteConfig,
    x402HTTPResourceServer,
)
from x402.http.types import HTTPTransportContext
from x402.http.utils import decode_payment_signature_header
from x402.interfaces import SchemeNetworkServer
from x402.schemas import VerifiedPaymentCancelOptions

from micropay._utils.asgi import ASGIApp, Message, Receive, Scope, Send, send_whole
from micropay.channel import ETH
from micropay.errors import MicropayValueError
from micropay.group_commit import GroupCommit
from micropay.payee import Payee
from micropay.x402.facilitator import local_facilitator
from micropay.x402.scheme import MAX_PAYMENT_CHARS, SCHEME
from micropay.x402.server import MicropayChannelServer

#: The longest ``PAYMENT-SIGNATURE`` header taken (base64 of a payload with the longest payment).
MAX_PAYMENT_HEADER = MAX_PAYMENT_CHARS * 3 // 2 + 4096


class _Request:
    """An ASGI request as the x402 HTTP layer reads it (its ``HTTPAdapter``)."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.headers: dict[str, str] = {k.decode("latin-1").lower(): v.decode("latin-1")
                                        for k, v in scope.get("headers", [])}

    def get_header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def get_method(self) -> str:
        return str(self.scope["method"])

    def get_path(self) -> str:
        return str(self.scope["path"])

    def get_url(self) -> str:
        query = self.scope.get("query_string", b"").decode("latin-1")
        host = self.headers.get("host", "localhost")
        return f"{self.scope.get('scheme', 'http')}://{host}{self.scope['path']}" + (f"?{query}" if query else "")

    def get_accept_header(self) -> str:
        return self.headers.get("accept") or ""

    def get_user_agent(self) -> str:
        return self.headers.get("user-agent") or ""

    def get_query_params(self) -> dict[str, str | list[str]] | None:
        return None

    def get_query_param(self, name: str) -> str | list[str] | None:
        return None

    def get_body(self) -> None:
        return None


async def _answer(send: Send, status: int, headers: Mapping[str, str], body: bytes) -> None:
    await send_whole(send, status, headers.items(), body)


async def _instructions(send: Send, answer: HTTPResponseInstructions) -> None:
    body = answer.body if answer.is_html else json.dumps(answer.body if answer.body is not None else {})
    await _answer(send, answer.status, answer.headers, body.encode() if isinstance(body, str) else bytes(body))


_JSON = {"content-type": "application/json"}


def _decodes(header: str) -> bool:
    """Whether a ``PAYMENT-SIGNATURE`` header is an x402 payment payload (x402 takes one that is
    not for no header at all, and answers a plain 402 without saying why)."""
    try:
        decode_payment_signature_header(header)
    except Exception:  # noqa: BLE001 - base64, JSON or the payload's model: each means "not a payload"
        return False
    return True


class PaywallMiddleware:
    """``app`` behind ``http``'s priced routes (see the module docstring)."""

    def __init__(self, app: ASGIApp, http: x402HTTPResourceServer) -> None:
        self.app, self.http = app, http

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = _Request(scope)
        header = request.get_header(PAYMENT_SIGNATURE_HEADER)
        if header is not None and len(header) > MAX_PAYMENT_HEADER:
            await _answer(send, 431, _JSON, b'{"error":"payment_header_too_large"}')
            return
        path = str(scope["path"])  # decoded: what is priced is what the app (or the upstream) is asked for
        if any(part in (".", "..") for part in path.split("/")) or "//" in path or "\\" in path:
            await _answer(send, 400, _JSON, b'{"error":"path_not_canonical"}')  # /./v1/x must not dodge /v1/*
            return
        if header is not None and not _decodes(header):
            await _answer(send, 400, _JSON, b'{"error":"invalid_payment_header","message":"PAYMENT-SIGNATURE is '
                                            b'not base64 of an x402 payment payload"}')
            return
        method = "GET" if scope["method"] == "HEAD" else str(scope["method"])  # HEAD costs what GET costs
        context = HTTPRequestContext(adapter=request, method=method, payment_header=header, path=path,
                                     decoded_path=path)
        if not self.http.requires_payment(context):
            await self.app(scope, receive, send)
            return
        result = await self.http.process_http_request(context)
        if result.type == "no-payment-required":
            await self.app(scope, receive, send)
            return
        if result.type == "payment-error" or result.payment_payload is None or result.payment_requirements is None:
            await _instructions(send, result.response or HTTPResponseInstructions(status=402, headers={}))
            return
        held: dict[str, Any] = {"status": 500, "headers": [], "body": bytearray()}

        async def hold(message: Message) -> None:  # the app's answer waits for the payment to be stored
            if message["type"] == "http.response.start":
                held["status"], held["headers"] = message["status"], list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                held["body"] += message.get("body", b"")

        try:
            await self.app(scope, receive, hold)
        except BaseException:
            if result.cancellation_dispatcher is not None:
                await result.cancellation_dispatcher.cancel(VerifiedPaymentCancelOptions(reason="handler_threw"))
            raise
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in held["headers"]}
        if held["status"] >= 400:  # the call failed: nothing is charged, the voucher pays a later call
            if result.cancellation_dispatcher is not None:
                await result.cancellation_dispatcher.cancel(
                    VerifiedPaymentCancelOptions(reason="handler_failed", response_status=held["status"]))
            await _answer(send, held["status"], headers, bytes(held["body"]))
            return
        settled = await self.http.process_settlement(
            result.payment_payload, result.payment_requirements, context=context,
            declared_extensions=result.declared_extensions, transport_context=HTTPTransportContext(request=context),
            before_handler_settlement=result.before_handler_settlement)
        if not settled.success:
            await _instructions(send, settled.response or HTTPResponseInstructions(status=402, headers={}))
            return
        await _answer(send, held["status"], {**headers, **settled.headers}, bytes(held["body"]))


class Paywall:
    """Charge for ``prices``' routes (``{"GET /v1/*": "0.001", "POST /v1/summary": "0.01 USDC"}``:
    x402 route patterns, each priced in ``token``'s units, or an ``AssetAmount`` in base units) with
    the ``micropay-channel`` scheme, paid to ``payee``. ``also``: more payment options every route
    accepts (x402's ``exact``, say), with the ``schemes`` (network, server scheme) and
    ``facilitators`` they need. ``group``: an inbox's group commit, to share its commits."""

    def __init__(self, payee: Payee, prices: Mapping[str, str | int | AssetAmount], *, token: str = ETH,
                 group: GroupCommit | None = None, description: str | None = None, also: Sequence[PaymentOption] = (),
                 schemes: Sequence[tuple[Network, SchemeNetworkServer]] = (),
                 facilitators: Sequence[FacilitatorClient] = ()) -> None:
        self.scheme = MicropayChannelServer(payee, token=token, group=group)
        network = self.scheme.network
        for pattern, price in prices.items():  # a price that cannot be read fails here, not on every call
            try:
                self.scheme.parse_price(price, network)
            except (MicropayValueError, ValueError) as exc:
                raise MicropayValueError(f"the price of {pattern!r}: {exc}") from None
        server = x402ResourceServer([local_facilitator(network), *facilitators])
        server.register(network, self.scheme)
        for other_network, other in schemes:
            server.register(other_network, other)
        routes: dict[str, RouteConfig] = {
            pattern: RouteConfig(accepts=[PaymentOption(scheme=SCHEME, pay_to=payee.address, price=price,
                                                        network=network), *also],
                                 description=description, mime_type="application/json")
            for pattern, price in prices.items()}
        self.http = x402HTTPResourceServer(server, routes)
        self.http.initialize()

    def wrap(self, app: ASGIApp) -> PaywallMiddleware:
        """``app`` behind this paywall."""
        return PaywallMiddleware(app, self.http)
