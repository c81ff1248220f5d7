"""Backups and recovery: the store as a verifiable bundle, merging one back, and rebuilding
the channels of this account from the chain."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import IO

import click

from micropay.bundle import MAX_BUNDLE_BYTES, load_bundle
from micropay.channel import checked_address
from micropay.cli.context import Session, pass_session
from micropay.cli.output import hex_id, progress
from micropay.config import load_deployments
from micropay.errors import KeystoreError, MicropayValueError, NodeError, StoreError
from micropay.escrow import Escrow
from micropay.records import ChannelRecord

#: The largest bundle read (a bundle is verified as a whole, in memory).


@click.command("export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path, allow_dash=True), default="-")
@pass_session
def export_store(session: Session, file: Path) -> None:
    """Write every channel, voucher and task to a verifiable JSON bundle (FILE is made private,
    mode 0600: it holds what you are owed)."""
    if session.chain_id is not None:
        other = sorted({r.chain_id for r in session.read_store.channels() if r.chain_id != session.chain_id})
        if other:
            raise NodeError(f"the store also holds channels on chain {', '.join(map(str, other))}, not on --chain-id "
                            f"{session.chain_id}: export without --chain-id (a bundle holds the whole store)")
    text = json.dumps(session.read_store.export(), indent=1) + "\n"
    if str(file) == "-":
        sys.stdout.write(text)
        return
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)  # an existing file keeps its mode otherwise
        out.write(text)
    progress(f"wrote {len(session.store.channels())} channel(s) to {file} (mode 0600)")


@click.command("import")
@click.argument("file", type=click.File("rb"))
@pass_session
def import_store(session: Session, file: IO[bytes]) -> None:
    """Merge a bundle written by `export`, after verifying every signature and ledger. Only
    channels this account pays or is paid on are accepted."""
    address = _own_address(session, "import accepts only this account's channels")  # before any store exists
    data = file.read(MAX_BUNDLE_BYTES + 1)
    if len(data) > MAX_BUNDLE_BYTES:
        raise MicropayValueError(f"{file.name} is larger than a bundle can be ({MAX_BUNDLE_BYTES // 2**20} MiB)")
    try:
        bundle = load_bundle(data, max_bytes=MAX_BUNDLE_BYTES)
    except StoreError as exc:
        raise MicropayValueError(f"{file.name} is not a bundle written by `micropay export`: {exc}") from None
    changed = session.store.import_(bundle, account=address)
    click.echo(f"{changed} channel(s) imported or updated")


def _own_address(session: Session, why: str) -> str:
    """This account's address, read from its key file; a missing key file is said for what it is."""
    try:
        return session.address
    except KeystoreError as exc:
        raise KeystoreError(f"{why}, so it needs this account's key file: bring it with `micropay account import` "
                            f"({exc})") from None


def _sync_escrows(session: Session) -> list[Escrow]:
    """``--escrow``, every escrow the store holds channels on for the node's chain, and the one
    ``deploy`` recorded: an older escrow's channels are never missed."""
    chain = session.chain
    given = [checked_address(session.escrow_address, "--escrow")] if session.escrow_address else []
    addresses = dict.fromkeys(given + [r.escrow for r in session.store.channels() if r.chain_id == chain])
    deployed = load_deployments(session.paths.deployments).get(chain)
    if deployed:
        addresses[deployed] = None
    if not addresses:
        raise MicropayValueError(f"no escrow known on chain {chain}: pass --escrow ADDRESS: the escrow your "
                                 "clients' channels are on (`micropay receive --json` and `status --json` show it "
                                 "for every payment and channel); a client finds it where it ran `micropay deploy`")
    return [session.escrow_at(address) for address in addresses]


def _described(session: Session, record: ChannelRecord) -> str:
    other = ("client " + record.key.payer) if record.role == "payee" else ("freelancer " + record.key.payee)
    return (f"  channel {hex_id(record.id, 10)} with {other}: deposit {session.show(record.deposit, record.key.token)}"
            f", {'closed' if record.closed else 'open'}")


@click.command()
@pass_session
def sync(session: Session) -> None:
    """Rebuild every channel of this account (as client and as freelancer) from the escrow's
    events: after an interrupted `open`, or to rebuild a lost or damaged store (then `import` a
    backup for the payments themselves). Channels a Safe funds (`open --from-safe`) are read too:
    once the Safe executed its batch, they can be paid on."""
    from micropay.sync import sync as sync_escrow

    try:
        address: str | None = _own_address(session, "sync rebuilds this account's channels")  # before any store
    except KeystoreError:
        if not _funded_elsewhere(session, None):  # a hot key's data directory may hold no key file of its own
            raise
        address = None
    for escrow in _sync_escrows(session):
        if address is not None:
            progress(f"reading the channels of {address} on escrow {escrow.address}…")
            report = sync_escrow(session.store, escrow, address)
            click.echo(f"escrow {escrow.address}: {len(report.added)} channel(s) added, {len(report.updated)} updated")
            for record in report.added:
                click.echo(_described(session, record))
        _refresh_funded_elsewhere(session, escrow, address)


def _funded_elsewhere(session: Session, address: str | None) -> list[ChannelRecord]:
    """This store's channels that another payer funds (a Safe, through `open --from-safe`): paid
    with a hot key kept here, they are not found by this account's address."""
    return [r for r in session.store.channels("payer") if r.key.payer != address and r.key.signer is not None]


def _refresh_funded_elsewhere(session: Session, escrow: Escrow, address: str | None) -> None:
    """Read the channels funded elsewhere on ``escrow`` and store their chain state: a channel whose
    batch the Safe executed is seen on chain from now on, and can be paid on."""
    records = [r for r in _funded_elsewhere(session, address)
               if (r.chain_id, r.escrow) == (escrow.chain_id, escrow.address)]
    if not records:
        return
    now = time.time()
    for record, state in zip(records, escrow.channels([r.key for r in records]), strict=True):
        payer = f"channel {hex_id(record.id, 10)} funded by {record.key.payer}"
        if state is None:
            click.echo(f"  {payer}: not opened yet (execute its batch in the Safe app, then sync again)")
            continue
        fresh = record.updated(state, checked_at=now)
        session.store.update_chain_state(fresh)
        seen = "now seen on chain" if not record.seen_on_chain else "refreshed"
        click.echo(f"  {payer}: {seen}, deposit {session.show(state.deposit, record.key.token)}, "
                   f"{'closed' if state.closed else 'open'}")


COMMANDS: list[click.Command] = [export_store, import_store, sync]
