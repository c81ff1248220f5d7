"""The freelancer's inbox over HTTP: payments, plans and feedback arrive by themselves.

:class:`Inbox` wraps a :class:`~micropay.payee.Payee` in an ASGI app (FastAPI), wire protocol v1:

- ``POST /v1/payments`` ``{"payment": "mpp1…"}``: checked, stored in the group commit, and only
  once the commit that covers it is durable answered with the payee's signed acknowledgment. A
  payment already held is answered again with the same acknowledgment (retries are safe); an older
  one with 409 ``stale_voucher`` and the acknowledgment of the best voucher held; a gap in the
  ledger with 409 ``ledger_gap`` and ``resendFrom``.
- ``POST /v1/plans`` and ``POST /v1/feedback`` ``{"document": "mpl1…" | {…}}``: taken into the
  payee's plan book, checked as ``micropay plan receive`` checks them.
- ``GET /v1/channels/{channelId}/progress``, signed (:mod:`micropay.signed_request`) by the
  channel's payer, its voucher signer or its payee: its plan's progress, and the text of every
  plan version and feedback under it for the client to take into its store.
- ``GET /v1/openapi.json``: the schema. Errors: ``{"error": code, "message": sentence, …}``.

It can be mounted under a prefix in another ASGI app: nothing waits for its lifespan, the group
commit starts with the first payment, and the host calls :meth:`Inbox.close` on shutdown (every
payment already submitted is stored). Limits: :mod:`micropay.inbox_limits`; logs: :mod:`.server_log`.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Literal

from eth_account.signers.local import LocalAccount
from fastapi import FastAPI, Request, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from micropay._utils import bounded
from micropay.acknowledgment import Acknowledgment, sign_acknowledgment
from micropay.chain_refresh import ChainRefresh
from micropay.delegation import InboxDelegation
from micropay.errors import (
    ChannelError,
    InvalidPlan,
    InvalidVoucher,
    LedgerGap,
    LedgerMismatch,
    MicropayError,
    MicropayValueError,
    NotParticipant,
    RequestRejected,
    StaleVoucher,
    UnknownChannel,
    UnknownPlan,
)
from micropay.feedback import SignedFeedback, parse_feedback
from micropay.group_commit import GroupCommit
from micropay.inbox_events import InboxEvents
from micropay.inbox_limits import GuardMiddleware, InboxGuard, InboxLimits, note_of
from micropay.inbox_schema import (
    DocumentPost,
    DocumentStored,
    PaymentHeld,
    PaymentPost,
    ProgressAnswer,
    body_schema,
    errors,
)
from micropay.notifications import Notifier
from micropay.payee import Payee
from micropay.payment import parse_payment
from micropay.plan import SignedPlan, parse_plan
from micropay.progress import progress
from micropay.records import ChannelRecord
from micropay.server_log import ServerLog
from micropay.signed_request import SIGNATURE_HEADER, SIGNER_HEADER, TIMESTAMP_HEADER, RequestVerifier

API_PREFIX = "/v1"
OPENAPI_PATH = f"{API_PREFIX}/openapi.json"
#: Plan versions not yet in force (a client's proposals, amendments awaiting a side) an inbox stores
#: at most: every one is kept, so strangers must not be able to fill the disk with them.
MAX_PENDING_PLANS = 100


# -- the inbox ----------------------------------------------------------------------------------

def _json(body: dict[str, object], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(content, status_code=status, media_type="application/json", headers=headers)


def _field(body: bytes, name: str, error: type[MicropayError], max_bytes: int) -> object:
    """``name`` of the JSON object in ``body``: bounded in size and depth before it is parsed.
    Raises :class:`RequestRejected` (400, too deep) or ``error`` for anything else wrong."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise error("the request body is not UTF-8 JSON") from None
    if bounded.nesting_depth(text) > bounded.MAX_DEPTH:
        raise RequestRejected(f"the request body is nested deeper than {bounded.MAX_DEPTH} levels", status=400)
    data = bounded.loads(text, what="request body", max_bytes=max_bytes or len(text), error=error)
    if not isinstance(data, dict) or name not in data:
        raise error(f'the request body is a JSON object with a "{name}" field')
    return data[name]


def _signed_path(request: Request) -> str:
    """The path a signed request signed: as it was sent (a mount's prefix included), with its query."""
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else request.scope["path"]
    query = request.scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


