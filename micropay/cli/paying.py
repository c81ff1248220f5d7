"""For the client, offline: pay a task, print the latest payment again for a freelancer who
missed one, or deliver the payments queued for freelancers' inboxes. None needs a node; each
checks ``--chain-id`` against the stored channel.

The payment text goes to stdout (so it can be piped or saved); the sentences about it to stderr:
what was paid, then (on a channel with an inbox) whether the freelancer holds it.
"""

from __future__ import annotations

from pathlib import Path

import click

from micropay.cli.context import Session, pass_session
from micropay.cli.errors import reword
from micropay.cli.options import CHANNEL, POSITIVE_AMOUNT, channel_argument, json_option, wei_option
from micropay.cli.output import emit, hex_id, progress, quoted, safe
from micropay.cli.signers import kept_signer_path
from micropay.errors import InsufficientDeposit, NotParticipant, TaskRefused
from micropay.ledger import EMPTY_ROOT
from micropay.outbox import DeliveryResult, Outbox, latest_payment
from micropay.payer import Payer
from micropay.planbook import PlanBook
from micropay.records import ChannelRecord


@click.command()
@channel_argument
@click.argument("args", nargs=-1, required=True, metavar="[AMOUNT] TASK")
@click.option("--unplanned", is_flag=True,
              help="under a plan: pay anyway a task it does not list, one already paid, or another price")
