"""For the client: open a channel, pay per task, top up, and get the rest back at the end."""

from __future__ import annotations

from datetime import timedelta

import click

from micropay.cli.context import Session, pass_session
from micropay.cli.options import Amount, amount_argument, channel_argument, json_option, token_option
from micropay.cli.output import emit, hex_id, progress, when
from micropay.records import ChannelRecord


@click.command("open")
@click.argument("payee")
@amount_argument("deposit")
@token_option("ERC-20 address (default ETH)")
@click.option("--days", default=30, show_default=True, help="channel lifetime")
@click.option("--window-hours", default=24, show_default=True, help="challenge window after request-close")
@json_option
@pass_session
def open_channel(session: Session, payee: str, deposit: Amount, token: str, days: int, window_hours: int,
                 as_json: bool) -> None:
    """Lock DEPOSIT, such as '0.05 ETH', in a channel to PAYEE."""
    value = deposit.base_units(session.units(token))
    payer = session.payer()
    progress("opening the channel, waiting for the receipt…")
    record = payer.open_channel(payee, value, token=token, expires_in=timedelta(days=days),
                                window=timedelta(hours=window_hours))
    emit(as_json, {"channel": hex_id(record.id), "deposit": str(record.deposit), "expiry": record.expiry},
         f"channel {hex_id(record.id)}\n{session.show(record.deposit, token)} until {when(record.expiry)}")


@click.command("top-up")
@channel_argument
@amount_argument("amount")
@pass_session
def top_up(session: Session, channel: ChannelRecord, amount: Amount) -> None:
    """Add AMOUNT to a channel's deposit."""
    token = channel.key.token
    payer = session.payer()
    updated = payer.top_up(channel.id, amount.base_units(session.units(token)))
    click.echo(f"deposit now {session.show(updated.deposit, token)}")


@click.command()
@channel_argument
@amount_argument("amount")
@click.argument("task")
@click.option("--note", default="", help="a note stored with the task")
@pass_session
def pay(session: Session, channel: ChannelRecord, amount: Amount, task: str, note: str) -> None:
    """Pay AMOUNT for TASK; prints the payment text to send to the freelancer. Works offline."""
    units = session.units(channel.key.token)  # ETH needs no node
    # Signing needs no node either: the chain id and escrow are in the store.
    payer = session.offline_payer()
    payment = payer.pay(channel.id, amount.base_units(units), task=task, note=note)
    click.echo(payment.encode())


@click.command("request-close")
@channel_argument
@pass_session
def request_close(session: Session, channel: ChannelRecord) -> None:
    """Start closing: the freelancer keeps one challenge window to claim."""
    record = session.payer().request_close(channel.id)
    click.echo(f"the freelancer may claim until {when(record.expiry)}; reclaim after that")


@click.command()
@channel_argument
@pass_session
def reclaim(session: Session, channel: ChannelRecord) -> None:
    """After expiry, take back what was not claimed."""
    refund = session.payer().reclaim(channel.id)
    click.echo(f"reclaimed {session.show(refund, channel.key.token)}")


COMMANDS: list[click.Command] = [open_channel, top_up, pay, request_close, reclaim]
