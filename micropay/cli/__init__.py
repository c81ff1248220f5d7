"""The ``micropay`` command: what freelancers and clients run.

Every error becomes one line on stderr and exit code 1 (``--debug`` shows the traceback); that
happens in one place, :meth:`MicropayGroup.invoke`, worded by :mod:`.errors`. Keys and passwords are never
printed: the password comes from ``MICROPAY_PASSWORD`` or a hidden prompt.

The commands live in modules by audience: :mod:`.accounts` (key files, deploying the escrow),
:mod:`.client` and :mod:`.paying` (the client), :mod:`.receiving`, :mod:`.settling` and
:mod:`.freelancer` (the freelancer), :mod:`.relaying` (claims a relayer submits for a fee),
:mod:`.inspecting`, :mod:`.backup` and :mod:`.demo`.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import click

from micropay.cli import (
    accounts,
    backup,
    client,
    demo,
    freelancer,
    inspecting,
    paying,
    plans,
    receiving,
    relaying,
    reports,
    serving,
    settling,
)
from micropay.cli.context import Session
from micropay.cli.errors import describe, one_line
from micropay.cli.options import StoreLocation
from micropay.cli.output import eth_fee
from micropay.config import Paths
from micropay.transactions import TxJournal, TxOptions

__all__ = ["MicropayGroup", "main", "run"]


class MicropayGroup(click.Group):
    """Turns every error into one clean line on stderr and exit code 1 (``--debug``: the traceback)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit):
            raise  # click's own: usage errors, exit codes
        except (KeyboardInterrupt, click.Abort) as exc:
            session = ctx.obj if isinstance(ctx.obj, Session) else None
            journal = session.options.journal if session is not None else None
            if isinstance(exc, click.Abort) and not (journal and journal.sent):
                raise  # a declined confirmation, or Ctrl-C at a prompt: nothing was sent
            for tx_hash in journal.sent if journal else []:
                click.echo(f"transaction 0x{tx_hash.hex()} was sent and may still be mined: check with "
                           "`micropay status` before doing it again", err=True)
            click.echo("interrupted" + ("" if journal and journal.sent else ": nothing was sent"), err=True)
            ctx.exit(130)
        except Exception as exc:
            session = ctx.obj if isinstance(ctx.obj, Session) else None
            if ctx.params.get("debug") or (session is not None and session.debug):
                raise
            click.echo(f"error: {one_line(describe(exc, _balance(session)))}", err=True)
            ctx.exit(1)


def _balance(session: Session | None) -> str | None:
    """What the session's account holds, for an error about a shortage of ETH; None if unknown."""
    if session is None or "_node" not in session.__dict__ or "address" not in session.__dict__:
        return None
    try:
        return eth_fee(session.node.balance(session.address))
    except Exception:  # noqa: BLE001 - only to enrich an error message: the error itself is what matters
        return None


@click.group(cls=MicropayGroup)
@click.option("--rpc", envvar="MICROPAY_RPC", help="JSON-RPC URL of an Ethereum node (env MICROPAY_RPC)")
@click.option("--escrow", "escrow_address", envvar="MICROPAY_ESCROW",
              help="escrow address (default: the one `deploy` recorded for the node's chain)")
@click.option("--keystore", "keystore_path", type=click.Path(path_type=Path), envvar="MICROPAY_KEYSTORE",
              help="encrypted key file (default: the only one in the data directory)")
@click.option("--store", "store_path", type=StoreLocation(), envvar="MICROPAY_STORE",
              help="voucher store: a file, or a postgresql:// URL (default: micropay.db in the data directory)")
@click.option("--home", type=click.Path(path_type=Path), envvar="MICROPAY_HOME",
              help="data directory (default: the user data directory)")
@click.option("--chain-id", type=int, help="refuse to run unless the node is on this chain")
@click.option("--confirmations", type=int, default=1, show_default=True, envvar="MICROPAY_CONFIRMATIONS",
              help="blocks a transaction must be under before it counts (and `watch` acts)")
@click.option("--max-fee-gwei", type=float, envvar="MICROPAY_MAX_FEE_GWEI",
              help="never pay more than this per gas (EIP-1559 max fee)")
@click.option("--debug", is_flag=True, help="show tracebacks")
@click.version_option(package_name="micropay")
@click.pass_context
def main(ctx: click.Context, rpc: str | None, escrow_address: str | None, keystore_path: Path | None,
         store_path: Path | str | None, home: Path | None, chain_id: int | None, confirmations: int,
         max_fee_gwei: float | None, debug: bool) -> None:
    """Pay a freelancer per task with instant vouchers; settle on-chain once."""
    options = TxOptions(max_fee_per_gas=None if max_fee_gwei is None else int(max_fee_gwei * 10**9),
                        confirmations=confirmations, journal=TxJournal())
    ctx.obj = Session(Paths.default(home), rpc=rpc, escrow_address=escrow_address, keystore_path=keystore_path,
                      store_path=store_path, chain_id=chain_id, debug=debug, options=options)


def _register(*modules: ModuleType) -> None:
    for module in modules:
        for command in module.COMMANDS:
            main.add_command(command)


_register(demo, accounts, plans, client, paying, receiving, settling, relaying, freelancer, serving, inspecting,
          reports, backup)


def run() -> None:
    """The console script."""
    main(prog_name="micropay")
