"""Relayed claims from the command line: a freelancer without ETH signs a request
(``settle --via-relay``), and anyone with ETH submits it for the fee it allows (``relay``).

``settle --via-relay`` reads the chain with the account's address only and asks for the password
only when there is something to sign. ``relay`` reads a request from its argument, a file or
stdin (``-``); ``relay --dry-run`` checks and quotes it without a password.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from micropay.cli.context import Session, pass_session
from micropay.cli.errors import reword
from micropay.cli.options import AMOUNT, Amount, json_option, wei_option
from micropay.cli.output import emit, eth_fee, hex_id, progress, short, when
from micropay.errors import NodeError, NothingToClaim
from micropay.payee import Payee
from micropay.relay import MAX_TEXT, TEXT_PREFIX, Relayer, RelayRequest, authorize_relay

#: Units a ``--deadline`` may be given in, and their seconds.
_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
_DURATION = re.compile(r"^\s*([0-9]{1,9})\s*([smhd]?)\s*$")

if TYPE_CHECKING:  # click >= 8.4 types a ParamType by the value it converts to
    _DurationParam = click.ParamType[int]
else:  # and click < 8.4 takes no type arguments at run time
    _DurationParam = click.ParamType


class DurationType(_DurationParam):
    """A length of time as typed: "90s", "30m", "1h", "2d", or bare seconds; converted to seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        match = _DURATION.match(str(value))
        if not match or int(match[1]) == 0:
            self.fail(f"{value!r:.40} is not a duration: write e.g. 30m, 1h or 2d", param, ctx)
        return int(match[1]) * _UNITS[match[2] or "s"]


DURATION = DurationType()


class _Notes(logging.Handler):
    """Collects what the library logs while a request is built (the vouchers left out)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextmanager
def _left_out() -> Iterator[list[str]]:
    logger, notes = logging.getLogger("micropay.relay"), _Notes()
    logger.addHandler(notes)
    try:
        yield notes.lines
    finally:
        logger.removeHandler(notes)


def authorize_all(session: Session, token: str, max_fee: Amount, deadline: int, *, wei: bool,
                  as_json: bool) -> None:
    """``settle --via-relay``: one signed relay request per escrow with vouchers a relayer can
    redeem, printed on stdout (one per line); a summary of each, and every voucher left out, on stderr."""
    fee = max_fee.base_units(session.units(token), wei=wei)
    found = []
    for escrow in session.freelancer_escrows():  # read with the address only: no password yet
        claimable = Payee(escrow, session.address, session.store).settler.claimable(token)
        if claimable:
            found.append((escrow, claimable))
    requests, data = [], []
    for escrow, claimable in found:
        with _left_out() as notes:
            try:
                request = authorize_relay(escrow, session.account, claimable, max_fee=fee,
                                          deadline=timedelta(seconds=deadline))
            except NothingToClaim:
                request = None
        for note in notes:
            progress(note)
        if request is None:
            continue
        claimed = {key.id: state.claimed for key, _, state in claimable}
        total = sum(v.amount - claimed[v.channel_id] for v in request.channels())
        requests.append(request.encode())
        data.append({"request": requests[-1], "escrow": request.escrow, "chain": request.chain_id,
                     "token": token, "channels": [hex_id(v.channel_id) for v in request.channels()],
                     "total": str(total), "maxFee": str(request.max_fee), "deadline": request.deadline})
        if not as_json:
            progress(f"relay request for {len(request.channels())} channel(s) on escrow {short(request.escrow)}: "
                     f"pays {session.show(total, token)}, of which a relayer keeps at most "
                     f"{session.show(request.max_fee, token)}; valid until {when(request.deadline)}")
    if not requests:
        emit(as_json, [], "nothing to relay: no channel holds a voucher a relayer could redeem in full")
        return
    if not as_json:
        progress("give it to anyone with ETH to submit: `micropay relay REQUEST`")
    emit(as_json, data, "\n".join(requests))


def read_request(source: str) -> RelayRequest:
    """The request in ``source``: its text, ``-`` for stdin, or a file holding it. Reads at most
    as much as a request can be. Raises :class:`InvalidRelayRequest` for anything else."""
    text = source
    if source == "-":
        text = sys.stdin.read(MAX_TEXT + 1)
    elif not source.strip().lower().startswith(TEXT_PREFIX) and _is_file(source):
        with Path(source).open(encoding="utf-8", errors="replace") as file:
            text = file.read(MAX_TEXT + 1)
    return RelayRequest.decode(text)


def _is_file(source: str) -> bool:
    try:
        return Path(source).is_file()
    except (OSError, ValueError):  # a name too long, or with a NUL: text, not a path
        return False


@click.command()
@click.argument("request_text", metavar="REQUEST")
@click.option("--fee", type=AMOUNT, help="the fee to take (default: the most the request allows)")
@click.option("--dry-run", is_flag=True, help="check and quote the request without sending (asks no password)")
@wei_option
@json_option
@pass_session
def relay(session: Session, request_text: str, fee: Amount | None, dry_run: bool, wei: bool, as_json: bool) -> None:
    """Submit a freelancer's relay request (mpr1…; a file; or - for stdin) from this account: the
    freelancer is paid, and this account earns the fee, in one transaction it pays the gas of."""
    request = read_request(request_text)
    if request.chain_id != session.chain:
        raise NodeError(f"the request is for chain {request.chain_id}, but the node at {session.rpc} is on chain "
                        f"{session.chain}: pass the --rpc of a chain-{request.chain_id} node")
    escrow = session.escrow_at(request.escrow)  # the genuine micropay escrow, checked once
    token = request.token
    wanted = None if fee is None else fee.base_units(session.units(token), wei=wei)
    try:
        quote = Relayer(escrow, session.address).quote(request, wanted)
    except NothingToClaim as exc:
        raise reword(exc, "this request was submitted already: its vouchers are claimed, there is nothing left to "
                          "relay (the freelancer may sign a new one for newer payments)") from exc
    channels = len(request.channels())
    if dry_run:
        cost = quote.gas * escrow.gas_price()
        emit(as_json, {"tx": None, "payee": request.payee, "token": token, "channels": channels,
                       "total": str(quote.total), "fee": str(quote.fee), "maxFee": str(quote.max_fee),
                       "gas": quote.gas, "gasCost": str(cost)},
             f"would relay {channels} channel(s) for {request.payee}: {session.show(quote.total, token)} claimed, "
             f"fee {session.show(quote.fee, token)} (at most {session.show(quote.max_fee, token)}); gas {quote.gas:,}, "
             f"costing at most {eth_fee(cost)}")
        return
    progress(f"relaying {channels} channel(s) for {request.payee}, waiting for the receipt…")
    receipt = Relayer(escrow, session.account).submit(request, quote.fee)
    total, earned = escrow.relayed_in(receipt)
    emit(as_json, {"tx": hex_id(receipt.tx_hash), "payee": request.payee, "token": token, "channels": channels,
                   "total": str(total), "fee": str(earned), "gas": receipt.gas_used, "gasCost": str(receipt.fee)},
         f"relayed {channels} channel(s) for {request.payee}: {session.show(total, token)} claimed, "
         f"{session.show(total - earned, token)} to the freelancer; fee earned {session.show(earned, token)}, "
         f"gas cost {eth_fee(receipt.fee)}; transaction {hex_id(receipt.tx_hash)}")


COMMANDS: list[click.Command] = [relay]
