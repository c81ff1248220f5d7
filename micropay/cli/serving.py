"""``micropay serve``: the freelancer's inbox over HTTP (:mod:`micropay.inbox`) on uvicorn.

It decrypts the key file (acknowledgments are signed with it), prints one line saying where it
listens and where the OpenAPI schema is, and logs JSON lines on standard error (never a key, a
password, a signed request's headers or a body). Run it behind a TLS reverse proxy on the same
host to be reachable: the proxy's ``X-Forwarded-For`` is trusted from 127.0.0.1 only (uvicorn's
``FORWARDED_ALLOW_IPS`` says otherwise), so rate limits apply per real client.

SIGTERM or Ctrl-C: it stops accepting connections, lets requests under way finish, then stores
every payment already submitted before it exits: no acknowledged payment is ever lost (one is
acknowledged only after the commit that covers it).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import secrets
import signal
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from micropay.channel import ETH, checked_address
from micropay.cli.context import Session, pass_session
from micropay.cli.output import safe
from micropay.errors import MicropayValueError
from micropay.inbox_limits import InboxLimits
from micropay.server_log import Level, ServerLog

if TYPE_CHECKING:
    from micropay._utils.asgi import ASGIApp
    from micropay.delegation import InboxDelegation
    from micropay.inbox import Inbox
    from micropay.notifications import Notifier
    from micropay.x402.proxy import UpstreamProxy

_DEFAULTS = InboxLimits()
#: Where `micropay serve` serves the freelancer's dashboard.
DASHBOARD_PATH = "/dashboard"
_LEVELS: tuple[Level, ...] = ("debug", "info", "warning", "error")


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: any free port). Raises :class:`MicropayValueError`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise MicropayValueError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _url(host: str, port: int, path: str) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}{path}"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to listen on (keep 127.0.0.1 behind a reverse proxy)")
@click.option("--port", type=click.IntRange(0, 65535), default=8402, show_default=True, help="port (0: any free one)")
@click.option("--escrow", "escrow_address", help="the escrow this inbox takes payments on (default: the global "
                                                 "--escrow, else the one your payments name)")
@click.option("--on-payment", "command", metavar="CMD", help="run CMD for each payment, plan, delivery, feedback and "
                                                             "close request (the event's JSON on its stdin)")
@click.option("--webhook", metavar="URL", help="POST each such event's JSON to URL")
@click.option("--client-rate", type=float, default=_DEFAULTS.client_rate, show_default=True,
              help="requests per second per client address (0: no limit)")
@click.option("--client-burst", type=int, default=_DEFAULTS.client_burst, show_default=True,
              help="requests at once per client address")
@click.option("--channel-rate", type=float, default=_DEFAULTS.channel_rate, show_default=True,
              help="requests per second per channel (0: no limit)")
@click.option("--channel-burst", type=int, default=_DEFAULTS.channel_burst, show_default=True,
              help="requests at once per channel")
@click.option("--document-rate", type=float, default=_DEFAULTS.document_rate, show_default=True,
              help="plans and feedback per second per client address (0: no limit)")
@click.option("--max-body", type=int, default=_DEFAULTS.max_body, show_default=True,
              help="largest payment request in bytes (0: no limit)")
@click.option("--read-timeout", type=float, default=_DEFAULTS.read_timeout, show_default=True,
              help="seconds a client has to send its request body (0: no limit)")
@click.option("--max-connections", type=int, default=1000, show_default=True,
              help="connections served at once; more get 503 (0: no limit)")
@click.option("--trusted-proxy", metavar="ADDRESS", help="take the client's address from X-Forwarded-For only on "
              "connections from ADDRESS (your TLS proxy, e.g. 127.0.0.1; comma-separated for several). Not behind a "
              "tunnel whose connections all come from 127.0.0.1: anyone could then name any address")
@click.option("--log-level", type=click.Choice(_LEVELS), default="info", show_default=True)
@click.option("--paywall", "upstream", metavar="UPSTREAM", help="also charge per call for the API at UPSTREAM "
              "(e.g. http://127.0.0.1:9000): every request the inbox does not own is forwarded there, the priced "
              "ones once paid with x402 (needs the x402 extra)")
@click.option("--price", "prices", multiple=True, metavar="ROUTE=AMOUNT", help='a priced route of the --paywall API, '
              'e.g. "GET /v1/*=0.001 ETH" (repeat for more; unpriced routes are free)')
@click.option("--price-token", metavar="ADDRESS", default=ETH, help="the token --price amounts are in (default: ETH)")
@click.option("--explorer", metavar="URL", help="a block explorer's transaction page, with {tx} for the hash "
              "(e.g. https://etherscan.io/tx/{tx}), to link settlements on the dashboard")
@click.option("--delegation", "delegation_files", type=click.Path(dir_okay=False, exists=True), metavar="FILE",
              multiple=True, help="run the inbox of the freelancer who delegated to this account's key (`micropay "
              "delegate`): acknowledgments are signed with this key; the freelancer's own key stays with them. "
              "Repeat it to host several freelancers, each at /0x<address> (a postgresql:// --store holds them all)")
@pass_session
def serve(session: Session, host: str, port: int, escrow_address: str | None, command: str | None,
          webhook: str | None, client_rate: float, client_burst: int, channel_rate: float, channel_burst: int,
          document_rate: float, max_body: int, read_timeout: float, max_connections: int, trusted_proxy: str | None,
          log_level: Level, upstream: str | None, prices: tuple[str, ...], price_token: str,
          explorer: str | None, delegation_files: tuple[str, ...]) -> None:
    """Run the freelancer's inbox: clients' payments, plans and feedback arrive over HTTP and are
    acknowledged with your signature once stored; with --paywall, also a paying reverse proxy in
    front of your API (x402, the micropay-channel scheme). Needs the key file's password."""
    try:
        import uvicorn

        from micropay.dashboard import Dashboard
        from micropay.dashboard_actions import TokenGate
        from micropay.hosting import host_inboxes, inbox_path
        from micropay.inbox import API_PREFIX, OPENAPI_PATH, Inbox
    except ImportError:
        raise MicropayValueError('`micropay serve` needs the server extra: pip install "micropay[server]"') from None
    from micropay.close_watch import CloseRequestWatch
    from micropay.payee import Payee

    limits = InboxLimits(max_body=max_body, read_timeout=read_timeout, client_rate=client_rate,
                         client_burst=client_burst, channel_rate=channel_rate, channel_burst=channel_burst,
                         document_rate=document_rate)
    delegations = [read_delegation(Path(file)) for file in delegation_files]
    if escrow_address or delegations:
        session.escrow_address = delegations[0].escrow if delegations else escrow_address
    escrows = session.freelancer_escrows()
    if len(escrows) > 1:
        raise MicropayValueError(f"your payments arrived on {len(escrows)} escrows: pass --escrow ADDRESS for the one "
                                 "this inbox takes payments on")
    notifier = _notifier(command, webhook)
    log = ServerLog(level=log_level)
    _route_library_logs(log, log_level)
    hosted = None
    if len(delegations) > 1:  # a platform: each freelancer's inbox at /0x<address>, over its rows of the store
        if upstream:
            raise MicropayValueError("--paywall charges for one freelancer's API: not with several --delegation")
        hosted = host_inboxes(escrows[0], session.account, delegations, session.store, limits=limits,
                              notifier=notifier, log=log)
        inboxes = list(hosted.inboxes.values())
    else:  # Delegated: the payee is the freelancer's address; this account's key only acknowledges.
        delegation = delegations[0] if delegations else None
        payee = Payee(escrows[0], session.account, session.store) if delegation is None else \
            Payee(escrows[0], delegation.payee, session.store.for_owner(delegation.payee))
        inboxes = [Inbox(payee, limits=limits, notifier=notifier, log=log,
                         delegated=None if delegation is None else (session.account, delegation))]
    # Each freelancer's dashboard beside its inbox: behind a login token (printed once, below); its
    # "settle now" (own key only) acts only for a request from loopback, with the page's CSRF token.
    logins = {inbox.payee.address: secrets.token_urlsafe(24) for inbox in inboxes}  # one per freelancer
    for inbox in inboxes:
        own = inbox.payee if inbox.delegation is None else None
        pages = Dashboard(inbox.payee.store, inbox.payee.address, [inbox.payee.escrow], payee=own,
                          explorers={inbox.payee.escrow.chain_id: explorer} if explorer else None)
        inbox.app.mount(DASHBOARD_PATH, TokenGate(pages.app, logins[inbox.payee.address]))
    app, proxy = (hosted.app, None) if hosted is not None else _paywalled(inboxes[0], upstream, prices, price_token,
                                                                           log)
    sock = _listen(host, port)
    actual = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", server_header=False,
                            timeout_graceful_shutdown=30, limit_concurrency=max_connections or None,
                            proxy_headers=trusted_proxy is not None, forwarded_allow_ips=trusted_proxy or "")
    server = uvicorn.Server(config)
    # Everything loaded so far (web3, FastAPI, pydantic: several hundred thousand objects) lives as
    # long as the process: out of the collector's sight, its full collections take microseconds
    # instead of pausing every request under way for ~100 ms about once a second under load.
    gc.collect()
    gc.freeze()
    watches = [CloseRequestWatch(i.payee.escrow, i.payee.store, i.payee.address, notifier)
               for i in inboxes] if notifier else []
    stopped: list[int] = []

    def record(signum: int, _frame: FrameType | None) -> None:
        # Before uvicorn takes the signals: stop as soon as it starts. After (uvicorn raises them
        # again once stopped): the payments submitted must still be stored, so no exit here.
        stopped.append(signum)
        server.should_exit = True

    previous = {sig: signal.signal(sig, record) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if notifier is not None:
            notifier.start()
            for watch in watches:
                watch.start()
        for inbox in inboxes:
            payee, root = inbox.payee, inbox_path(inbox.payee.address) if hosted is not None else ""
            click.echo(f"inbox of {payee.address} on escrow {payee.escrow.address} (chain {payee.escrow.chain_id}) "
                       f"listening on {_url(host, actual, root + API_PREFIX)}/; OpenAPI schema: "
                       f"{_url(host, actual, root + OPENAPI_PATH)}")
            click.echo(f"dashboard (keep this address to yourself: it logs in): "
                       f"{_url(host, actual, root + DASHBOARD_PATH)}/?token={logins[payee.address]}")
            log.event("listening", host=host, port=actual, payee=payee.address, escrow=payee.escrow.address,
                      chain=payee.escrow.chain_id, path=root or "/")
        if upstream:
            click.echo(f"paywall in front of {safe(upstream)}: " + "; ".join(prices))
        server.run(sockets=[sock])
    finally:
        for inbox in inboxes:
            inbox.close()  # after the requests under way: every payment submitted is stored
        if proxy is not None:
            asyncio.run(proxy.aclose())
        for watch in watches:
            watch.close()
        if notifier is not None:
            notifier.close()
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.event("stopped", signal=stopped[0] if stopped else None)


def _notifier(command: str | None, webhook: str | None) -> Notifier | None:
    from micropay.notifications import Notifier

    return Notifier(command=command, webhook=webhook) if command or webhook else None


def read_delegation(path: Path) -> InboxDelegation:
    """The delegation in ``path`` (bounded before it is parsed). Raises :class:`MicropayValueError`."""
    from micropay._utils import bounded
    from micropay.delegation import InboxDelegation

    try:
        with path.open("rb") as file:
            data = bounded.loads(file.read(8193), what=f"delegation {path}", max_bytes=8192, error=MicropayValueError)
        return InboxDelegation.from_dict(data)
    except OSError as exc:
        raise MicropayValueError(f"cannot read the delegation {path}: {exc}") from None


@click.command()
@click.argument("key")
@click.option("--days", type=click.IntRange(1, 3650), default=30, show_default=True,
              help="how long the key may acknowledge for you")
@click.option("--escrow", "escrow_address", help="the escrow it is for (default: the one your payments name)")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), help="write it to this file (default: print)")
@pass_session
def delegate(session: Session, key: str, days: int, escrow_address: str | None, out: str | None) -> None:
    """Let KEY (an address: a platform's inbox key) acknowledge payments for you on one escrow for
    --days, so the platform can run your inbox (`micropay serve --delegation FILE`) without your
    key. It can only say a payment is held: settling stays yours. Needs your key file's password."""
    from micropay.delegation import delegate_inbox

    if escrow_address:
        session.escrow_address = escrow_address
    escrows = session.freelancer_escrows()
    if len(escrows) > 1:
        raise MicropayValueError(f"your payments arrived on {len(escrows)} escrows: pass --escrow ADDRESS")
    escrow = escrows[0]
    signed = delegate_inbox(session.account, checked_address(key, "KEY"), chain_id=escrow.chain_id,
                            escrow=escrow.address, until=int(time.time()) + days * 86_400)
    text = json.dumps(signed.to_dict(), indent=2)
    if out:
        Path(out).write_text(text + "\n", encoding="utf-8")
        until = datetime.fromtimestamp(signed.until, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        click.echo(f"delegation to {signed.key} until {until} written to {safe(out)}")
    else:
        click.echo(text)


def _paywalled(inbox: Inbox, upstream: str | None, prices: tuple[str, ...], token: str, log: ServerLog
               ) -> tuple[ASGIApp, UpstreamProxy | None]:
    """The app ``serve`` runs: the inbox, and with ``upstream`` a paying proxy to it beside."""
    if not upstream:
        if prices:
            raise MicropayValueError("--price prices the routes of a --paywall API: give --paywall UPSTREAM too")
        return inbox.app, None
    if not prices:
        raise MicropayValueError('--paywall needs at least one --price, e.g. --price "GET /v1/*=0.001 ETH"')
    try:
        from micropay.x402.paywall import Paywall
        from micropay.x402.proxy import AccessLogged, BesideInbox, UpstreamProxy, parse_prices
    except ImportError:
        raise MicropayValueError('--paywall needs the x402 extra: pip install "micropay[server,x402]"') from None
    proxy = UpstreamProxy(upstream)
    wall = Paywall(inbox.payee, parse_prices(prices), token=checked_address(token, "--price-token"),
                   group=inbox.group)
    return BesideInbox(inbox.app, AccessLogged(wall.wrap(proxy), log)), proxy


def _route_library_logs(log: ServerLog, level: Level) -> None:
    """uvicorn's and micropay's own loggers write to ``log`` (JSON lines), nothing else."""
    for name in ("uvicorn", "micropay"):
        logger = logging.getLogger(name)
        logger.handlers = [log.handler()]
        logger.setLevel(level.upper())
        logger.propagate = False


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8403, show_default=True, help="port (0: any free one)")
@click.option("--refresh", type=click.FloatRange(min=0), default=3.0, show_default=True,
              help="seconds between the pages' refreshes (0: none)")
