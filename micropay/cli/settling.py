"""For the freelancer: claim what the payments held are worth, and the history of doing so.

``settle`` plans before anything else, with the account's address only: with nothing to claim
it says so and asks for no password. It claims every chosen channel in as few transactions as
the gas limit allows and prints every transaction's hash, also when Ctrl-C interrupts it.
"""

from __future__ import annotations

from typing import Any

import click

from micropay.channel import ETH
from micropay.cli.context import Session, pass_session
from micropay.cli.options import AMOUNT, Amount, json_option, min_net_option, parse_address, token_option, wei_option
from micropay.cli.output import emit, eth_fee, hex_id, progress, table, when
from micropay.cli.relaying import DURATION, authorize_all
from micropay.errors import InsufficientFunds, NothingToClaim
from micropay.payee import Payee
from micropay.settling import Settlement, SettlementPlan
from micropay.units import format_approx


def plans(session: Session, min_net: int, token: str, max_gas: int | None) -> list[tuple[Payee, SettlementPlan]]:
    """A plan for each escrow the freelancer is paid on that has something worth claiming."""
    found = []
    for escrow in session.freelancer_escrows():
        payee = Payee(escrow, session.address, session.store, max_gas_per_tx=max_gas)
        try:
            found.append((payee, payee.plan_settlement(min_net, token=token)))
        except NothingToClaim:
            continue
    return found


def execute(session: Session, planned: list[tuple[Payee, SettlementPlan]], max_gas: int | None) -> list[Settlement]:
    """Send the plans with the decrypted key. On Ctrl-C, say which transactions were already
    sent (they may still be mined) and exit 130."""
    before = sent_so_far(session)
    done = []
    try:
        for payee, plan in planned:
            signer = Payee(payee.escrow, session.account, session.store, max_gas_per_tx=max_gas)
            progress(f"settling {len(plan.channels)} channel(s) in {len(plan.batches)} transaction(s), "
                     "waiting for the receipt…")
            done.append(signer.settle(plan))
    except KeyboardInterrupt:
        interrupted(session, before)
        click.get_current_context().exit(130)
    return done


def sent_so_far(session: Session) -> set[bytes]:
    """The settlement transactions the store has recorded (to tell the new ones after Ctrl-C)."""
    return {record.tx_hash for record in session.store.settlements()}


def interrupted(session: Session, before: set[bytes]) -> None:
    """After Ctrl-C: the hash of every settlement transaction recorded since ``before``."""
    sent = [record for record in session.store.settlements() if record.tx_hash not in before]
    for record in sent:
        progress(f"transaction {hex_id(record.tx_hash)} ({record.status}) may have been sent: it may still be mined")
    progress("interrupted: " + ("run `micropay settle` again to confirm what was sent (nothing is claimed twice)"
                                if sent else "nothing was sent"))


def settle_all(session: Session, min_net: int, token: str, *, dry_run: bool = False, as_json: bool = False,
               max_gas: int | None = None) -> None:
    """Plan, then (unless ``dry_run``) claim, and print what was claimed or would be."""
    try:
        planned = plans(session, min_net, token, max_gas)
    except InsufficientFunds:  # estimating a claim from an account without ETH
        raise _no_gas_money(session) from None
    if not planned:
        reason = "no channel holds unclaimed payments" + (
            f" worth more than {session.show(min_net, token)} plus gas" if min_net else " worth the gas")
        emit(as_json, _totals([], 0, 0, 0, token), f"nothing to claim: {reason}")
        return
    if dry_run:
        txs: list[dict[str, Any]] = [{"tx": None, "channels": len(batch.channels), "gas": batch.gas}
                                     for _, plan in planned for batch in plan.batches]
        gross, fee = sum(p.gross for _, p in planned), sum(p.fee for _, p in planned)
        data = _totals(txs, gross, sum(p.gas for _, p in planned), fee, token)
        emit(as_json, data, f"would claim {session.show(gross, token)} from {data['channels']} channel(s) in "
             f"{len(txs)} transaction(s); gas {data['gas']:,}, fee at most {eth_fee(fee)}" + _net(session, data, token))
        return
    _check_gas_money(session, planned)
    try:
        done = execute(session, planned, max_gas)
    except InsufficientFunds:
        raise _no_gas_money(session) from None
    txs = [{"tx": hex_id(tx.tx_hash), "channels": len(tx.channels), "gross": str(tx.gross), "gas": tx.gas_used,
            "fee": str(tx.fee)} for settlement in done for tx in settlement.transactions]
    data = _totals(txs, sum(s.gross for s in done), sum(s.gas_used for s in done), sum(s.fee for s in done), token)
    data["channels"] = sum(len(s.channels) for s in done)
    lines = [f"transaction {tx['tx']}: {tx['channels']} channel(s), {session.show(int(tx['gross']), token)}, "
             f"fee {eth_fee(int(tx['fee']))}" for tx in txs]
    lines.append(f"claimed {session.show(int(data['gross']), token)} from {data['channels']} channel(s) in "
                 f"{len(txs)} transaction(s); gas {data['gas']:,}, fee {eth_fee(int(data['fee']))}"
                 + _net(session, data, token))
    emit(as_json, data, "\n".join(lines))


