"""For the freelancer: receive payments, settle them in one transaction, close, watch."""

from __future__ import annotations

import sys
import time
from typing import IO

import click

from micropay.channel import ETH
from micropay.cli.context import Session, pass_session
from micropay.cli.options import Amount, channel_argument, json_option, min_net_option, token_option
from micropay.cli.output import emit, hex_id, progress
from micropay.records import ChannelRecord


@click.command()
@click.argument("texts", nargs=-1)
@click.option("--file", "file", type=click.File("r"), help="read payment texts from a file, one per line")
@json_option
@pass_session
def receive(session: Session, texts: tuple[str, ...], file: IO[str] | None, as_json: bool) -> None:
    """Check and store payments (arguments, --file, or one per line on stdin)."""
    lines = list(texts) or [line for line in (file or sys.stdin) if line.strip()]
    payee = session.payee()
    results = []
    for text in lines:
        received = payee.receive(text.strip())
        token = session.store.channel(received.channel_id).key.token
        results.append({"channel": hex_id(received.channel_id), "added": str(received.added),
                        "cumulative": str(received.cumulative), "tasks": [t.task_id for t in received.tasks],
                        "duplicate": received.duplicate})
        if not as_json:
            what = ", ".join(repr(t.task_id) for t in received.tasks)
            click.echo(("(already stored) " if received.duplicate else "")
                       + f"+{session.show(received.added, token)} for {what}; "
                       f"{session.show(received.cumulative, token)} so far")
    if as_json:
        emit(True, results, "")


@click.command()
@click.argument("file", type=click.File("r"))
@min_net_option
@pass_session
def redeem(session: Session, file: IO[str], min_net: Amount) -> None:
    """Receive every payment in FILE (one per line), settle once, and print a statement."""
    payee = session.payee()
    lines = [line.strip() for line in file if line.strip()]
    added: dict[bytes, int] = {}
    for text in lines:
        received = payee.receive(text)
        added[received.channel_id] = added.get(received.channel_id, 0) + received.added
    progress(f"{len(lines)} payment(s) received on {len(added)} channel(s); settling…")
    result = payee.settle(min_net=min_net.base_units(session.units(ETH)))
    for channel_id in result.channels:
        record = session.store.channel(channel_id)
        click.echo(f"channel {hex_id(channel_id, 10)} from {record.key.payer}: "
                   f"{len(session.store.ledger(channel_id))} task(s) settled")
    click.echo(f"received {session.show(result.gross, ETH)} in transaction {hex_id(result.tx_hash)}; "
               f"gas {result.gas_used:,}, fee {session.show(result.fee, ETH)}, net {session.show(result.net, ETH)}")


@click.command()
@min_net_option
@token_option("settle the channels in this token (default ETH)")
@click.option("--dry-run", is_flag=True, help="show gas, fee and net without sending")
@json_option
@pass_session
def settle(session: Session, min_net: Amount, token: str, dry_run: bool, as_json: bool) -> None:
    """Claim every channel worth claiming in ONE transaction."""
    payee = session.payee()  # connects first: progress only once the node answers
    if not dry_run:
        progress("settling, waiting for the receipt…")
    plan = payee.plan_settlement(min_net.base_units(session.units(token)), token=token)
    if dry_run:
        _settled(session, as_json, token, None, len(plan.channels), plan.gross, plan.gas, plan.fee, plan.net)
        return
    result = payee.settle(plan)  # exactly this plan, so the figures are the ones just computed
    _settled(session, as_json, token, hex_id(result.tx_hash), len(result.channels), result.gross, result.gas_used,
             result.fee, result.net)


def _settled(session: Session, as_json: bool, token: str, tx: str | None, channels: int, gross: int, gas: int,
             fee: int, net: int) -> None:
    """What settle claimed (or, without a transaction, would claim)."""
    emit(as_json, {"tx": tx, "channels": channels, "gross": str(gross), "gas": gas, "fee": str(fee), "net": str(net)},
         ("would claim" if tx is None else "claimed") + f" {session.show(gross, token)} from {channels} channel(s); "
         f"gas {gas:,}, fee {session.show(fee, ETH)}, net {session.show(net, token)}"
         + ("" if tx is None else f"\ntransaction {tx}"))


@click.command()
@channel_argument
@pass_session
def close(session: Session, channel: ChannelRecord) -> None:
    """Close a channel now with the best voucher held; the rest goes back to the client."""
    session.payee().close(channel.id)
    click.echo(f"closed {hex_id(channel.id)}")


@click.command()
@click.option("--confirmations", default=2, show_default=True)
@click.option("--interval", default=15.0, show_default=True, help="seconds between polls")
@click.option("--rounds", type=int, help="stop after this many polls (default: run until interrupted)")
@pass_session
def watch(session: Session, confirmations: int, interval: float, rounds: int | None) -> None:
    """Claim automatically when a client starts closing or an expiry nears."""
    payee = session.payee()
    payee.check_gas_funds()
    progress(f"watching escrow {session.escrow.address} for {payee.address} (Ctrl-C to stop)")
    done = 0
    try:
        while rounds is None or done < rounds:
            for settlement in payee.watch_once(confirmations=confirmations):
                click.echo(f"claimed {len(settlement.channels)} channel(s) in {hex_id(settlement.tx_hash)}")
            done += 1
            if rounds is None or done < rounds:
                time.sleep(interval)
    except KeyboardInterrupt:
        progress("stopped")


COMMANDS: list[click.Command] = [receive, redeem, settle, close, watch]
