"""For both sides: agree a plan, amend it, and say how each task went.

The freelancer writes plan.toml and runs ``plan propose``; the client runs ``plan accept`` on what
it gets and sends the countersigned plan back (``plan receive``); ``open --plan`` opens the
channel under it. Plans and feedback travel as ``mpl1…``/``mpf1…`` text or JSON files, like
payments; each command prints the text to send (or writes ``--out FILE``), and the sentence about
it on stderr. Every command that signs shows what it signs first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from datetime import timedelta
from pathlib import Path

import click

from micropay.cli.context import Session, pass_session
from micropay.cli.options import Amount, find_channel, json_option, yes_option
from micropay.cli.output import emit, hex_id, progress, quoted, safe, when
from micropay.cli.plan_delivery import deliver, no_deliver_option, plan_inbox
from micropay.config import load_deployments
from micropay.documents import MAX_TEXT, read_document
from micropay.errors import InvalidPlan, MicropayValueError, PlanMismatch, UnknownChannel
from micropay.escrow import Escrow
from micropay.feedback import SignedFeedback, Status
from micropay.inbox_client import inbox_url
from micropay.ledger import EMPTY_ROOT
from micropay.payer import Payer
from micropay.plan import Plan, Role, SignedPlan, parse_plan
from micropay.plan_source import MAX_SOURCE_BYTES, read_source
from micropay.planbook import PlanBook
from micropay.records import StoredPlan
from micropay.sync import sync


def load_text(value: str) -> str:
    """The document in ``value``: a file's contents if it names a file, else ``value`` itself."""
    path = Path(value)
    try:
        is_file = len(value) < 4096 and path.is_file()
    except OSError:
        is_file = False
    if not is_file:
        if value.lstrip()[:4].lower() in ("mpp1", "mpp2", "mpv1"):
            raise InvalidPlan("this is a payment, not a plan or feedback: receive it with `micropay receive`")
        if not value.lstrip().startswith(("{", "mp")) and (value.endswith((".json", ".txt", ".toml")) or "/" in value):
            raise InvalidPlan(f"no such file: {value}")
        return value
    with path.open("rb") as handle:
        data = handle.read(MAX_TEXT + 1)
    if len(data) > MAX_TEXT:
        raise InvalidPlan(f"{path} is larger than a plan can be ({MAX_TEXT:,} bytes)")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise InvalidPlan(f"{path} is not UTF-8 text") from None


def plan_escrow(session: Session, plan: Plan) -> Escrow:
    """The escrow ``plan`` names, on this node's chain, checked to be the genuine escrow. Raises
    :class:`PlanMismatch` for a plan on another chain, or another escrow than ``--escrow``."""
    if plan.chain_id != session.chain:
        raise PlanMismatch(f"the plan is for chain {plan.chain_id}, but the node at {session.rpc} is on chain "
                           f"{session.chain}")
    if session.escrow_address and session.escrow_address.lower() != plan.escrow.lower():
        raise PlanMismatch(f"the plan is for escrow {plan.escrow}, not --escrow {session.escrow_address}")
    return session.escrow_at(plan.escrow)


def book(session: Session, plan: Plan | None = None) -> PlanBook:
    """This account's plan book, checked against ``plan``'s escrow on the node when given."""
    if plan is None:
        return PlanBook(session.store, session.address)
    escrow = plan_escrow(session, plan)
    return PlanBook(session.store, session.address, domain=(escrow.chain_id, escrow.address),
                    is_signed_by=escrow.is_signed_by)


def describe(session: Session, plan: Plan) -> str:
    """The plan as a person checks it before signing: parties, every task, the total."""
    show = session.show
    lines = [f"plan {quoted(plan.title)} version {plan.version}: {plan.payer} pays {plan.payee}",
             f"  on chain {plan.chain_id}, escrow {plan.escrow}, in {session.symbol(plan.token)}"]
    for task in plan.tasks:
        due = f", due {when(task.due)}" if task.due else ""
        lines.append(f"  - {task.id}: {quoted(task.title)}, {show(task.price, plan.token)}{due}")
        if task.criteria:
            lines.append(f"      accepted when: {task.criteria}")
    lines.append(f"  total {show(plan.total, plan.token)}")
    if plan.inbox:
        lines.append(f"  payments are delivered to {safe(plan.inbox)}")
    return "\n".join(lines)