_VIA_RELAY = "`micropay settle --via-relay --max-fee AMOUNT`"


def _check_gas_money(session: Session, planned: list[tuple[Payee, SettlementPlan]]) -> None:
    """Refuse before anything is signed or recorded when the account cannot pay the plans' fee
    (at most), pointing to a relayed settlement, which needs no ETH."""
    if session.node.balance(session.address) < sum(plan.fee for _, plan in planned):
        raise _no_gas_money(session)


def _no_gas_money(session: Session) -> InsufficientFunds:
    held = eth_fee(session.node.balance(session.address))
    return InsufficientFunds(f"{session.address} holds {held}, not enough for this settlement's gas: send it some "
                             f"ETH, or let someone else pay the gas for a fee out of the payout: {_VIA_RELAY}")


def _totals(txs: list[dict[str, Any]], gross: int, gas: int, fee: int, token: str) -> dict[str, Any]:
    net = gross - fee if token == ETH else gross
    return {"tx": txs[0]["tx"] if txs else None, "transactions": txs, "channels": sum(t["channels"] for t in txs),
            "gross": str(gross), "gas": gas, "fee": str(fee), "net": str(net)}


def _net(session: Session, data: dict[str, Any], token: str) -> str:
    return f", net {format_approx(int(data['net']), 18, 'ETH', 6)}" if token == ETH else " (the fee is paid in ETH)"


@click.command()
@min_net_option
@token_option("settle the channels in this token (default ETH)")
@click.option("--dry-run", is_flag=True, help="show gas, fee and net without sending (asks no password)")
@click.option("--max-gas", type=click.IntRange(min=100_000),
              help="most gas one transaction may use (default: a share of the block gas limit)")
@click.option("--via-relay", is_flag=True,
              help="pay no gas: print a signed request for anyone to submit (`micropay relay`) for a fee")
@click.option("--max-fee", type=AMOUNT, help="with --via-relay: the most a relayer may keep, e.g. '0.50 USDC'")
@click.option("--deadline", type=DURATION, default="1h", show_default=True,
              help="with --via-relay: how long the request stays valid (30m, 1h, 2d)")
@wei_option
@json_option
@pass_session
def settle(session: Session, min_net: Amount, token: str, dry_run: bool, max_gas: int | None, via_relay: bool,
           max_fee: Amount | None, deadline: int, wei: bool, as_json: bool) -> None:
    """Claim every channel worth claiming, in as few transactions as the gas limit allows; or,
    with --via-relay, sign a request that anyone may submit for a fee, so no ETH is needed."""
    token = parse_address(token, "token").value
    if via_relay:
        if max_fee is None or dry_run:
            raise click.UsageError("--via-relay needs --max-fee (and does not take --dry-run)")
        authorize_all(session, token, max_fee, deadline, wei=wei, as_json=as_json)
        return
    settle_all(session, min_net.base_units(session.units(token), wei=wei), token, dry_run=dry_run,
               as_json=as_json, max_gas=max_gas)


@click.command()
@json_option
@pass_session
def settlements(session: Session, as_json: bool) -> None:
    """Every settlement transaction sent from this store: status, gross, fee, block."""
    records = session.store.settlements()
    rows, data = [], []
    for record in records:
        gross = session.show(record.gross, record.token)
        fee = "" if record.fee is None else eth_fee(record.fee)
        rows.append([hex_id(record.tx_hash), record.status, str(len(record.items)), gross, fee,
                     "" if record.block is None else str(record.block),
                     when(record.created_at) if record.created_at else ""])
        data.append({"tx": hex_id(record.tx_hash), "status": record.status, "chain": record.chain_id,
                     "escrow": record.escrow, "token": record.token, "channels": len(record.items),
                     "gross": str(record.gross), "gas": record.gas_used,
                     "fee": None if record.fee is None else str(record.fee), "block": record.block,
                     "sent": record.created_at})
    emit(as_json, data, table(rows, ["transaction", "status", "channels", "gross", "fee", "block", "sent"])
         if rows else "no settlements yet")


COMMANDS: list[click.Command] = [settle, settlements]
