"""Plan documents the client signs, delivered to the freelancer's inbox (``micropay serve``).

When the client accepts, amends or reviews under a plan that names an inbox (or whose channel
has one), the signed document is posted there after it is stored, so the freelancer holds it
without a manual step. Delivery is a courtesy: when it fails, the command still succeeds and
says how to send the document by hand. The freelancer's own documents are never posted: the
client has no inbox.
"""

from __future__ import annotations

import click

from micropay.cli.context import Session
from micropay.cli.output import safe
from micropay.errors import MicropayError
from micropay.feedback import SignedFeedback
from micropay.inbox_client import send_document
from micropay.plan import Plan, SignedPlan
from micropay.planbook import PlanBook

no_deliver_option = click.option("--no-deliver", is_flag=True,
                                 help="do not post the signed document to the freelancer's inbox")


def plan_inbox(session: Session, plan: Plan, root: bytes | None) -> str | None:
    """The freelancer's inbox for the project ``root`` (``plan``'s): ``plan``'s own, else the
    latest stored version's that names one, else that of a channel opened under the plan."""
    if plan.inbox:
        return plan.inbox
    if root is None:
        return None
    store = session.store
    for stored in reversed(store.plans(root)):
        if stored.signed.plan.inbox:
            return stored.signed.plan.inbox
    for record in store.channels(terms=root):
        url = store.inbox(record.ref)
        if url:
            return url
    return None


def project_root(plans: PlanBook, signed: SignedPlan) -> bytes | None:
    """The project root of a stored plan version (None if it is not stored)."""
    try:
        return plans.root_of(signed.hash)
    except MicropayError:
        return None


def deliver(session: Session, document: SignedPlan | SignedFeedback, plan: Plan, url: str | None, *,
            skip: bool, by_hand: str) -> str:
    """Post ``document`` (signed and stored by this account) to the freelancer's inbox at ``url``
    if this account is ``plan``'s client, there is an inbox and ``skip`` is not set. Returns the
    line to print: ``by_hand`` (what to send to whom, as without an inbox) if nothing was tried,
    else whether it was delivered. Never raises for the network or the inbox (the reason is on
    the line)."""
    if skip or url is None or plan.role_of(session.address) != "payer":
        return by_hand
    reason = send_document(url, document.encode())
    if reason is not None:
        return f"not delivered ({reason}): send it yourself: {by_hand}"
    return f"delivered to the freelancer's inbox at {safe(url)}"