def write_out(document: SignedPlan | SignedFeedback, out: Path | None) -> None:
    """Write the JSON document to ``out``, or print its text form on stdout."""
    if out is None:
        click.echo(document.encode())
    else:
        out.write_text(document.to_json())


def _read_source(path: Path) -> bytes:
    """A plan file's bytes, never more than one past the limit (a huge file or a device is not read whole)."""
    with path.open("rb") as handle:
        return handle.read(MAX_SOURCE_BYTES + 1)


def _proposal_escrow(session: Session, named: str | None) -> str:
    address = named or session.escrow_address or load_deployments(session.paths.deployments).get(session.chain)
    if address is None:
        raise MicropayValueError("which escrow? pass --escrow ADDRESS (the escrow your clients use), or write "
                                 "escrow = \"0x…\" in the plan file")
    return session.escrow_at(address).address


@click.group("plan")
def plan_group() -> None:
    """Agree tasks and prices with the other side, amend them, and give feedback on each task."""


out_option = click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
                          help="write the signed JSON document to this file instead of printing its text")


@plan_group.command("propose")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--inbox", metavar="URL", help="your inbox (`micropay serve`), where the client's payments are "
              "delivered: instead of the file's inbox")
@out_option
@pass_session
def propose(session: Session, source: Path, inbox: str | None, out: Path | None) -> None:
    """Sign the plan in SOURCE (a plan.toml) as the freelancer: prints the proposal for the client."""
    spec = read_source(_read_source(source))
    if inbox is not None:
        spec = dataclasses.replace(spec, inbox=inbox_url(inbox))
    escrow = _proposal_escrow(session, spec.escrow)
    plan = spec.plan(payee=session.address, chain_id=session.chain, escrow=escrow, units=session.units,
                     now=int(time.time()))
    signed = book(session, plan).propose(plan, session.account)
    write_out(signed, out)
    progress(f"{describe(session, plan)}\nproposed and signed (plan 0x{plan.hash.hex()[:12]}…): send "
             f"{'the file ' + str(out) if out else 'the text above'} to the client, who runs `micropay plan accept`")


@plan_group.command("accept")
@click.argument("document")
@out_option
@yes_option
@no_deliver_option
@pass_session
def accept(session: Session, document: str, out: Path | None, yes: bool, no_deliver: bool) -> None:
    """Countersign a plan the other side proposed (DOCUMENT: its text or file, or its hash if your inbox took it)."""
    waiting = [v for v in _versions_starting(book(session), document) if not v.signed.in_force]
    proposal = waiting[0].signed if len(document) <= 66 and len(waiting) == 1 else parse_plan(load_text(document))
    plans = book(session, proposal.plan)
    proposal.verify(plans.is_signed_by)  # before asking: a plan this account cannot sign is refused unasked
    role = proposal.plan.role_of(session.address)
    if role is None:
        raise PlanMismatch(f"the plan is between {proposal.plan.payer} and {proposal.plan.payee}, not this account "
                           f"({session.address})")
    other = proposal.plan.payee if role == "payer" else proposal.plan.payer
    if not proposal.signature("payee" if role == "payer" else "payer"):
        raise InvalidPlan(f"this is your own proposal: send it to the other side ({other}), who accepts it")
    stored = session.store.plan(proposal.hash)
    if stored is not None and stored.signed.signature(role):
        raise InvalidPlan(f"you have already signed this plan (version {proposal.plan.version}): send it to {other} "
                          "if they do not have it")
    progress(describe(session, proposal.plan))
    if not yes:  # without a terminal: check the plan above, then run again with --yes
        click.confirm("sign this plan? It binds you once both sides have signed (--yes: sign without asking)",
                      abort=True, err=True)
    signed = plans.accept(proposal, session.account)
    write_out(signed, out)
    opens = signed.plan.role_of(session.address) == "payer" and signed.plan.version == 1
    then = f"; then open the channel: `micropay open --plan {out or 'TEXT'}`" if opens else ""
    sent = deliver(session, signed, signed.plan, plan_inbox(session, signed.plan, plans.root_of(signed.hash)),
                   skip=no_deliver, by_hand=f"send {f'the file {out}' if out else 'the text above'} to {other}, who "
                   "runs `micropay plan receive` on it")
    progress(f"accepted: plan 0x{signed.hash.hex()[:12]}… (version {signed.plan.version}) is in force{then}\n{sent}")