@click.option("--note", default="", help="a note stored with the task")
@click.option("--signer", "signer_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="the key file of the channel's hot signer (default: the one `open --signer` kept)")
@click.option("--inbox", metavar="URL", help="deliver this channel's payments to the freelancer's inbox at URL "
              "(`micropay serve`), from this payment on")
@wei_option
@pass_session
def pay(session: Session, channel: ChannelRecord, args: tuple[str, ...], unplanned: bool, note: str,
        signer_file: Path | None, inbox: str | None, wei: bool) -> None:
    """Pay TASK of the channel's plan at the plan's price, or AMOUNT for TASK; prints the payment
    text. Works offline. On a channel with an inbox (from the plan, `open --inbox` or --inbox),
    the payment is delivered to it too, and a failed delivery stays queued: `micropay deliver`
    (or the next pay) retries.

    Under a plan, a task it does not list, one already paid or another price is refused unless
    --unplanned. A channel opened with --signer (or --from-safe) is paid with its hot key, never
    the funding key."""
    session.check_chain(channel)
    if len(args) > 2:
        raise click.UsageError("give TASK (a task of the channel's plan), or AMOUNT TASK")
    task = args[-1]
    if signer_file is not None and channel.key.signer is None:
        raise click.UsageError(f"channel {hex_id(channel.id, 10)} is signed by its payer's own key: drop --signer")
    token = channel.key.token
    amount = POSITIVE_AMOUNT.convert(args[0], None, None) if len(args) == 2 else None
    value = None if amount is None else amount.base_units(session.units(token), wei=wei)  # ETH needs no node
    terms = channel.terms or EMPTY_ROOT
    planned = terms != EMPTY_ROOT and session.store.plan(terms) is not None
    if value is None and not planned:
        raise click.UsageError(f"channel {hex_id(channel.id, 10)} was not opened under a plan: give AMOUNT TASK")
    # Signing needs no node: the chain id and escrow are in the store.
    payer = session.offline_payer(channel, signer_file)
    if inbox is not None:
        payer.set_inbox(channel.ref, inbox)
    try:
        if value is not None and not planned:
            payment = payer.pay(channel.ref, value, task=task, note=note)
        else:
            payment = payer.pay_task(channel.ref, task, unplanned=unplanned, amount=value, note=note)
    except TaskRefused as exc:
        raise reword(exc, _unplanned_hint(session, channel, task, value, str(exc))) from exc
    except InsufficientDeposit as exc:
        value = exc.shortfall + channel.deposit - channel.issued
        total = channel.issued + value
        raise reword(exc, f"paying {session.show(value, token)} would bring channel {hex_id(channel.id, 10)} to "
                          f"{session.show(total, token)}, above its deposit {session.show(channel.deposit, token)}: "
                          f"top up at least {session.show(exc.shortfall, token)} "
                          f"(`micropay top-up {hex_id(channel.id, 10)} '{session.show(exc.shortfall, token)}'`)"
                     ) from exc
    click.echo(payment.encode())
    paid, value = payment.amount, payment.receipts[0].amount
    delivery = _delivery(session, payer, channel, paid)
    progress(f"paid {session.show(value, token)} to freelancer {channel.key.payee} for {quoted(task)}; "
             f"{session.show(paid, token)} paid of {session.show(channel.deposit, token)}, "
             f"{session.show(max(0, channel.deposit - paid), token)} left."
             + ("" if delivery else " Send the line above to the freelancer."))
    if delivery:
        progress(delivery)


def _delivery(session: Session, payer: Payer, channel: ChannelRecord, amount: int) -> str | None:
    """Whether the freelancer holds the payment of ``amount``, in one line; None if it was not
    queued (the channel has no inbox: the payment travels by hand)."""
    record = payer.outbox.record(channel.ref, amount)
    if record is None:
        return None
    if record.state == "held":
        return (f"delivered: the freelancer's inbox holds it (its acknowledgment, signed for {channel.key.payee} "
                "by its key or a key it delegated to, verified)")
    queued = payer.outbox.backlog(channel.ref)
    if not queued:  # delivered meanwhile (another process ran `micropay deliver`)
        return "delivered: the freelancer's inbox holds it"
    backlog = queued[0]
    return (f"not delivered yet: {backlog.count} payment(s) queued for {backlog.inbox} "
            f"({safe(backlog.last_error or 'an earlier payment is still queued')}); `micropay deliver` retries, and so "
            "does your next pay")


@click.command()
@channel_argument
@click.option("--since", default=0, show_default=True, type=click.IntRange(min=0),
              help="the first task receipt to include (what the freelancer's error names)")
@pass_session
def resend(session: Session, channel: ChannelRecord, since: int) -> None:
    """Print the latest payment again, with the tasks from receipt SINCE on. Signs nothing new."""
    session.check_chain(channel)
    if channel.role != "payer" or not _pays_from(session, channel):
        raise NotParticipant(f"channel {hex_id(channel.id, 10)} is not one this account pays from")
    payment = latest_payment(session.store, channel, since)
    click.echo(payment.encode())
    total = session.show(payment.amount, channel.key.token)
    tasks = (f"tasks #{since + 1} to #{since + len(payment.receipts)}" if len(payment.receipts) > 1
             else f"task #{since + 1}" if payment.receipts else "no task")
    progress(f"the latest payment on channel {hex_id(channel.id, 10)} ({total} in all, with {tasks} as "
             "`micropay tasks` numbers them): send the line above to the freelancer")


def _unplanned_hint(session: Session, channel: ChannelRecord, task: str, value: int | None, message: str) -> str:
    """A refusal under a plan, said with the command's flags and in the token's units."""
    token = channel.key.token
    agreed = PlanBook(session.store, channel.key.payer).in_force(channel.terms) if channel.terms else None
    planned = agreed.task(task) if agreed else None
    if planned is not None and value is not None and value != planned.price:
        return (f"task {quoted(task)} is priced {session.show(planned.price, token)} in the plan, not "
                f"{session.show(value, token)}: add --unplanned to pay another price")
    return message.replace("pay it as unplanned, with an amount,", "add --unplanned and an AMOUNT").replace(
        "pay it as unplanned", "add --unplanned")


def _pays_from(session: Session, channel: ChannelRecord) -> bool:
    """Whether this data directory pays on ``channel``: its key file funds it, or it keeps the key
    file of the channel's hot signer (a Safe's channel). Decrypts nothing."""
    if channel.key.signer is not None and kept_signer_path(session.paths, channel.key.signer).exists():
        return True
    return channel.key.payer == session.address  # the key file's address: no password


@click.command()
@click.argument("channel", type=CHANNEL, required=False)
@json_option
@pass_session
def deliver(session: Session, channel: ChannelRecord | None, as_json: bool) -> None:
    """Deliver the payments still queued for freelancers' inboxes (on CHANNEL, or on every
    channel), each channel's in order. Needs no password and no node. The exit code is 1 when a
    payment is still queued."""
    if channel is not None:
        session.check_chain(channel)
    results = Outbox(session.store).deliver(None if channel is None else channel.ref)
    records = {record.ref: record for record in session.store.channels("payer")}
    lines = [_delivered(session, records[ref], [r for r in results if r.channel == ref])
             for ref in dict.fromkeys(r.channel for r in results)]
    emit(as_json, [_result_json(r) for r in results], "\n".join(lines) or "nothing to deliver: no payment is queued")
    queued = [r for r in results if r.outcome != "held"]
    if queued:
        progress(f"error: {len(queued)} payment(s) still queued: run `micropay deliver` again later")
        click.get_current_context().exit(1)


def _delivered(session: Session, record: ChannelRecord, results: list[DeliveryResult]) -> str:
    """What became of one channel's queued payments, in one line."""
    held = [r for r in results if r.outcome == "held"]
    failed = next((r for r in results if r.outcome == "failed"), None)
    said = f"channel {hex_id(record.id, 10)}: "
    if held:
        ack = held[-1].acknowledgment
        covered = "" if ack is None else f"; the freelancer holds {session.show(ack.amount, record.key.token)}"
        said += f"{len(held)} payment(s) delivered{covered} (acknowledgment verified)"
    if failed is not None:
        said += ("; " if held else "") + (f"{len(results) - len(held)} payment(s) still queued for {failed.inbox}: "
                                          f"{safe(failed.error or '')}")
    return said


def _result_json(result: DeliveryResult) -> dict[str, object]:
    ack, ref = result.acknowledgment, result.channel
    return {"channel": hex_id(ref.channel_id), "chain": ref.chain_id, "escrow": ref.escrow,
            "amount": str(result.amount), "outcome": result.outcome, "inbox": result.inbox, "error": result.error,
            "acknowledgment": None if ack is None else ack.to_dict(), "resentFrom": result.resent_from}


COMMANDS: list[click.Command] = [pay, resend, deliver]
