"""For the freelancer: close a channel now, or keep watching and claim in time by itself."""

from __future__ import annotations

import time

import click

from micropay.cli.context import Session, pass_session
from micropay.cli.errors import describe, one_line
from micropay.cli.options import channel_argument
from micropay.cli.output import eth_fee, hex_id, progress, when
from micropay.cli.settling import interrupted, sent_so_far
from micropay.errors import InsufficientFunds, NodeError, TransactionError
from micropay.escrow import Escrow
from micropay.payee import Payee
from micropay.records import ChannelRecord
from micropay.settling import Settlement
from micropay.watching import CLAIM_GAS_RESERVE


@click.command()
@channel_argument
@pass_session
def close(session: Session, channel: ChannelRecord) -> None:
    """Close a channel now with the best voucher held; the rest goes back to the client."""
    escrow, state = session.live_state(channel, "it can no longer be claimed or closed; the client may reclaim "
                                                "what was not claimed")
    best = session.store.best_voucher(channel.ref)
    paid = min(best[0].amount if best else 0, state.deposit)
    receipt = Payee(escrow, session.account, session.store).close(channel.id)
    token, show = channel.key.token, session.show
    if not channel.key.is_eth:  # a token may call out on transfer: claim, and leave the refund to the client
        click.echo(f"claimed channel {hex_id(channel.id, 10)} with client {channel.key.payer}: "
                   f"{show(paid, token)} paid to you in all ({show(max(0, paid - state.claimed), token)} now); "
                   f"a token channel is not closed by the freelancer: the client reclaims the rest "
                   f"({show(state.deposit - paid, token)}) after expiry; fee {eth_fee(receipt.fee)}")
        return
    click.echo(f"closed channel {hex_id(channel.id, 10)} with client {channel.key.payer}: "
               f"{show(paid, token)} paid to you in all ({show(max(0, paid - state.claimed), token)} now), "
               f"{show(state.deposit - paid, token)} back to the client; fee {eth_fee(receipt.fee)}")


def check_gas(escrow: Escrow, address: str) -> None:
    """Refuse to watch without ETH for a claim, saying how much in ETH."""
    balance, needed = escrow.balance(address), CLAIM_GAS_RESERVE * escrow.gas_price()
    if balance < needed:
        raise InsufficientFunds(f"{address} holds {eth_fee(balance)}; watching needs at least {eth_fee(needed)} "
                                "to pay for a claim: fund it before watching")


def _by_id(payee: Payee) -> dict[bytes, ChannelRecord]:
    return {record.id: record for record in payee.channels()}


def watch_pass(session: Session, payee: Payee, margin: int) -> None:
    """One pass on one escrow; one line per channel claimed, saying why, then one per close
    requested in blocks not yet deep enough to act on."""
    before = _by_id(payee)
    confirmations = depth(session, payee)
    settlements = payee.watch_once(confirmations=confirmations)
    if settlements:
        _claimed(session, payee, before, margin, settlements)
    _waiting(payee, confirmations)


def depth(session: Session, payee: Payee) -> int:
    """How deep a block must be before watch acts on it: --confirmations, except on a node that
    mines only when a transaction arrives (a dev node: no reorgs, and no block would ever come)."""
    return 0 if payee.escrow.pipeline.mines_on_demand() else session.options.confirmations


def _claimed(session: Session, payee: Payee, before: dict[bytes, ChannelRecord], margin: int,
             settlements: list[Settlement]) -> None:
    after = _by_id(payee)
    now = payee.escrow.now()
    for settlement in settlements:
        for channel_id in settlement.channels:
            old, new = before.get(channel_id), after[channel_id]
            token = new.key.token
            why = (f"its expiry ({when(new.expiry)}) is near" if new.expiry - now <= margin else
                   f"the client started closing (claims allowed until {when(new.expiry)})")
            click.echo(f"claimed {session.show(new.claimed - (old.claimed if old else 0), token)} from client "
                       f"{new.key.payer} on channel {hex_id(channel_id, 10)}: {why}; "
                       f"{session.show(new.claimed, token)} claimed on it in all")
        for tx in settlement.transactions:
            click.echo(f"  in transaction {hex_id(tx.tx_hash)}, fee {eth_fee(tx.fee)}")


def _waiting(payee: Payee, confirmations: int) -> None:
    """A line for each channel of ours (a voucher with value held) whose client requested a close
    in blocks the watcher does not act on yet: on a node that mines only when a transaction
    arrives, no later block may ever come to make them deep enough."""
    escrow = payee.escrow
    head = escrow.block_number()
    start = max(head - confirmations + 1, escrow.from_block)
    if start > head:  # --confirmations 0: every block was acted on
        return
    requested = escrow.closes_requested(payee.address, start, head)
    ours = {item.channel_id: item.payer for item in payee.unclaimed() if item.value > 0 and
            item.channel_id in requested} if requested else {}
    if not ours:
        return
    hint = ("; on a node that mines only when a transaction arrives, use --confirmations 0"
            if escrow.pipeline.mines_on_demand() else "")
    deep = f"{confirmations} block{'s' if confirmations > 1 else ''} deep"
    for block in range(head, start - 1, -1):  # block by block, to say how deep each request is
        for channel_id in sorted(escrow.closes_requested(payee.address, block, block) & ours.keys()):
            progress(f"client {ours.pop(channel_id)} started closing channel {hex_id(channel_id, 10)}: claiming "
                     f"once that is {deep} (now {head - block}){hint}")


@click.command()
@click.option("--interval", default=15.0, show_default=True, help="seconds between polls")
@click.option("--rounds", type=int, help="stop after this many polls (default: run until interrupted)")
@pass_session
def watch(session: Session, interval: float, rounds: int | None) -> None:
    """Claim automatically when a client starts closing or an expiry nears. Acts only on blocks
    --confirmations deep (the global option)."""
    payees = [Payee(escrow, session.account, session.store) for escrow in session.freelancer_escrows()]
    check_gas(payees[0].escrow, session.address)
    for payee in payees:
        deep = depth(session, payee)
        progress(f"watching escrow {payee.escrow.address} for {payee.address}, acting on blocks {deep} deep"
                 + (" (this node mines only when a transaction arrives)" if deep != session.options.confirmations
                    else "") + " (Ctrl-C to stop)")
    done, before = 0, sent_so_far(session)
    try:
        while rounds is None or done < rounds:
            for payee in payees:
                try:
                    watch_pass(session, payee, payee.safety_margin)
                except (NodeError, TransactionError) as exc:  # a node hiccup must not end the watch
                    progress(f"this pass failed ({one_line(describe(exc, None))}); trying again in {interval:g}s")
            done += 1
            if rounds is None or done < rounds:
                time.sleep(interval)
    except KeyboardInterrupt:
        if sent_so_far(session) - before:  # stopped while claiming: say what was sent
            interrupted(session, before)
        progress("stopped")


COMMANDS: list[click.Command] = [close, watch]