@plan_group.command("amend")
@click.argument("channel_or_plan")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@out_option
@no_deliver_option
@pass_session
def amend(session: Session, channel_or_plan: str, source: Path, out: Path | None, no_deliver: bool) -> None:
    """Propose SOURCE (the whole plan, changed) as the next version of the plan in force on
    CHANNEL_OR_PLAN (a channel id or prefix, or a plan hash). The other side accepts it."""
    plans = book(session)
    root = _root(session, plans, channel_or_plan)
    current = plans.in_force(root)
    spec = read_source(_read_source(source))
    if spec.client != current.payer:
        raise PlanMismatch(f"the file names client {spec.client}, but the plan's client is {current.payer}")
    plan = spec.plan(payee=current.payee, chain_id=current.chain_id, escrow=current.escrow, units=session.units,
                     now=int(time.time()), version=current.version + 1, amends=current.hash,
                     proposer=session.address)
    plan = plan if plan.inbox else dataclasses.replace(plan, inbox=current.inbox)  # a file without one keeps it
    signed = book(session, plan).propose(plan, session.account)
    write_out(signed, out)
    sent = deliver(session, signed, plan, plan_inbox(session, plan, root), skip=no_deliver,
                   by_hand=f"send {'the file ' + str(out) if out else 'the text above'} to the other side")
    progress(f"{describe(session, plan)}\nproposed version {plan.version}; it is in force once the other side runs "
             f"`micropay plan accept` on it\n{sent}")


def open_under_plan(session: Session, document: str, *, deposit: Amount | None, cover: int | None, days: int,
                    window_hours: int, wei: bool, as_json: bool, inbox: str | None = None) -> None:
    """``open --plan``: the channel to a plan's freelancer, with the plan's hash as its terms, and
    its payments delivered to ``inbox`` or else to the plan's inbox (if it names one)."""
    signed = parse_plan(load_text(document))
    plans = book(session, signed.plan)
    plans.take(signed)
    agreed = plans.in_force(plans.root_of(signed.hash))
    if agreed.payer != session.address:
        raise PlanMismatch(f"the plan is paid by {agreed.payer}, not by this account ({session.address})")
    if deposit is not None and cover is not None:
        raise click.UsageError("give --deposit or --cover, not both")
    if cover is not None and cover > len(agreed.tasks):
        raise MicropayValueError(f"cover 1 to {len(agreed.tasks)} tasks, not {cover}")
    value = None if deposit is None else deposit.base_units(session.units(agreed.token), wei=wei)
    payer = Payer(plan_escrow(session, agreed), session.account, session.store)
    progress("opening the channel under the plan, waiting for the receipt…")
    record = payer.open_for_plan(signed.hash, deposit=value, cover=cover, expires_in=timedelta(days=days),
                                 window=timedelta(hours=window_hours), inbox=inbox)
    left = agreed.total - record.deposit
    top_up = f"; top up {session.show(left, agreed.token)} later to cover the rest" if left > 0 else ""
    url = session.store.inbox(record.ref)
    delivered = "" if url is None else f"; payments are delivered to {url}"
    emit(as_json, {"channel": hex_id(record.id), "deposit": str(record.deposit), "expiry": record.expiry,
                   "plan": "0x" + signed.hash.hex(), "inbox": url},
         f"channel {hex_id(record.id)}\nlocked {session.show(record.deposit, agreed.token)} for freelancer "
         f"{agreed.payee} under plan {quoted(agreed.title)} until {when(record.expiry)}{top_up}{delivered}")