@click.option("--explorer", metavar="URL", help="a block explorer's transaction page, with {tx} for the hash "
              "(e.g. https://etherscan.io/tx/{tx}), to link settlements")
@click.option("--actions", is_flag=True, help="offer \"settle now\" and reviews of delivered tasks, and read "
              "what each freelancer delivered from its inbox (asks for the key file's password; each page shows "
              "what it will send first, and acts only on loopback, with the session's CSRF token)")
@pass_session
def dashboard(session: Session, port: int, refresh: float, explorer: str | None, actions: bool) -> None:
    """Serve this account's dashboard on 127.0.0.1 only: earnings, unclaimed value and expiries,
    plans' progress (a freelancer's); spending, deliveries and acknowledgments (a client's). Reads
    the store and the chain; needs no password unless --actions."""
    try:
        import uvicorn
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        from micropay.dashboard import Dashboard
    except ImportError:
        raise MicropayValueError('`micropay dashboard` needs the server extra: pip install "micropay[server]"'
                                 ) from None
    store = session.read_store
    escrows = list({r.escrow: session.escrow_for(r) for r in store.channels() if r.chain_id == session.chain}.values())
    payee = payer = None
    if actions:
        from micropay.payee import Payee
        from micropay.payer import Payer

        if not escrows:
            raise MicropayValueError("no channel on this chain yet: nothing to act on")
        roles = {r.role for r in store.channels()}
        payee = Payee(escrows[0], session.account, store) if "payee" in roles else None
        payer = Payer(escrows[0], session.account, store) if "payer" in roles else None
    pages = Dashboard(store, session.address, escrows, refresh=refresh, payee=payee, payer=payer,
                      explorers={session.chain: explorer} if explorer else None)
    # Loopback host names only: a page of another site whose name resolves to 127.0.0.1 reads nothing.
    pages.app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "[::1]", "::1"])
    sock = _listen("127.0.0.1", port)
    click.echo(f"dashboard of {session.address}: {_url('127.0.0.1', sock.getsockname()[1], '/')} (Ctrl-C stops it)")
    try:
        uvicorn.Server(uvicorn.Config(pages.app, log_level="warning", lifespan="off", server_header=False)).run(
            sockets=[sock])
    finally:
        pages.close()


COMMANDS: list[click.Command] = [serve, dashboard, delegate]
