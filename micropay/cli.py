"""The ``micropay`` command: what freelancers and clients run.

Every micropay error becomes one line on stderr and exit code 1 (``--debug`` shows the
traceback); that happens in one place, :meth:`MicropayGroup.invoke`. Keys and passwords are never
printed: the password comes from ``MICROPAY_PASSWORD`` or a hidden prompt.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import click
from web3 import Web3

from micropay import keystore
from micropay._utils.tx import TxOptions
from micropay.config import Paths, load_deployments, record_deployment
from micropay.errors import KeystoreError, MicropayError, MicropayValueError, NodeError, UnknownChannel
from micropay.escrow import ETH, Escrow
from micropay.payee import Payee
from micropay.payer import Payer
from micropay.store import ChannelRecord, VoucherStore
from micropay.token import Token
from micropay.units import format_amount, parse_amount


class MicropayGroup(click.Group):
    """Turns every micropay error (and an unreachable node) into one clean line and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (MicropayError, OSError) as exc:
            if ctx.params.get("debug") or (ctx.obj and getattr(ctx.obj, "debug", False)):
                raise
            if isinstance(exc, OSError) and not isinstance(exc, MicropayError):
                exc = NodeError(f"{exc.strerror or exc}")
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)


@dataclass
class Session:
    """What a command needs, built lazily from the flags (so offline commands stay offline)."""

    paths: Paths
    rpc: str | None
    escrow_address: str | None
    keystore_path: Path | None
    store_path: Path | None
    chain_id: int | None
    debug: bool
    options: TxOptions = field(default_factory=TxOptions)
    injected_w3: Web3 | None = None
    _cache: dict[str, Any] = field(default_factory=dict)

    @property
    def w3(self) -> Web3:
        if "w3" not in self._cache:
            if self.injected_w3 is not None:
                w3 = self.injected_w3
            elif self.rpc:
                w3 = Web3(Web3.HTTPProvider(self.rpc, request_kwargs={"timeout": 30}))
            else:
                raise NodeError("no Ethereum node: pass --rpc URL or set MICROPAY_RPC (try `micropay demo`)")
            try:
                actual = w3.eth.chain_id
            except Exception as exc:  # noqa: BLE001 - requests/aiohttp/socket errors: all mean unreachable
                raise NodeError(f"cannot reach the node at {self.rpc}: {type(exc).__name__}") from None
            if self.chain_id is not None and actual != self.chain_id:
                raise NodeError(f"the node at {self.rpc} is on chain {actual}, not {self.chain_id}")
            self._cache["w3"] = w3
        return self._cache["w3"]

    @property
    def escrow(self) -> Escrow:
        if "escrow" not in self._cache:
            address = self.escrow_address or load_deployments(self.paths.deployments).get(self.w3.eth.chain_id)
            if address is None:
                raise MicropayValueError(f"no escrow known on chain {self.w3.eth.chain_id}: pass --escrow ADDRESS "
                                         "or run `micropay deploy`")
            self._cache["escrow"] = Escrow.at(self.w3, address, options=self.options)
        return self._cache["escrow"]

    @property
    def account(self) -> Any:
        if "account" not in self._cache:
            path = self.keystore_path
            if path is None:
                found = keystore.list_accounts(self.paths.keystores)
                if len(found) != 1:
                    raise KeystoreError("choose a key file with --keystore PATH" if found else
                                        "no key file yet: create one with `micropay account new`")
                path = found[0][1]
            self._cache["account"] = keystore.load_account(path, password())
        return self._cache["account"]

    @property
    def store(self) -> VoucherStore:
        if "store" not in self._cache:
            self._cache["store"] = VoucherStore(self.store_path or self.paths.store)
        return self._cache["store"]

    def payer(self) -> Payer:
        return Payer(self.escrow, self.account, self.store)

    def payee(self) -> Payee:
        return Payee(self.escrow, self.account, self.store)

    def token_units(self, token: str) -> tuple[int, str]:
        if token == ETH:
            return 18, "ETH"
        erc20 = Token(self.w3, token)
        return erc20.decimals, erc20.symbol

    def stored_units(self, record: ChannelRecord) -> tuple[int, str]:
        """Units of a channel's token; ETH needs no node, a token asks the node once."""
        return (18, "ETH") if record.key.token == ETH else self.token_units(record.key.token)

    def show(self, value: int, token: str) -> str:
        return format_amount(value, *self.token_units(token))

    def amount(self, text: str, token: str) -> int:
        return parse_amount(text, *self.token_units(token))

    def channel(self, text: str) -> ChannelRecord:
        """A stored channel by its id or a unique prefix of it (at least 6 hex digits)."""
        wanted = text.lower().removeprefix("0x")
        if len(wanted) < 6:
            raise MicropayValueError("give at least 6 hex digits of the channel id")
        matches = [r for r in self.store.channels() if r.id.hex().startswith(wanted)]
        if len(matches) != 1:
            raise UnknownChannel(f"no channel starting with {text} in {self.store.path}" if not matches
                                 else f"{text} matches {len(matches)} channels: give more digits")
        return matches[0]


