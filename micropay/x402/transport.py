"""An httpx client that pays x402 routes in one round trip: :func:`paying_client`.

x402's own transport sends each request unpaid, takes the 402 and sends it again, paid: two round
trips per call. :class:`PayingTransport` remembers each paid route's requirements from its first
402 and from then on sends the payment with the request (``PAYMENT-SIGNATURE``): one round trip.
If the payee answers 402 all the same (a price changed, or the payee's count of what was charged
differs from the client's after a crash), x402's transport under it pays from that 402, once.
Routes are known by method and URL (a free GET beside a priced POST on one path stays free).

Paid calls to one origin are serialized (one at a time per API), so each voucher extends the one
before: the payee accepts any voucher that covers what it charged plus the price, and a call that
failed leaves its voucher to pay the next one. Each request's method and path become its
receipt's task id, and the hash of its method, target and body its deliverable.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httpx
from x402 import PaymentPayload, PaymentRequired, PaymentRequirements, x402Client
from x402.client_base import SpendControlAsset, SpendControls
from x402.http import PAYMENT_RESPONSE_HEADER, PAYMENT_SIGNATURE_HEADER, x402HTTPClient
from x402.http.clients.httpx import x402AsyncTransport
from x402.http.utils import decode_payment_response_header
from x402.schemas import PaymentCreatedContext, SettleResponse

from micropay.channel import ETH
from micropay.payer import Payer
from micropay.x402.client import CURRENT_CALL, Call, MicropayChannelScheme, SpendingCaps
from micropay.x402.scheme import SCHEME, network_of, request_hash, task_of

#: Keys a corrective 402 adds to a requirement's extra: not kept with the route's requirements.
_CORRECTIVE = frozenset({"channel", "charged", "held", "receipts", "reason"})


def _route(url: str) -> str:
    """A route's key: its URL without the query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class PayingTransport(httpx.AsyncBaseTransport):
    """Pays x402 routes through ``client`` (with ``scheme`` registered), pre-emptively once a
    route's requirements are known; ``inner`` sends the requests (default: httpx's)."""

    def __init__(self, client: x402Client, scheme: MicropayChannelScheme,
                 inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.client, self.scheme = client, scheme
        self.network = network_of(scheme.payer.escrow.chain_id)
        self.http = x402HTTPClient(client)
        self.inner = x402AsyncTransport(client, inner or httpx.AsyncHTTPTransport())
        self._required: dict[tuple[str, str], PaymentRequired] = {}  # (method, route): its last 402
        self._locks: dict[str, asyncio.Lock] = {}
        client.on_after_payment_creation(self._learn)

    def _learn(self, context: PaymentCreatedContext) -> None:
        """Remember a route's requirements (without a corrective 402's state) from the 402 it paid."""
        required = context.payment_required
        if not isinstance(required, PaymentRequired) or required.resource is None:
            return
        call = CURRENT_CALL.get()
        if call is None:
            return  # not a request of this transport
        accepts = [PaymentRequirements.model_validate(
            {**r.model_dump(), "extra": {k: v for k, v in r.extra.items() if k not in _CORRECTIVE}})
            for r in required.accepts]
        self._required[(call.method, _route(required.resource.url))] = required.model_copy(
            update={"accepts": accepts, "error": None})

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        key = (request.method.upper(), _route(str(request.url)))
        target = request.url.raw_path.decode("ascii", errors="replace")
        token = CURRENT_CALL.set(Call(task_of(request.method, request.url.path),
                                      request_hash(request.method, target, body), key[0]))
        try:
            required = self._required.get(key)
            ours = None if required is None else next(
                (r for r in required.accepts if r.scheme == SCHEME and r.network == self.network), None)
            if required is None or ours is None or PAYMENT_SIGNATURE_HEADER in request.headers:
                return await self._send(request)
            origin = f"{request.url.scheme}://{request.url.netloc.decode('ascii')}"
            async with self._locks.setdefault(origin, asyncio.Lock()):
                # Signed and stored durably off the event loop (x402 calls a scheme synchronously):
                # other calls go on while this one's voucher reaches the disk.
                inner = await asyncio.to_thread(self.scheme.create_payment_payload, ours)
                payload = PaymentPayload(payload=inner, accepted=ours, resource=required.resource)
                request.headers.update(self.http.encode_payment_signature_header(payload))
                return await self._send(request)
        finally:
            CURRENT_CALL.reset(token)

    async def _send(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        header = response.headers.get(PAYMENT_RESPONSE_HEADER)
        if header is not None and response.status_code < 400:
            try:
                settled = decode_payment_response_header(header)
            except Exception:  # noqa: BLE001 - a garbled header from the server: nothing to learn from it
                return response
            if isinstance(settled, SettleResponse) and settled.success:
                self.scheme.payee_said(settled.extra)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def paying_client(payer: Payer, caps: SpendingCaps, *, token: str = ETH, **httpx_options: object
                  ) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` that pays ``micropay-channel`` routes from ``payer``'s channels in
    ``token`` (ETH by default), within ``caps``, in one round trip per call once it knows a route."""
    scheme = MicropayChannelScheme(payer, caps)
    client = x402Client()
    client.register(network_of(payer.escrow.chain_id), scheme)
    allowed = SpendControlAsset(network=network_of(payer.escrow.chain_id), asset=token)
    if caps.max_price is not None:
        allowed["max_amount_per_payment"] = str(caps.max_price)
    client.set_spend_controls(SpendControls(allowed_assets=[allowed]))
    return httpx.AsyncClient(transport=PayingTransport(client, scheme), **httpx_options)  # type: ignore[arg-type]
