"""Backups: the whole store as a verifiable JSON bundle, and merging one back."""

from __future__ import annotations

import json
from typing import IO

import click

from micropay.cli.context import Session, pass_session
from micropay.errors import MicropayValueError


@click.command("export")
@click.argument("file", type=click.File("w"), default="-")
@pass_session
def export_store(session: Session, file: IO[str]) -> None:
    """Write every channel, voucher and task to a verifiable JSON bundle."""
    json.dump(session.store.export(), file, indent=1)
    file.write("\n")


@click.command("import")
@click.argument("file", type=click.File("r"))
@pass_session
def import_store(session: Session, file: IO[str]) -> None:
    """Merge a bundle written by `export`, after verifying every signature and ledger."""
    try:
        bundle = json.load(file)
    except ValueError:
        raise MicropayValueError(f"{file.name} is not JSON") from None
    click.echo(f"{session.store.import_(bundle)} channel(s) updated")


COMMANDS: list[click.Command] = [export_store, import_store]
