"""For a first look: the whole story on an embedded chain, no node or key file needed."""

from __future__ import annotations

import click

from micropay.cli.options import json_option
from micropay.cli.output import emit


@click.command()
@json_option
def demo(as_json: bool) -> None:
    """The whole story on an embedded chain: deploy, agree a plan, open, pay five tasks, settle once, close."""
    from micropay.demo import format_statement, run_demo  # the embedded chain loads only here

    statement = run_demo(echo=(lambda _text: None) if as_json else click.echo)
    emit(as_json, statement.to_json(), format_statement(statement))


COMMANDS: list[click.Command] = [demo]