def _versions_starting(plans: PlanBook, text: str) -> list[StoredPlan]:
    """Every stored plan version whose hash starts with ``text`` (8 hex digits at least)."""
    clean = text.lower().removeprefix("0x")
    if len(clean) < 8:
        return []
    return [v for root in plans.roots() for v in plans.history(root).versions if v.signed.hash.hex().startswith(clean)]


def _root(session: Session, plans: PlanBook, text: str) -> bytes:
    """The project named by a plan hash (or its first 8+ hex digits) or by a channel. A channel
    this store does not know yet (opened by the client, not paid on yet) is looked up on the
    escrows of this account's plans."""
    found = {stored.root for stored in _versions_starting(plans, text)}
    if len(found) == 1:
        return found.pop()
    try:
        channel = find_channel(session, text)
    except UnknownChannel:
        escrows = {plans.history(root).first.escrow for root in plans.roots()}
        for address in escrows:
            sync(session.store, session.escrow_at(address), session.address)
        channel = find_channel(session, text)
    return plans.for_channel(channel).root


@plan_group.command("receive")
@click.argument("documents", nargs=-1, required=True)
@pass_session
def receive(session: Session, documents: tuple[str, ...]) -> None:
    """Store plans, acceptances, amendments and feedback the other side sent (texts or files)."""
    for item in documents:
        click.echo(take_document(session, load_text(item)))


def take_document(session: Session, text: str) -> str:
    """Verify and store one plan or feedback document; returns what it was, for a person."""
    document = read_document(text)
    if document.get("micropay") == "feedback":
        signed = SignedFeedback.from_dict(document)
        history = book(session).history(signed.feedback.plan)
        held = any(s.signed.hash == signed.hash for s in session.store.feedback(history.root))
        book(session, history.first).take_feedback(signed)
        f = signed.feedback
        note = f": {quoted(f.note)}" if f.note else ""
        what = "already held" if held else "stored"
        return f"feedback {what}: task {quoted(f.task_id)} {f.status} ({when(f.at)}){note}"
    plan = SignedPlan.from_dict(document)
    before = session.store.plan(plan.hash)
    plans = book(session, plan.plan)
    stored = plans.take(plan)
    held = before is not None and before.signed == stored
    history = plans.history(plans.root_of(plan.hash))
    current = history.in_force.signed.plan.version if history.in_force else 0
    state = ("in force" if stored.in_force and current == plan.plan.version
             else f"superseded by version {current}" if stored.in_force
             else "proposed, waiting for your `micropay plan accept`")
    return f"plan {quoted(plan.plan.title)} version {plan.plan.version} {'already held' if held else 'stored'}: {state}"


def _feedback(session: Session, channel_or_plan: str, task: str, status: Status, *, deliverable: bytes,
              note: str, out: Path | None, no_deliver: bool = True) -> None:
    plans = book(session)
    root = _root(session, plans, channel_or_plan)
    plans = book(session, plans.history(root).first)
    signed = plans.give(session.account, root, task, status, deliverable=deliverable, note=note)
    write_out(signed, out)
    what, plan = "the file " + str(out) if out else "the text above", plans.in_force(root)
    progress(f"task {quoted(task)} marked {status}: " + deliver(session, signed, plan, plan_inbox(session, plan, root),
             skip=no_deliver, by_hand=f"send {what} to the other side (`micropay plan receive`)"))