def password(confirm: bool = False) -> str:
    import os

    value = os.environ.get("MICROPAY_PASSWORD")
    if value is None:
        value = click.prompt("password", hide_input=True, confirmation_prompt=confirm, err=True)
    return value


pass_session = click.make_pass_decorator(Session)


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")(fn)


def channel_argument(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.argument("channel")(fn)


def emit(as_json: bool, data: Any, text: str) -> None:
    click.echo(json.dumps(data, indent=2, default=str) if as_json else text)


def when(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


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
    injected = ctx.obj.get("w3") if isinstance(ctx.obj, dict) else None
    # An injected in-process chain (tests) mines only when asked: nothing to wait for there.
    options = TxOptions(max_fee_per_gas=None if max_fee_gwei is None else int(max_fee_gwei * 10**9),
                        confirmations=0 if injected is not None else confirmations)
    ctx.obj = Session(Paths.default(home), rpc, escrow_address, keystore_path, store_path, chain_id, debug,
                      options=options, injected_w3=injected)


# ------------------------------------------------------------------------------------- demo


@main.command()
@json_option
def demo(as_json: bool) -> None:
    """The whole story on an embedded chain: deploy, open, pay five tasks, settle once."""
    from micropay.demo import format_statement, run_demo

    statement = run_demo(echo=(lambda _text: None) if as_json else click.echo)
    emit(as_json, {"tasks": statement.tasks, "steps": statement.steps, "client": statement.client,
                   "freelancer": statement.freelancer, "deposit": statement.deposit, "refund": statement.refund},
         format_statement(statement))


# ----------------------------------------------------------------------------------- accounts


@main.group()
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
    key = click.prompt("private key", hide_input=True, err=True)
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


# ------------------------------------------------------------------------------------ escrow


@main.command()
@pass_session
def deploy(session: Session) -> None:
    """Deploy the escrow and record it as this chain's default."""
    w3, deployer = session.w3, session.account
    click.echo("deploying the escrow, waiting for the receipt…", err=True)
    escrow = Escrow.deploy(w3, deployer, options=session.options)
    record_deployment(session.paths.deployments, escrow.chain_id, escrow.address)
    click.echo(escrow.address)


# ---------------------------------------------------------------------------------- client


@main.command("open")
@click.argument("payee")
@click.argument("deposit")
@click.option("--token", default=ETH, help="ERC-20 address (default ETH)")
@click.option("--days", default=30, show_default=True, help="channel lifetime")
@click.option("--window-hours", default=24, show_default=True, help="challenge window after request-close")
@json_option
@pass_session
def open_channel(session: Session, payee: str, deposit: str, token: str, days: int, window_hours: int,
                 as_json: bool) -> None:
    """Lock DEPOSIT, such as '0.05 ETH', in a channel to PAYEE."""
    amount = session.amount(deposit, token)
    payer = session.payer()
    click.echo("opening the channel, waiting for the receipt…", err=True)
    record = payer.open_channel(payee, amount, token=token, expires_in=timedelta(days=days),
                                window=timedelta(hours=window_hours))
    emit(as_json, {"channel": "0x" + record.id.hex(), "deposit": str(record.deposit), "expiry": record.expiry},
         f"channel 0x{record.id.hex()}\n{session.show(record.deposit, token)} until {when(record.expiry)}")


@main.command("top-up")
@channel_argument
@click.argument("amount")
@pass_session
def top_up(session: Session, channel: str, amount: str) -> None:
    """Add AMOUNT to a channel's deposit."""
    record = session.channel(channel)
    updated = session.payer().top_up(record.id, session.amount(amount, record.key.token))
    click.echo(f"deposit now {session.show(updated.deposit, record.key.token)}")


@main.command()
@channel_argument
@click.argument("amount")
@click.argument("task")
@click.option("--note", default="", help="a note stored with the task")
@pass_session
def pay(session: Session, channel: str, amount: str, task: str, note: str) -> None:
    """Pay AMOUNT for TASK; prints the payment text to send to the freelancer. Works offline."""
    record = session.channel(channel)
    decimals, symbol = session.stored_units(record)
    # Signing needs no node: the chain id and escrow are in the store.
    offline = Escrow(Web3(), record.escrow, chain_id=record.chain_id)
    payment = Payer(offline, session.account, session.store).pay(
        record.id, parse_amount(amount, decimals, symbol), task=task, note=note)
    click.echo(payment.encode())


@main.command("request-close")
@channel_argument
@pass_session
def request_close(session: Session, channel: str) -> None:
    """Start closing: the freelancer keeps one challenge window to claim."""
    record = session.payer().request_close(session.channel(channel).id)
    click.echo(f"the freelancer may claim until {when(record.expiry)}; reclaim after that")


@main.command()
@channel_argument
@pass_session
def reclaim(session: Session, channel: str) -> None:
    """After expiry, take back what was not claimed."""
    record = session.channel(channel)
    refund = session.payer().reclaim(record.id)
    click.echo(f"reclaimed {session.show(refund, record.key.token)}")


# -------------------------------------------------------------------------------- freelancer


@main.command()
@click.argument("texts", nargs=-1)
@click.option("--file", "file", type=click.File("r"), help="read payment texts from a file, one per line")
@json_option
@pass_session
def receive(session: Session, texts: tuple[str, ...], file: Any, as_json: bool) -> None:
    """Check and store payments (arguments, --file, or one per line on stdin)."""
    lines = list(texts) or [line for line in (file or sys.stdin) if line.strip()]
    payee = session.payee()
    results = []
    for text in lines:
        received = payee.receive(text.strip())
        token = session.store.channel(received.channel_id).key.token
        results.append({"channel": "0x" + received.channel_id.hex(), "added": str(received.added),
                        "cumulative": str(received.cumulative), "tasks": [t.task_id for t in received.tasks],
                        "duplicate": received.duplicate})
        if not as_json:
            what = ", ".join(repr(t.task_id) for t in received.tasks)
            click.echo(("(already stored) " if received.duplicate else "")
                       + f"+{session.show(received.added, token)} for {what}; "
                       f"{session.show(received.cumulative, token)} so far")
    if as_json:
        emit(True, results, "")


@main.command()
@click.argument("file", type=click.File("r"))
@click.option("--min-net", default="0", help="skip channels whose unclaimed value is below this plus gas")
@pass_session
def redeem(session: Session, file: Any, min_net: str) -> None:
    """Receive every payment in FILE (one per line), settle once, and print a statement."""
    payee = session.payee()
    lines = [line.strip() for line in file if line.strip()]
    added: dict[bytes, int] = {}
    for text in lines:
        received = payee.receive(text)
        added[received.channel_id] = added.get(received.channel_id, 0) + received.added
    click.echo(f"{len(lines)} payment(s) received on {len(added)} channel(s); settling…", err=True)
    result = payee.settle(session.amount(min_net, ETH))
    for channel_id in result.channels:
        record = session.store.channel(channel_id)
        click.echo(f"channel 0x{channel_id.hex()[:10]} from {record.key.payer}: "
                   f"{len(session.store.ledger(channel_id))} task(s) settled")
    click.echo(f"received {session.show(result.gross, ETH)} in transaction 0x{result.tx_hash.hex()}; "
               f"gas {result.gas_used:,}, fee {session.show(result.fee, ETH)}, net {session.show(result.net, ETH)}")


@main.command()
@json_option
@pass_session
def status(session: Session, as_json: bool) -> None:
    """A line per channel: counterparty, token, deposit, paid, unclaimed, expiry, tasks."""
    rows, data = [], []
    for record in session.store.channels():
        state = Escrow(session.w3, record.escrow).channel(record.key)
        best = session.store.best_voucher(record.id)
        paid = best[0].amount if best else 0
        unclaimed = max(0, min(paid, state.deposit) - state.claimed) if record.role == "payee" else paid - state.claimed
        counterparty = record.key.payer if record.role == "payee" else record.key.payee
        tasks = len(session.store.ledger(record.id))
        rows.append(["0x" + record.id.hex()[:10], record.role, counterparty, session.token_units(record.key.token)[1],
                     session.show(state.deposit, record.key.token), session.show(paid, record.key.token),
                     session.show(unclaimed, record.key.token), state.status.value, when(state.expiry), str(tasks)])
        data.append({"channel": "0x" + record.id.hex(), "role": record.role, "counterparty": counterparty,
                     "token": record.key.token, "deposit": str(state.deposit), "paid": str(paid),
                     "claimed": str(state.claimed), "unclaimed": str(unclaimed), "status": state.status.value,
                     "expiry": state.expiry, "tasks": tasks})
    emit(as_json, data, table(rows, ["channel", "role", "counterparty", "token", "deposit", "paid", "unclaimed",
                                     "status", "expiry", "tasks"]) if rows else "no channels yet")


@main.command()
@channel_argument
@json_option
@pass_session
def tasks(session: Session, channel: str, as_json: bool) -> None:
    """The ledger of a channel: each task, its price, and whether it is settled on chain."""
    record = session.channel(channel)
    claimed = Escrow(session.w3, record.escrow).channel(record.key).claimed
    entries = session.store.ledger(record.id)
    rows = [[str(i + 1), e.receipt.task_id, session.show(e.receipt.amount, record.key.token),
             "settled" if e.total <= claimed else "unsettled"] for i, e in enumerate(entries)]
    emit(as_json, [{"task": e.receipt.task_id, "amount": str(e.receipt.amount), "note": e.receipt.note,
                    "settled": e.total <= claimed} for e in entries],
         table(rows, ["#", "task", "price", "state"]) if rows else "no tasks yet")


@main.command()
@click.option("--min-net", default="0", help="skip channels whose unclaimed value is below this plus gas")
@click.option("--token", default=ETH, help="settle the channels in this token (default ETH)")
@click.option("--dry-run", is_flag=True, help="show gas, fee and net without sending")
@json_option
@pass_session
def settle(session: Session, min_net: str, token: str, dry_run: bool, as_json: bool) -> None:
    """Claim every channel worth claiming in ONE transaction."""
    payee = session.payee()  # connects first: progress only once the node answers
    if not dry_run:
        click.echo("settling, waiting for the receipt…", err=True)
    result = payee.settle(session.amount(min_net, token), token=token, dry_run=dry_run)
    data = {"tx": "0x" + result.tx_hash.hex() if result.tx_hash else None, "channels": len(result.channels),
            "gross": str(result.gross), "gas": result.gas_used, "fee": str(result.fee), "net": str(result.net)}
    emit(as_json, data, ("would claim" if dry_run else "claimed") + f" {session.show(result.gross, token)} from "
         f"{len(result.channels)} channel(s); gas {result.gas_used:,}, fee {session.show(result.fee, ETH)}, net "
         f"{session.show(result.net, token)}" + ("" if dry_run else f"\ntransaction 0x{result.tx_hash.hex()}"))


@main.command()
@channel_argument
@pass_session
def close(session: Session, channel: str) -> None:
    """Close a channel now with the best voucher held; the rest goes back to the client."""
    record = session.channel(channel)
    session.payee().close(record.id)
    click.echo(f"closed 0x{record.id.hex()}")


@main.command()
@click.option("--confirmations", default=2, show_default=True)
@click.option("--interval", default=15.0, show_default=True, help="seconds between polls")
@click.option("--rounds", type=int, help="stop after this many polls (default: run until interrupted)")
@pass_session
def watch(session: Session, confirmations: int, interval: float, rounds: int | None) -> None:
    """Claim automatically when a client starts closing or an expiry nears."""
    payee = session.payee()
    payee.check_gas_funds()
    click.echo(f"watching escrow {session.escrow.address} for {payee.address} (Ctrl-C to stop)", err=True)
    done = 0
    try:
        while rounds is None or done < rounds:
            for settlement in payee.watch_once(confirmations=confirmations):
                click.echo(f"claimed {len(settlement.channels)} channel(s) in 0x{settlement.tx_hash.hex()}")
            done += 1
            if rounds is None or done < rounds:
                time.sleep(interval)
    except KeyboardInterrupt:
        click.echo("stopped", err=True)


# --------------------------------------------------------------------------------- backups


@main.command("export")
@click.argument("file", type=click.File("w"), default="-")
@pass_session
def export_store(session: Session, file: Any) -> None:
    """Write every channel, voucher and task to a verifiable JSON bundle."""
    json.dump(session.store.export(), file, indent=1)
    file.write("\n")


@main.command("import")
@click.argument("file", type=click.File("r"))
@pass_session
def import_store(session: Session, file: Any) -> None:
    """Merge a bundle written by `export`, after verifying every signature and ledger."""
    try:
        bundle = json.load(file)
    except ValueError:
        raise MicropayValueError(f"{file.name} is not JSON") from None
    click.echo(f"{session.store.import_(bundle)} channel(s) updated")


def run() -> None:  # the console script
    main(prog_name="micropay")


if __name__ == "__main__":
    sys.exit(run())
