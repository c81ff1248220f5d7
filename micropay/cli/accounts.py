"""Setting up: encrypted key files, and deploying the escrow once per chain."""

from __future__ import annotations

import click

from micropay import keystore
from micropay.cli.context import Session, pass_session
from micropay.cli.options import json_option
from micropay.cli.output import emit, progress
from micropay.cli.secrets import password, private_key
from micropay.config import load_deployments, record_deployment
from micropay.errors import InsufficientFunds, MicropayValueError, UnknownEscrow
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
    """Encrypt an existing private key (read from a hidden prompt or a pipe, never an argument)."""
    key = private_key()
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
@click.option("--new", "another", is_flag=True,
              help="deploy another escrow although this chain already has one recorded")
@pass_session
def deploy(session: Session, another: bool) -> None:
    """Deploy the escrow and record it as this chain's default."""
    deployer = session.account  # a wrong password or key file is said first
    recorded = load_deployments(session.paths.deployments).get(session.chain)
    if recorded is not None and not another:
        try:
            Escrow.at(session.w3, recorded)
        except UnknownEscrow:
            pass  # recorded, but not there (a reset dev chain): deploy again
        else:
            raise MicropayValueError(f"chain {session.chain} already has the escrow {recorded}, recorded by an earlier "
                                     "`deploy`: channels open on it as they are. `deploy --new` deploys another "
                                     "(channels on the old one keep working; pass --escrow to use it)")
    if session.node.balance(deployer.address) == 0:
        raise InsufficientFunds(f"{deployer.address} holds 0 ETH: deploying the escrow costs gas; send it some ETH "
                                "first")
    progress("deploying the escrow, waiting for the receipt…")
    # Recorded as soon as the receipt exists: a wait for confirmations that fails must not lead
    # to a second deployment.
    escrow = Escrow.deploy(session.w3, deployer, options=session.options,
                           on_deployed=lambda address, _: record_deployment(session.paths.deployments, session.chain,
                                                                            address))
    click.echo(escrow.address)


COMMANDS: list[click.Command] = [account, deploy]