@plan_group.command("delivered")
@click.argument("channel_or_plan")
@click.argument("task")
@click.option("--file", "deliverable_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="the delivered file: its SHA-256 is signed with the delivery")
@click.option("--hash", "deliverable_hash", help="the deliverable's 32-byte hash, 0x-hex")
@click.option("--note", default="", help="a note for the client")
@out_option
@pass_session
def delivered(session: Session, channel_or_plan: str, task: str, deliverable_file: Path | None,
              deliverable_hash: str | None, note: str, out: Path | None) -> None:
    """As the freelancer: say TASK is delivered, optionally with the hash of what was delivered.
    CHANNEL_OR_PLAN: the channel's id (or its start), or the plan's hash (or its start)."""
    if deliverable_file is not None and deliverable_hash is not None:
        raise click.UsageError("give --file or --hash, not both")
    digest = EMPTY_ROOT
    if deliverable_file is not None:
        sha = hashlib.sha256()
        with deliverable_file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                sha.update(chunk)
        digest = sha.digest()
    elif deliverable_hash is not None:
        clean = deliverable_hash.lower().removeprefix("0x")
        if len(clean) != 64 or any(c not in "0123456789abcdef" for c in clean):
            raise MicropayValueError("--hash must be 32 bytes of 0x-hex")
        digest = bytes.fromhex(clean)
    _feedback(session, channel_or_plan, task, "delivered", deliverable=digest, note=note, out=out)


@plan_group.command("request-changes")
@click.argument("channel_or_plan")
@click.argument("task")
@click.option("--note", required=True, help="what to change")
@out_option
@no_deliver_option
@pass_session
def request_changes(session: Session, channel_or_plan: str, task: str, note: str, out: Path | None,
                    no_deliver: bool) -> None:
    """As the client: ask for changes to a delivered TASK (of CHANNEL_OR_PLAN: a channel or plan hash)."""
    _feedback(session, channel_or_plan, task, "changes requested", deliverable=EMPTY_ROOT, note=note, out=out,
              no_deliver=no_deliver)


@plan_group.command("approve")
@click.argument("channel_or_plan")
@click.argument("task")
@click.option("--note", default="", help="a note for the freelancer")
@out_option
@no_deliver_option
@pass_session
def approve(session: Session, channel_or_plan: str, task: str, note: str, out: Path | None, no_deliver: bool) -> None:
    """As the client: approve a delivered TASK of CHANNEL_OR_PLAN (then pay it: `micropay pay CHANNEL TASK`)."""
    _feedback(session, channel_or_plan, task, "approved", deliverable=EMPTY_ROOT, note=note, out=out,
              no_deliver=no_deliver)


@plan_group.command("withdraw")
@click.argument("plan_hash")
@pass_session
def withdraw(session: Session, plan_hash: str) -> None:
    """Forget your own proposal PLAN_HASH (or its start) that the other side has not accepted:
    when both sides amended at once, one withdraws and accepts the other's."""
    plans = book(session)
    matches = [v.signed.plan for v in _versions_starting(plans, plan_hash)]
    if len(matches) != 1:
        raise MicropayValueError(f"{plan_hash!r} names {len(matches)} stored plans: give more of its hash")
    plans.withdraw(matches[0].hash)
    click.echo(f"withdrew your version {matches[0].version} of {quoted(matches[0].title)}: you can now accept "
               "the other side's")


@plan_group.command("show")
@click.argument("document")
@json_option
@pass_session
def show(session: Session, document: str, as_json: bool) -> None:
    """Show a plan (its text or file) and who has signed it. Signs nothing."""
    signed = parse_plan(load_text(document))
    signed.verify()
    roles: tuple[Role, ...] = ("payer", "payee")
    signers = [role for role in roles if signed.signature(role)]
    emit(as_json, signed.to_dict() | {"hash": "0x" + signed.hash.hex(), "inForce": signed.in_force},
         f"{describe(session, signed.plan)}\nsigned by: {', '.join(signers)}"
         + ("; in force" if signed.in_force else "; not in force yet") + f"\nhash 0x{signed.hash.hex()}")


COMMANDS: list[click.Command] = [plan_group]
