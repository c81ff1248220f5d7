"""For the client: open a channel, top it up or extend it, and get the rest back at the end."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import click

from micropay.channel import ETH, closing
from micropay.cli.context import Session, pass_session
from micropay.cli.errors import reword
from micropay.cli.options import (
    POSITIVE_AMOUNT,
    Amount,
    amount_argument,
    channel_argument,
    json_option,
    parse_address,
    token_option,
    wei_option,
    yes_option,
)
from micropay.cli.output import emit, hex_id, progress, when
from micropay.cli.plans import open_under_plan
from micropay.cli.signers import keep_signer, load_signer
from micropay.errors import ChannelNotExpired, InsufficientFunds, MicropayValueError
from micropay.inbox_client import inbox_url
from micropay.records import ChannelRecord


@click.command("open")
@click.argument("payee", required=False)
@click.argument("deposit", type=POSITIVE_AMOUNT, required=False)
@token_option("ERC-20 address (default ETH)")
@click.option("--days", default=30, show_default=True, type=click.IntRange(min=1), help="channel lifetime")
@click.option("--window-hours", default=24, show_default=True, type=click.IntRange(1, 720),
              help="challenge window after request-close (freelancers refuse less than 24 by default)")
@click.option("--signer", "signer_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="encrypted key file of a hot key that signs this channel's payments (your key only funds it)")
@click.option("--from-safe", "safe", metavar="SAFE_ADDRESS",
              help="fund from this Safe: writes a Transaction Builder batch for its owners (needs --signer)")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="with --from-safe: the batch file to write (default open-<payee>-<salt>.json)")
@click.option("--plan", "plan_document", metavar="PLAN",
              help="open under this agreed plan (its file or text): the freelancer, token and deposit come from it")
@click.option("--deposit", "plan_deposit", type=POSITIVE_AMOUNT, help="with --plan: lock this instead of the total")
@click.option("--cover", type=click.IntRange(min=1), help="with --plan: lock the price of the first N tasks")
@click.option("--inbox", metavar="URL", help="deliver the channel's payments to the freelancer's inbox at URL "
              "(`micropay serve`); with --plan, instead of the plan's")
@wei_option
@yes_option
@json_option
@pass_session
def open_channel(session: Session, payee: str | None, deposit: Amount | None, token: str, days: int,
                 window_hours: int, signer_file: Path | None, safe: str | None, out: Path | None,
                 plan_document: str | None, plan_deposit: Amount | None, cover: int | None, inbox: str | None,
                 wei: bool, yes: bool, as_json: bool) -> None:
    """Lock DEPOSIT, such as '0.05 ETH', in a channel to PAYEE; or, with --plan PLAN, lock the
    plan's total (or --deposit, or --cover N tasks) in a channel to the plan's freelancer.

    With --signer KEYFILE, the key in KEYFILE (a hot key) signs the payments while your key funds
    the channel. With --from-safe SAFE_ADDRESS, a Safe funds it: nothing is sent, a batch file for
    the Safe app's Transaction Builder is written instead, and --signer is required (a Safe cannot
    sign each payment).

    With --inbox URL (or a plan that names one), each payment is also delivered to the
    freelancer's inbox, which acknowledges it."""
    url = None if inbox is None else inbox_url(inbox)  # checked before anything is sent
    if plan_document is not None:
        if payee is not None or deposit is not None or safe is not None or signer_file is not None:
            raise click.UsageError("with --plan, the freelancer and deposit come from the plan: drop PAYEE and "
                                   "DEPOSIT (use --deposit or --cover), --signer and --from-safe")
        open_under_plan(session, plan_document, deposit=plan_deposit, cover=cover, days=days,
                        window_hours=window_hours, wei=wei, as_json=as_json, inbox=url)
        return
    if payee is None or deposit is None:
        raise click.UsageError("give PAYEE and DEPOSIT, or --plan PLAN")
    if plan_deposit is not None or cover is not None:
        raise click.UsageError("--deposit and --cover go with --plan")
    if safe is not None and signer_file is None:
        raise click.UsageError("--from-safe needs --signer KEYFILE: a Safe cannot sign each payment, so name the "
                               "hot key that will")
    if out is not None and safe is None:
        raise click.UsageError("--out names the batch file that --from-safe writes")
    to = parse_address(payee, "payee")
    token = parse_address(token, "token").value
    try:
        value = deposit.base_units(session.units(token), wei=wei)
    except MicropayValueError as exc:
        if token != ETH or "but this channel pays in ETH" not in str(exc):
            raise
        raise reword(exc, f"{exc}: to open a token channel, pass --token ADDRESS") from exc
    shown = session.show(value, token)
    if not to.checksummed and not yes:
        click.confirm(f"{payee} carries no checksum (it is all one case), so a mistyped character would lock "
                      f"{shown} to an address nobody controls. Lock it to {to.value}?", abort=True, err=True)
    if safe is not None and url is not None:
        raise click.UsageError("--from-safe records a channel its owners open later: give --inbox to the first "
                               "`micropay pay` on it instead")
    if safe is not None and signer_file is not None:
        from micropay.cli.safe_open import open_from_safe

        safe_address = parse_address(safe, "Safe address").value
        open_from_safe(session, safe=safe_address, payee=to.value, deposit=value, token=token, seconds=days * 86_400,
                       window=window_hours * 3_600, signer_file=signer_file, out=out, as_json=as_json)
        return
    hot = None if signer_file is None else load_signer(signer_file)
    if hot is not None and hot.address in (session.address, to.value):
        whose = "the freelancer" if hot.address == to.value else "this account"
        raise MicropayValueError(f"the --signer key is {whose} ({hot.address}): name a hot key of your own, or "
                                 "leave --signer out")
    payer = session.payer(signer=hot)
    if token == ETH and (balance := payer.escrow.balance(session.address)) <= value:
        raise InsufficientFunds(f"{session.address} holds {session.show(balance, ETH)}, not more than the deposit "
                                f"{shown}: it needs the deposit plus gas")
    if signer_file is not None:
        keep_signer(session.paths, signer_file)  # before the channel exists: `pay` must find its key
    progress("opening the channel, waiting for the receipt…")
    with token_shortage(session, token, value):
        record = payer.open_channel(to.value, value, token=token, expires_in=timedelta(days=days),
                                    window=timedelta(hours=window_hours))
    payer.set_inbox(record.ref, url)
    signed_by = "" if hot is None else f"; payments are signed by {hot.address}"
    delivered = "" if url is None else f"; payments are delivered to {url}"
    emit(as_json, {"channel": hex_id(record.id), "deposit": str(record.deposit), "expiry": record.expiry,
                   "signer": record.key.voucher_signer, "inbox": url},
         f"channel {hex_id(record.id)}\nlocked {shown} for freelancer {to.value} until {when(record.expiry)}"
         + signed_by + delivered)


