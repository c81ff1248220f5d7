"""Many freelancers' inboxes in one server: how a marketplace runs ``micropay serve``.

A platform holds one key of its own, and each freelancer it hosts gives it an
:class:`~micropay.delegation.InboxDelegation` ("this key may acknowledge payments for me until
T"). :func:`host_inboxes` makes one :class:`~micropay.inbox.Inbox` per freelancer, each over that
freelancer's own rows of one shared store (:meth:`VoucherStore.for_owner`: one database, one set
of connections), and :class:`HostedInboxes` serves them side by side, each under its payee's
address: a client sets its channel's inbox to ``https://platform.example/0x<payee>``.

Every inbox keeps what a freelancer's own has: its acknowledgments (signed with the platform's
key and carrying the delegation, which clients check), its limits, and its group commit. Run the
same on several processes or machines against one PostgreSQL store: a payment arriving at two
of them is stored once (the channel's row lock) and both answer with the same acknowledgment.
The freelancers settle with their own keys, from their own rows (``micropay settle --store
postgresql://…``), or through a relay.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_account.signers.local import LocalAccount
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount
from starlette.types import Receive, Scope, Send

from micropay.delegation import InboxDelegation
from micropay.errors import MicropayValueError
from micropay.escrow import Escrow
from micropay.inbox import Inbox
from micropay.inbox_limits import InboxLimits
from micropay.notifications import Notifier
from micropay.payee import Payee
from micropay.server_log import ServerLog
from micropay.store import VoucherStore


def inbox_path(payee: str) -> str:
    """Where a hosted payee's inbox is mounted: ``/0x`` and the address in lower case."""
    return "/" + payee.lower()


class HostedInboxes:
    """Several payees' inboxes as one ASGI app (:attr:`app`), each under :func:`inbox_path`, its
    address in any case (as checksummed, or in lower case). A path naming no hosted payee is a 404
    with ``unknown_payee``, answered before any body is read."""

    def __init__(self, inboxes: Sequence[Inbox]) -> None:
        self.inboxes = {inbox.payee.address: inbox for inbox in inboxes}
        if len(self.inboxes) != len(inboxes):
            raise MicropayValueError("two of the inboxes are for the same payee")
        self.router = Starlette(routes=[Mount(inbox_path(address), app=inbox.app)
                                        for address, inbox in self.inboxes.items()],
                                exception_handlers={404: self._unknown})

    @property
    def app(self) -> HostedInboxes:
        """The ASGI app to serve: this object."""
        return self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route by the address in lower case. Only the path routed on changes: ``raw_path`` stays
        as sent, so a signed read's signature still covers the path its client signed."""
        path = scope.get("path", "")
        if scope["type"] == "http" and isinstance(path, str) and path[:3].lower() == "/0x":
            address, slash, rest = path[1:].partition("/")
            scope = {**scope, "path": f"/{address.lower()}{slash}{rest}"}
        await self.router(scope, receive, send)

    @staticmethod
    async def _unknown(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": "unknown_payee", "message": "no inbox is hosted at this path: an inbox's "
                             "address is this server's followed by / and a hosted payee's address"},
                            status_code=404)

    def close(self, timeout: float | None = None) -> None:
        """Close every inbox: each stores every payment already submitted (see :meth:`Inbox.close`)."""
        for inbox in self.inboxes.values():
            inbox.close(timeout)


def host_inboxes(escrow: Escrow, key: LocalAccount, delegations: Sequence[InboxDelegation], store: VoucherStore, *,
                 limits: InboxLimits | None = None, notifier: Notifier | None = None,
                 log: ServerLog | None = None) -> HostedInboxes:
    """An inbox for each payee that delegated to ``key`` on ``escrow``, over its rows of ``store``.
    Raises :class:`MicropayValueError` for a delegation to another key, on another escrow, expired,
    or given twice for one payee (and what :class:`Inbox` raises)."""
    inboxes = []
    for delegation in delegations:
        if (delegation.chain_id, delegation.escrow) != (escrow.chain_id, escrow.address):
            raise MicropayValueError(f"the delegation of {delegation.payee} is for escrow {delegation.escrow} on "
                                     f"chain {delegation.chain_id}, not {escrow.address} on chain {escrow.chain_id}")
        payee = Payee(escrow, delegation.payee, store.for_owner(delegation.payee))
        inboxes.append(Inbox(payee, limits=limits, notifier=notifier, log=log, delegated=(key, delegation)))
    return HostedInboxes(inboxes)