class Inbox:
    """The inbox of ``payee``: see the module docstring. The payee's own key signs the
    acknowledgments (what clients verify); ``notifier`` hears of each new payment, plan and
    feedback; ``log`` gets the JSON-lines access and event log (default: standard error).

    Raises :class:`MicropayValueError` unless the payee's account is a local key."""

    def __init__(self, payee: Payee, *, limits: InboxLimits | None = None, notifier: Notifier | None = None,
                 log: ServerLog | None = None, delegated: tuple[LocalAccount, InboxDelegation] | None = None) -> None:
        key = payee.account if delegated is None else delegated[0]
        if not isinstance(key, LocalAccount):
            raise MicropayValueError("an inbox signs acknowledgments with the payee's key, or a key the payee "
                                     "delegated to: give the Payee a LocalAccount, or delegated=(key, delegation)")
        self.delegation = None if delegated is None else delegated[1]
        if self.delegation is not None:  # checked once here, as every client will check it
            self.delegation.verify(payee.address, key.address, chain_id=payee.escrow.chain_id,
                                   escrow=payee.escrow.address, now=int(time.time()))
        self.payee, self.ack_key, self.notifier = payee, key, notifier
        self.log = log if log is not None else ServerLog()
        self.limits = limits if limits is not None else InboxLimits()
        store = payee.store.location
        self.guard = InboxGuard(self.limits, self.log, redact=(store, os.path.dirname(store)) if os.path.isabs(store)
                                else (store,))
        self.group = GroupCommit(payee.receiver)
        self.refresh = ChainRefresh(payee.receiver)
        self.verifier = RequestVerifier()
        self._lock = threading.Lock()
        self._started = self._closed = False
        self.events = InboxEvents(payee, notifier, self.log)
        self.app = self._build()

    # -- life -------------------------------------------------------------------------------------

    def _start(self) -> None:
        """Start the group commit on first use (idempotent). Raises :class:`StoreError` once closed."""
        if self._started and not self._closed:
            return
        with self._lock:
            if self._closed:
                raise RequestRejected("the inbox is stopping: try again in a moment", status=503, retry_after=1.0)
            if not self._started:
                self.payee.store.checkpoint_in_background()  # no commit waits for a checkpoint
                self.refresh.start()  # nor a payment for the chain
                self.group.start()
                self._started = True

    def close(self, timeout: float | None = None) -> None:
        """Stop taking payments and store every payment already submitted (their requests get
        their acknowledgments if still connected). Idempotent; a host calls it on shutdown."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.group.close(timeout)
        self.refresh.close()
        self.log.event("inbox_closed", payments=self.group.stored, commits=self.group.commits)

    # -- the app ----------------------------------------------------------------------------------

    def _build(self) -> FastAPI:
        app = FastAPI(title="micropay inbox", version="1", openapi_url=OPENAPI_PATH, docs_url=None, redoc_url=None,
                      description="A freelancer's micropay inbox: payments, plans and feedback arrive here.")
        app.add_middleware(GuardMiddleware, guard=self.guard)
        app.add_exception_handler(StarletteHTTPException, self._http_error)  # unknown paths and methods
        app.add_api_route(f"{API_PREFIX}/payments", self.post_payment, methods=["POST"], summary="Post a payment",
                          responses={200: {"model": PaymentHeld}, **errors(400, 403, 404, 409, 413, 429, 503)},
                          openapi_extra=body_schema(PaymentPost))
        for kind in ("plans", "feedback"):
            app.add_api_route(f"{API_PREFIX}/{kind}", self.post_plan if kind == "plans" else self.post_feedback,
                              methods=["POST"], summary=f"Post a {kind.rstrip('s')} document",
                              responses={200: {"model": DocumentStored}, **errors(400, 403, 404, 409, 413, 429)},
                              openapi_extra=body_schema(DocumentPost))
        signed = {"parameters": [{"name": "channel_id", "in": "path", "required": True,
                                  "schema": {"type": "string", "pattern": "^0x[0-9a-fA-F]{64}$"}}]
                  + [{"name": name, "in": "header", "required": True, "schema": {"type": "string"}}
                     for name in (SIGNER_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)]}
        app.add_api_route(f"{API_PREFIX}/channels/{{channel_id}}/progress", self.get_progress, methods=["GET"],
                          summary="A channel's progress (a signed request by its payer or payee)",
                          responses={200: {"model": ProgressAnswer}, **errors(401, 403, 404, 409, 429)},
                          openapi_extra=signed)
        return app

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
        what = "no such path" if status == 404 else "this method is not allowed here" if status == 405 else "refused"
        headers = getattr(exc, "headers", None) or {}  # a 405's Allow
        return self._error(request, RequestRejected(f"{what}: see {OPENAPI_PATH}", status=status), headers=headers)

    def _error(self, request: Request, exc: BaseException, *, headers: dict[str, str] | None = None,
               **extra: object) -> Response:
        answer = self.guard.answer(exc, note_of(request.scope), **extra)
        return Response(answer.encode(), status_code=answer.status, media_type="application/json",
                        headers={**(headers or {}), **answer.headers})

    async def _guarded(self, request: Request, work: Callable[[], Awaitable[Response]]) -> Response:
        try:
            return await work()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every error is answered by the one mapping (a bug: 500, logged)
            return self._error(request, exc)

    async def post_payment(self, request: Request) -> Response:
        """Checked, stored durably, then acknowledged with the payee's EIP-712 signature. A retry
        gets the same answer (duplicate: true); 409 ledger_gap says where to resend from, 409
        stale_voucher carries the acknowledgment of the later payment held."""
        return await self._guarded(request, lambda: self._payment(request))

    async def post_plan(self, request: Request) -> Response:
        """A plan proposal, acceptance or amendment between this freelancer and a client."""
        return await self._guarded(request, lambda: self._document(request, "plan"))

    async def post_feedback(self, request: Request) -> Response:
        """A delivery, a request for changes or an approval of a task of a plan in force."""
        return await self._guarded(request, lambda: self._document(request, "feedback"))

    async def get_progress(self, request: Request) -> Response:
        """The progress of the channel's plan and every plan version and feedback under it, for a
        request signed by the channel's payer (or its voucher signer) or payee."""
        channel = str(request.path_params.get("channel_id", ""))
        return await self._guarded(request, lambda: self._progress(request, channel))

    # -- payments ---------------------------------------------------------------------------------

    async def _payment(self, request: Request) -> Response:
        text = _field(await request.body(), "payment", InvalidVoucher, self.limits.max_body)
        if not isinstance(text, str):
            raise InvalidVoucher("the payment is its text: mpp1…, mpp2… or mpv1…")
        payment = parse_payment(text)
        voucher, escrow = payment.voucher, self.payee.escrow
        note_of(request.scope).channel = "0x" + voucher.channel_id.hex()
        self.guard.check_channel(voucher.channel_id)
        ours = (voucher.chain_id, voucher.escrow) == (escrow.chain_id, escrow.address)
        refused = self.guard.unknown.get(voucher.channel_id) if ours else None
        if refused is not None:
            raise refused  # the chain said so a moment ago: no second lookup
        self._start()
        try:
            received = await self.group.receive_async(payment)
        except (UnknownChannel, NotParticipant) as exc:
            if ours:
                self.guard.unknown.put(voucher.channel_id, exc)
            raise
        except StaleVoucher as exc:
            self.guard.count_channel(voucher.channel_id)
            held = await self._held(voucher.channel_id)
            return self._error(request, exc, acknowledgment=held.to_dict() if held else None)
        except (LedgerGap, LedgerMismatch, ChannelError):
            self.guard.count_channel(voucher.channel_id)  # refused after its signature checked out
            raise
        self.guard.count_channel(voucher.channel_id)
        ack = self._acknowledge(received.channel_id, received.cumulative, voucher.ledger_root)
        if not received.duplicate:
            self.events.payment(received)
        return _json({"held": True, "duplicate": received.duplicate, "channelId": "0x" + received.channel_id.hex(),
                      "cumulativeAmount": str(received.cumulative), "added": str(received.added),
                      "tasks": [{"taskId": t.task_id, "amount": str(t.amount), "note": t.note} for t in received.tasks],
                      "acknowledgment": ack.to_dict()})

    def _acknowledge(self, channel_id: bytes, amount: int, ledger_root: bytes) -> Acknowledgment:
        escrow = self.payee.escrow
        return sign_acknowledgment(self.ack_key, chain_id=escrow.chain_id, escrow=escrow.address,
                                   channel_id=channel_id, amount=amount, ledger_root=ledger_root,
                                   delegation=self.delegation)

    async def _held(self, channel_id: bytes) -> Acknowledgment | None:
        """The acknowledgment of the best voucher held on the channel (None if none is)."""
        tip = await asyncio.to_thread(self.payee.store.tip, self.payee.ref(channel_id))
        if tip is None or tip.best is None:
            return None
        return self._acknowledge(channel_id, tip.best.amount, tip.best.ledger_root)

    # -- plans and feedback -----------------------------------------------------------------------

    async def _document(self, request: Request, kind: Literal["plan", "feedback"]) -> Response:
        client = request.scope.get("client")
        self.guard.check_document(str(client[0]) if client else None)
        value = _field(await request.body(), "document", InvalidPlan, self.limits.max_document)
        if not isinstance(value, (str, dict)):
            raise InvalidPlan(f"the {kind} is its text (mpl1…, mpf1…) or its JSON document")
        book = self.payee.plans
        if kind == "plan":
            posted = SignedPlan.from_dict(value) if isinstance(value, dict) else parse_plan(value)
            if not posted.in_force and await asyncio.to_thread(self.payee.store.pending_plans) >= MAX_PENDING_PLANS:
                raise RequestRejected(f"{MAX_PENDING_PLANS} proposals already wait for this freelancer: send yours "
                                      "another way, or later", status=429, retry_after=3600.0)
            before = await asyncio.to_thread(self.payee.store.plan, posted.hash)
            plan = await asyncio.to_thread(book.take, posted)
            if before is None or before.signed.in_force != plan.in_force:  # news, not a repeat
                self.events.plan(plan)
            return _json({"stored": True, "kind": "plan", "hash": "0x" + plan.hash.hex(), "inForce": plan.in_force})
        given = SignedFeedback.from_dict(value) if isinstance(value, dict) else parse_feedback(value)
        held = await asyncio.to_thread(self._feedback_held, given)
        feedback = await asyncio.to_thread(book.take_feedback, given)
        if given.feedback.hash not in held:  # news, not a repeat
            self.events.feedback(feedback)
        return _json({"stored": True, "kind": "feedback", "taskId": feedback.feedback.task_id,
                      "status": feedback.feedback.status})

    def _feedback_held(self, feedback: SignedFeedback) -> set[bytes]:
        """The hashes of the feedback already held on the project ``feedback`` is about (none if unknown)."""
        try:
            root = self.payee.plans.history(feedback.feedback.plan).root
        except UnknownPlan:
            return set()
        return {stored.signed.feedback.hash for stored in self.payee.store.feedback(root)}

    # -- reads ------------------------------------------------------------------------------------

    async def _progress(self, request: Request, channel_text: str) -> Response:
        if not (len(channel_text) == 66 and channel_text[:2] in ("0x", "0X")):
            raise UnknownChannel("a channel id is 0x and 64 hex digits")
        try:
            channel_id = bytes.fromhex(channel_text[2:])
        except ValueError:
            raise UnknownChannel("a channel id is 0x and 64 hex digits") from None
        note_of(request.scope).channel = "0x" + channel_id.hex()
        self.guard.check_channel(channel_id)
        record = await asyncio.to_thread(self.payee.store.find_channel, self.payee.ref(channel_id))
        if record is None:  # opened under a plan, not paid yet: the chain knows it (asked once a minute at most)
            refused = self.guard.unknown.get(channel_id)
            if refused is not None:
                raise refused
            self._start()
            try:
                record = await self.group.on_chain(self.group.receiver.adopt, channel_id)
            except (UnknownChannel, NotParticipant) as exc:
                self.guard.unknown.put(channel_id, exc)
                raise UnknownChannel(f"this inbox holds no channel 0x{channel_id.hex()}") from None
        if record.role != "payee" or record.key.payee != self.payee.address:
            raise UnknownChannel(f"this inbox holds no channel 0x{channel_id.hex()}")
        parties = (record.key.payer, record.key.voucher_signer, self.payee.address)

        def party(signer: str) -> None:  # judged before the request is remembered against replay
            if signer not in parties:
                raise RequestRejected(f"{signer} is neither the channel's payer nor its payee", status=403)

        self.verifier.verify(request.method, _signed_path(request), await request.body(), request.headers,
                             authorize=party)
        self.guard.count_channel(channel_id)
        return _json(await asyncio.to_thread(self._read_progress, record))

    def _read_progress(self, record: ChannelRecord) -> dict[str, object]:
        store = self.payee.store
        found = progress(store, record, self.payee.address)
        history = self.payee.plans.for_channel(record)
        documents = [v.signed.encode() for v in history.versions]
        documents += [f.signed.encode() for f in store.feedback(history.root)]
        return {"progress": found.to_dict(), "documents": documents}

