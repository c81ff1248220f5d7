"""For the freelancer: receive payment lines (arguments, a file or stdin), and redeem a file.

Every line is judged and reported on its own, with its line number: new, already held, older
than held, or rejected with the reason. The exit code is 1 only when a line was rejected for
another reason than being one already held or an older one.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import IO

import click

from micropay.channel import ETH
from micropay.cli.context import Session, pass_session
from micropay.cli.options import Amount, json_option, min_net_option, wei_option
from micropay.cli.output import emit, progress
from micropay.cli.payment_lines import PaymentLines
from micropay.cli.settling import settle_all


def numbered(texts: tuple[str, ...], file: IO[str] | None) -> tuple[list[tuple[int, str]], str]:
    """The non-blank payment lines with their numbers, and what to call a number ("line"/"payment")."""
    if texts:
        return list(enumerate(texts, start=1)), "payment"
    source: Iterable[str] = file if file is not None else sys.stdin
    return [(n, line) for n, line in enumerate(source, start=1) if line.strip()], "line"


def take_all(session: Session, lines: list[tuple[int, str]], label: str, as_json: bool) -> PaymentLines:
    """Receive every line, printing one sentence each as it is judged (or JSON at the end)."""
    lines_in = PaymentLines(session)
    prefix = len(lines) > 1 or label == "line"
    for number, text in lines:
        line = lines_in.take(number, text)
        if not as_json:
            click.echo(f"{label} {number}: {line.text}" if prefix else line.text)
    if as_json:
        emit(True, [line.to_json() for line in lines_in.lines], "")
    if len(lines) > 1 and not lines_in.rejected:
        progress(lines_in.summary())
    return lines_in


def fail_if_rejected(lines_in: PaymentLines) -> None:
    """Exit code 1, with the summary as the last line, when a line was rejected."""
    if lines_in.rejected:
        progress(lines_in.summary())
        click.get_current_context().exit(1)


@click.command()
@click.argument("texts", nargs=-1)
@click.option("--file", "file", type=click.File("r"), help="read payment lines from a file, one per line")
@json_option
@pass_session
def receive(session: Session, texts: tuple[str, ...], file: IO[str] | None, as_json: bool) -> None:
    """Check and store payments (arguments, --file, or one per line on stdin). Each payment names
    its escrow; no password is needed."""
    lines, label = numbered(texts, file)
    if not lines:
        raise click.UsageError("no payment given: pass it as an argument, with --file, or on stdin")
    fail_if_rejected(take_all(session, lines, label, as_json))


@click.command()
@click.argument("file", type=click.File("r"))
@min_net_option
@wei_option
@pass_session
def redeem(session: Session, file: IO[str], min_net: Amount, wei: bool) -> None:
    """Receive every payment in FILE (one per line), then settle once."""
    lines, label = numbered((), file)
    lines_in = take_all(session, lines, label, as_json=False)
    settle_all(session, min_net.base_units(session.units(ETH), wei=wei), ETH)
    fail_if_rejected(lines_in)


COMMANDS: list[click.Command] = [receive, redeem]
