"""The dashboard: HTML pages over the local store and the chain, drawn on the server.

:class:`Dashboard` is an ASGI app (FastAPI, the ``server`` extra) with one overview page for the
account (as a freelancer: earnings over time per client and settled, unclaimed value per channel
with its expiry counted down and warnings, each plan's progress; as a client: spent against each
deposit, what the freelancer holds, what is not delivered yet, each plan's progress). Every figure
is in the HTML (amounts in token units, each with its exact value in base units in ``data-wei``;
charts as SVG), so the page is whole without JavaScript; a small script fetches the page again
every few seconds and swaps in what changed, and writes dates in the viewer's time zone. Every
asset ships in the package (no CDN). ``micropay dashboard`` serves it on loopback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from importlib import resources

from eth_account.signers.local import LocalAccount
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FunctionLoader, select_autoescape
from markupsafe import escape

from micropay.channel import closing
from micropay.charts import earnings_chart, progress_bar
from micropay.dashboard_actions import ActionGuard, Review
from micropay.dashboard_data import ChannelLine, CloseRequests, channel_lines, earnings, feed
from micropay.errors import InsufficientFunds, MicropayError, RequestRejected
from micropay.escrow import Escrow
from micropay.inbox_sync import InboxReads, channel_inbox
from micropay.overview import overview
from micropay.payee import Payee
from micropay.payer import Payer
from micropay.progress import Progress, TaskProgress, progress
from micropay.records import ChannelRecord, SettlementRecord
from micropay.statement import build_statement, to_html
from micropay.store import VoucherStore
from micropay.units import format_amount

_ASSETS = "dashboard_assets"
_STATIC = {"dashboard.css": "text/css; charset=utf-8", "dashboard.js": "text/javascript; charset=utf-8"}


def _asset(name: str) -> str:
    return resources.files("micropay").joinpath(_ASSETS).joinpath(name).read_text(encoding="utf-8")


def _iso(t: int) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat()


def _utc(t: int) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def channel_status(record: ChannelRecord, now: int) -> str:
    """Where a channel stands, in words for its party: open, closing (until when), expired or closed."""
    if record.closed:
        return "closed"
    if now > record.expiry:
        return "expired: nothing more can be claimed" if record.role == "payee" else "expired: reclaim what is left"
    if closing(record, now):
        return ("closing: claims land until it expires, settle before that" if record.role == "payee"
                else "closing: the freelancer may claim until it expires; reclaim the rest after that")
    return "open"


def _countdown(seconds: int) -> str:
    if seconds <= 0:
        return "expired"
    days, rest = divmod(seconds, 86400)
    return f"in {days}d {rest // 3600}h" if days else f"in {rest // 3600}h {rest % 3600 // 60:02d}m"


class Dashboard:
    """The pages of ``address``'s channels in ``store``, read through ``escrows`` (one batched
    read per escrow and page). ``safety_margin``: seconds before expiry from which unclaimed value
    is flagged; ``refresh``: seconds between the page script's refreshes (0: none)."""

    def __init__(self, store: VoucherStore, address: str, escrows: Sequence[Escrow], *, safety_margin: int = 3600,
                 refresh: float = 3.0, explorers: Mapping[int, str] | None = None, payee: Payee | None = None,
                 payer: Payer | None = None) -> None:
        self.store, self.address, self.escrows = store, address, list(escrows)
        # Given, their actions are offered (on loopback, with the session's CSRF token): "settle
        # now" for the payee, reviews of delivered tasks for the payer.
        self.payee, self.payer = payee, payer
        self.guard = ActionGuard()
        # A client with its key reads deliveries and amendments from each freelancer's inbox itself.
        signer = payer.signer if payer is not None and isinstance(payer.signer, LocalAccount) else None
        self.inbox_reads = None if payer is None or signer is None else \
            InboxReads(store, signer, lambda _plan: payer.plans)
        if self.inbox_reads is not None:
            self.inbox_reads.start(lambda: store.channels("payer"))
        self.closing = CloseRequests(self.escrows, address)
        self.safety_margin, self.refresh = safety_margin, refresh
        self.explorers = dict(explorers or {})
        self._units: dict[str, tuple[int, str]] = {}
        self._templates = Environment(loader=FunctionLoader(_asset), autoescape=select_autoescape(default=True))
        self.app = self._build()

    def close(self) -> None:
        """Stop the background reads of the freelancers' inboxes (a client's, with its key)."""
        if self.inbox_reads is not None:
            self.inbox_reads.close()

    def _build(self) -> FastAPI:
        app = FastAPI(title="micropay dashboard", docs_url=None, redoc_url=None, openapi_url=None)
        app.add_api_route("/", self.overview_page, methods=["GET"], response_class=HTMLResponse)
        app.add_api_route("/channels/{channel_id}", self.channel_page, methods=["GET"], response_class=HTMLResponse)
        app.add_api_route("/channels/{channel_id}/statement", self.statement_page, methods=["GET"],
                          response_class=HTMLResponse)
        app.add_api_route("/static/{name}", self.static, methods=["GET"])
        if self.payer is not None:
            app.add_api_route("/channels/{channel_id}/review", self.review_page, methods=["GET"],
                              response_class=HTMLResponse)
            app.add_api_route("/channels/{channel_id}/review", self.review, methods=["POST"],
                              response_class=HTMLResponse)
        if self.payee is not None:
            app.add_api_route("/settle", self.settle_page, methods=["GET"], response_class=HTMLResponse)
            app.add_api_route("/settle", self.settle, methods=["POST"], response_class=HTMLResponse)
        return app

    # -- helpers the templates use ---------------------------------------------------------------

    def units(self, token: str) -> tuple[int, str]:
        """Decimals and symbol of ``token``: the chain is asked once per token (base units if it will not say)."""
        if token not in self._units:
            try:
                self._units[token] = self.escrows[0].token_units(token) if self.escrows else (0, "base units")
            except MicropayError:
                self._units[token] = (0, "base units")
        return self._units[token]

    def show(self, value: int, token: str) -> str:
        """``value`` base units of ``token`` in its units ("0.005 ETH")."""
        return format_amount(value, *self.units(token))

    def explorer(self, settlement: SettlementRecord) -> str | None:
        """The block explorer's page of a settlement's transaction (its chain's ``{tx}`` template), if one is set."""
        template = self.explorers.get(settlement.chain_id)
        return None if template is None else template.replace("{tx}", "0x" + settlement.tx_hash.hex())

    def show_in(self, token: str, value: int) -> str:
        """:meth:`show` with the token first (to bind it)."""
        return self.show(value, token)

    # -- pages ------------------------------------------------------------------------------------

    def static(self, name: str) -> Response:
        """A stylesheet or script shipped in the package."""
        if name not in _STATIC:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(_asset(name), media_type=_STATIC[name], headers={"Cache-Control": "no-cache"})

    def overview_page(self, request: Request) -> HTMLResponse:
        """The account's overview: its freelancer and client sides."""
        now = int(time.time())
        views = overview(self.store, self.escrows)
        if self.inbox_reads is not None:
            self.inbox_reads.poke([v.record for v in views])
        closing = self.closing.update() if any(v.record.role == "payee" for v in views) else set()
        lines = channel_lines(self.store, views, now=now, safety_margin=self.safety_margin, closing=closing)
        plans = self._plans(lines)  # each plan's progress, read once for the warnings, the bars and the reviews
        overdue = {line.channel_id: found.overdue for line, found in plans if found.overdue}
        lines = [dataclasses.replace(line, warnings=(*line.warnings, "overdue: " + ", ".join(overdue[line.channel_id])))
                 if line.channel_id in overdue else line for line in lines]
        payee = [line for line in lines if line.role == "payee"]
        payer = [line for line in lines if line.role == "payer"]
        payee_plans = [(line, found) for line, found in plans if line.role == "payee"]
        payer_plans = [(line, found) for line, found in plans if line.role == "payer"]
        charts = []
        for token in sorted({line.token for line in payee}):
            mine = earnings(self.store, token)
            charts.append(earnings_chart(mine.series, show=functools.partial(self.show_in, token),
                                         title=f"Earnings in {self.units(token)[1]}: received per client and settled",
                                         chart_id=f"earnings-{token[2:10].lower()}"))
        return self._page(request, "overview.html", "Dashboard", refreshed=True, payee_lines=payee, payer_lines=payer,
                          charts=charts, payee_bars=self._bars(payee_plans), payer_bars=self._bars(payer_plans),
                          countdown=_countdown, feed=feed(self.store, self.address), explorer=self.explorer,
                          review=self._review(payer_plans),
                          can_settle=self.payee is not None and self.guard.local(request),
                          settlements=sorted(self.store.settlements(), key=lambda s: s.created_at,
                                             reverse=True)[:20])

    def _page(self, request: Request, name: str, title: str, *, refreshed: bool = False,
              **values: object) -> HTMLResponse:
        """Template ``name`` rendered with what every page uses; ``refreshed``: its script refreshes it."""
        html = self._templates.get_template(name).render(
            title=title, address=self.address, prefix=request.scope.get("root_path", ""),
            refresh_ms=int(self.refresh * 1000) if refreshed else 0, show=self.show, iso=_iso, utc=_utc,
            csrf=self.guard.csrf, **values)
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    def settle_page(self, request: Request) -> HTMLResponse:
        """What "settle now" would send (a dry run), with the form that sends it."""
        if self.payee is None:
            return HTMLResponse("not found", status_code=404)
        try:
            plan = self.payee.plan_settlement()
            funds = self.payee.escrow.balance(self.payee.address)
        except InsufficientFunds:  # the node would not even estimate it
            return self._page(request, "settle.html", "Settle now", plan=None, done=None, no_gas=True,
                              reason=f"{self.payee.address} cannot pay the gas of a settlement")
        except MicropayError as exc:
            return self._page(request, "settle.html", "Settle now", plan=None, done=None, reason=str(exc))
        return self._page(request, "settle.html", "Settle now", plan=plan, done=None, reason="", funds=funds,
                          local=self.guard.local(request))

    async def settle(self, request: Request) -> HTMLResponse:
        """Send the settlement: only from loopback, with this session's CSRF token."""
        if self.payee is None:
            return HTMLResponse("not found", status_code=404)
        payee = self.payee
        try:
            await self.guard.form(request)
        except RequestRejected as exc:
            return HTMLResponse(f"<!doctype html><title>refused</title><p>{escape(str(exc))}</p>",
                                status_code=exc.status)
        try:
            done = await asyncio.to_thread(payee.settle)
        except MicropayError as exc:
            return self._page(request, "settle.html", "Settle now", plan=None, done=None, reason=str(exc))
        return self._page(request, "settle.html", "Settled", plan=None, done=done, reason="")

    def review_page(self, request: Request, channel_id: str, task: str = "", status: str = "") -> HTMLResponse:
        """Exactly what a review of ``task`` would sign, with the form that signs and sends it."""
        record = self._channel(channel_id)
        if record is None or self.payer is None:
            return HTMLResponse("<!doctype html><title>not found</title><p>No such channel here.</p>", status_code=404)
        try:
            review = Review.of(self.payer, record, task, status)
        except MicropayError as exc:
            return HTMLResponse(f"<!doctype html><title>refused</title><p>{escape(str(exc))}</p>", status_code=400)
        return self._page(request, "review.html", "Review", feedback=review.feedback, task_id=task,
                          status=review.feedback.status, channel_hex=record.id.hex(), done=False)

    async def review(self, request: Request, channel_id: str) -> HTMLResponse:
        """Sign, store and send a review: only from loopback, with this session's CSRF token."""
        record = self._channel(channel_id)
        if record is None or self.payer is None:
            return HTMLResponse("<!doctype html><title>not found</title><p>No such channel here.</p>", status_code=404)
        payer = self.payer
        try:
            form = await self.guard.form(request)
            review = Review.of(payer, record, form.get("task", ""), form.get("status", ""))
            _, delivered = await asyncio.to_thread(review.sign, payer, form.get("note", "")[:500])
        except RequestRejected as exc:
            return HTMLResponse(f"<!doctype html><title>refused</title><p>{escape(str(exc))}</p>",
                                status_code=exc.status)
        except MicropayError as exc:
            return HTMLResponse(f"<!doctype html><title>refused</title><p>{escape(str(exc))}</p>", status_code=400)
        return self._page(request, "review.html", "Reviewed", feedback=review.feedback, task_id=review.feedback.task_id,
                          status=review.feedback.status, channel_hex=record.id.hex(), done=True, delivered=delivered)

    def _channel(self, text: str) -> ChannelRecord | None:
        """This account's channel named by ``0x`` and 64 hex digits (None: no such channel here)."""
        if len(text) != 66 or not text.startswith("0x"):
            return None
        try:
            channel_id = bytes.fromhex(text[2:])
        except ValueError:
            return None
        mine = [r for r in self.store.channels_with_id(channel_id) if self.address in (r.key.payer, r.key.payee)]
        return mine[0] if mine else None

    def channel_page(self, request: Request, channel_id: str) -> HTMLResponse:
        """One channel: its facts, its plan's tasks, its ledger, a link to its statement."""
        record = self._channel(channel_id)
        if record is None:
            return HTMLResponse("<!doctype html><title>not found</title><p>No such channel here.</p>", status_code=404)
        plan = None
        if record.terms is not None:
            try:
                plan = progress(self.store, record, self.address)
            except MicropayError:
                plan = None
        ledger = self.store.ledger(record.ref)
        now = int(time.time())
        for escrow in self.escrows:  # the chain's word on this channel alone: a close request moves the expiry
            if (escrow.chain_id, escrow.address) == (record.chain_id, record.escrow):
                (state,) = escrow.channels([record.key])
                if state is not None:
                    record, now = record.updated(state, checked_at=time.time()), state.observed_at
        inbox = channel_inbox(self.store, record) if record.role == "payer" else None
        if self.inbox_reads is not None:
            self.inbox_reads.poke([record])
        return self._page(request, "channel.html", f"Channel 0x{record.id.hex()[:12]}", refreshed=True, record=record,
                          plan=plan, ledger=ledger, paid=ledger[-1].total if ledger else 0,
                          can_review=self.payer is not None and record.role == "payer",
                          status=channel_status(record, now), inbox=inbox,
                          inbox_read=None if self.inbox_reads is None else self.inbox_reads.outcome.get(record.id))

    def statement_page(self, request: Request, channel_id: str) -> HTMLResponse:
        """The channel's statement, as ``micropay statement --format html`` writes it, with a way back."""
        record = self._channel(channel_id)
        if record is None:
            return HTMLResponse("<!doctype html><title>not found</title><p>No such channel here.</p>", status_code=404)
        statement = build_statement(self.store, [record], self.address, escrow=self.escrows)
        where = f'{escape(request.scope.get("root_path", ""))}/channels/0x{record.id.hex()}'
        back = f'<body>\n<p><a href="{where}">Back to the channel</a></p>'
        return HTMLResponse(to_html(statement, self.units).replace("<body>", back, 1),
                            headers={"Cache-Control": "no-store"})

    def _plans(self, lines: Sequence[ChannelLine]) -> list[tuple[ChannelLine, Progress]]:
        """The progress of each channel opened under a plan this store holds."""
        found = []
        for line in lines:
            record = self.store.find_channel(line.ref)
            if record is None or record.terms is None:
                continue
            try:
                found.append((line, progress(self.store, record, self.address)))
            except MicropayError:
                continue  # terms that are no plan this store holds: nothing to show
        return found

    @staticmethod
    def _review(plans: Sequence[tuple[ChannelLine, Progress]]) -> list[tuple[bytes, TaskProgress]]:
        """The client's tasks delivered and waiting for its review."""
        return [(line.channel_id, task) for line, found in plans for task in found.tasks
                if task.state == "delivered" and task.waiting_for == "payer"]

    def _bars(self, plans: Sequence[tuple[ChannelLine, Progress]]) -> list[tuple[str, str]]:
        """A progress bar per channel opened under a plan (what is paid against what is planned),
        with the same words as a visible caption."""
        bars = []
        for line, found in plans:
            share = f" ({found.paid_planned * 100 // found.planned_total}%)" if found.planned_total else ""
            caption = (f"{found.title}: {self.show(found.paid_planned, line.token)} paid of "
                       f"{self.show(found.planned_total, line.token)} planned{share}")
            bars.append((progress_bar(found.paid_planned, found.planned_total, label=found.title,
                                      show=functools.partial(self.show_in, line.token),
                                      bar_id=f"plan-{line.channel_id.hex()[:12]}"), caption))
        return bars