@click.command("top-up")
@channel_argument
@amount_argument("amount")
@wei_option
@pass_session
def top_up(session: Session, channel: ChannelRecord, amount: Amount, wei: bool) -> None:
    """Add AMOUNT to a channel's deposit."""
    token = channel.key.token
    value = amount.base_units(session.units(token), wei=wei)
    payer = session.payer(channel)
    with token_shortage(session, token, value):
        updated = payer.top_up(channel.ref, value)
    click.echo(f"added {session.show(value, token)}: the deposit is now {session.show(updated.deposit, token)}")


@contextmanager
def token_shortage(session: Session, token: str, value: int) -> Iterator[None]:
    """A token's "insufficient balance" revert, said in the token's units."""
    try:
        yield
    except InsufficientFunds as exc:
        if exc.revert is None or exc.revert.name != "ERC20InsufficientBalance":
            raise
        held = exc.revert.args_by_name.get("balance")
        holds = f" holds {session.show(held, token)}," if isinstance(held, int) else ""
        raise reword(exc, f"{session.address}{holds} less than {session.show(value, token)}: get more "
                          f"{session.symbol(token)} first") from exc


@click.command()
@channel_argument
@click.option("--days", required=True, type=click.IntRange(min=1), help="the new expiry, in days from now")
@pass_session
def extend(session: Session, channel: ChannelRecord, days: int) -> None:
    """Move a channel's expiry later, so the freelancer keeps accepting payments on it."""
    escrow = session.escrow_for(channel)
    state = escrow.channel(channel.key)
    new_expiry = escrow.now() + days * 86_400
    if new_expiry <= state.expiry:
        raise MicropayValueError(f"channel {hex_id(channel.id, 10)} already runs until {when(state.expiry)}: "
                                 "give more --days")
    record = session.payer(channel).extend(channel.ref, timedelta(days=days))
    click.echo(f"channel {hex_id(channel.id, 10)} now runs until {when(record.expiry)}")


@click.command("request-close")
@channel_argument
@pass_session
def request_close(session: Session, channel: ChannelRecord) -> None:
    """Start closing: the freelancer keeps one challenge window to claim."""
    _, state = session.live_state(channel, f"`micropay reclaim {hex_id(channel.id, 10)}` takes back what was "
                                           "not claimed")
    if closing(state, state.observed_at):
        click.echo(f"channel {hex_id(channel.id)} is already closing: the freelancer may claim until "
                   f"{when(state.expiry)}; reclaim after that (nothing sent)")
        return
    record = session.payer(channel).request_close(channel.ref)
    click.echo(f"closing started: the freelancer may claim until {when(record.expiry)}; reclaim after that")


@click.command()
@channel_argument
@pass_session
def reclaim(session: Session, channel: ChannelRecord) -> None:
    """After expiry, take back what was not claimed."""
    state = session.escrow_for(channel).channel(channel.key)
    if not state.closed and state.observed_at + 1 <= state.expiry:
        raise ChannelNotExpired(f"the freelancer may claim until {when(state.expiry)}; reclaim after that")
    try:
        refund = session.payer(channel).reclaim(channel.ref)
    except ChannelNotExpired as exc:  # a block came between the read and the transaction
        raise reword(exc, f"the freelancer may claim until {when(state.expiry)}; reclaim after that") from exc
    click.echo(f"reclaimed {session.show(refund, channel.key.token)} from channel {hex_id(channel.id)}")


COMMANDS: list[click.Command] = [open_channel, top_up, extend, request_close, reclaim]
