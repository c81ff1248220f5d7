"""Setting up: encrypted key files, and deploying the escrow once per chain."""

from __future__ import annotations

import click

from micropay import keystore
from micropay.cli.context import Session, pass_session, password
from micropay.cli.options import json_option
from micropay.cli.output import emit, progress
from micropay.config import record_deployment
from micropay.escrow import Escrow


@click.group()
def account() -> None:
    """Encrypted key files."""


@account.command("new")
@pass_session
def account_new(session: Session) -> None:
    """Create a key and store it encrypted."""
    created, path = keystore.new_account(session.paths.keystores, password(confirm=True))
    click.echo(f"{created.address}  {path}")


@account.command("import")
@pass_session
def account_import(session: Session) -> None:
    """Encrypt an existing private key (read from a hidden prompt, never an argument)."""
    key = str(click.prompt("private key", hide_input=True, err=True))
    imported, path = keystore.import_key(key, session.paths.keystores, password(confirm=True))
    click.echo(f"{imported.address}  {path}")


@account.command("list")
@json_option
@pass_session
def account_list(session: Session, as_json: bool) -> None:
    """Key files in the data directory."""
    found = keystore.list_accounts(session.paths.keystores)
    emit(as_json, [{"address": a, "path": str(p)} for a, p in found],
         "\n".join(f"{a}  {p}" for a, p in found) or "no key files (create one with `micropay account new`)")


@click.command()
@pass_session
def deploy(session: Session) -> None:
    """Deploy the escrow and record it as this chain's default."""
    w3, deployer = session.w3, session.account
    progress("deploying the escrow, waiting for the receipt…")
    escrow = Escrow.deploy(w3, deployer, options=session.options)
    record_deployment(session.paths.deployments, escrow.chain_id, escrow.address)
    click.echo(escrow.address)


COMMANDS: list[click.Command] = [account, deploy]
