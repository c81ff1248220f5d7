"""The ``micropay`` command: what freelancers and clients run.

Every micropay error becomes one line on stderr and exit code 1 (``--debug`` shows the
traceback); that happens in one place, :meth:`MicropayGroup.invoke`. Keys and passwords are never
printed: the password comes from ``MICROPAY_PASSWORD`` or a hidden prompt.

The commands live in modules by audience: :mod:`.accounts` (key files, deploying the escrow),
:mod:`.client`, :mod:`.freelancer`, :mod:`.inspecting`, :mod:`.backup` and :mod:`.demo`.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import click

from micropay.cli import accounts, backup, client, demo, freelancer, inspecting
from micropay.cli.context import Session
from micropay.config import Paths
from micropay.errors import MicropayError, NodeError
from micropay.transactions import TxOptions

__all__ = ["MicropayGroup", "main", "run"]


class MicropayGroup(click.Group):
    """Turns every micropay error (and an unreachable node) into one clean line and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (MicropayError, OSError) as exc:
            if ctx.params.get("debug") or getattr(ctx.obj, "debug", False):
                raise
            if isinstance(exc, OSError) and not isinstance(exc, MicropayError):
                exc = NodeError(f"{exc.strerror or exc}")
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=MicropayGroup)
@click.option("--rpc", envvar="MICROPAY_RPC", help="JSON-RPC URL of an Ethereum node (env MICROPAY_RPC)")
@click.option("--escrow", "escrow_address", envvar="MICROPAY_ESCROW",
              help="escrow address (default: the one `deploy` recorded for the node's chain)")
@click.option("--keystore", "keystore_path", type=click.Path(path_type=Path), envvar="MICROPAY_KEYSTORE",
              help="encrypted key file (default: the only one in the data directory)")
@click.option("--store", "store_path", type=click.Path(path_type=Path), envvar="MICROPAY_STORE",
              help="voucher store (default: micropay.db in the data directory)")
@click.option("--home", type=click.Path(path_type=Path), envvar="MICROPAY_HOME",
              help="data directory (default: the user data directory)")
@click.option("--chain-id", type=int, help="refuse to run unless the node is on this chain")
@click.option("--confirmations", type=int, default=1, show_default=True, envvar="MICROPAY_CONFIRMATIONS",
              help="blocks a transaction must be under before it counts")
@click.option("--max-fee-gwei", type=float, envvar="MICROPAY_MAX_FEE_GWEI",
              help="never pay more than this per gas (EIP-1559 max fee)")
@click.option("--debug", is_flag=True, help="show tracebacks")
@click.version_option(package_name="micropay")
@click.pass_context
def main(ctx: click.Context, rpc: str | None, escrow_address: str | None, keystore_path: Path | None,
         store_path: Path | None, home: Path | None, chain_id: int | None, confirmations: int,
         max_fee_gwei: float | None, debug: bool) -> None:
    """Pay a freelancer per task with instant vouchers; settle on-chain once."""
    options = TxOptions(max_fee_per_gas=None if max_fee_gwei is None else int(max_fee_gwei * 10**9),
                        confirmations=confirmations)
    ctx.obj = Session(Paths.default(home), rpc=rpc, escrow_address=escrow_address, keystore_path=keystore_path,
                      store_path=store_path, chain_id=chain_id, debug=debug, options=options)


def _register(*modules: ModuleType) -> None:
    for module in modules:
        for command in module.COMMANDS:
            main.add_command(command)


_register(demo, accounts, client, freelancer, inspecting, backup)


def run() -> None:
    """The console script."""
    main(prog_name="micropay")
