"""ChainRefresh: the held channels' chain state is read in one batch and stored, so a payment
finds its channel fresh in memory and never waits on the chain."""

from __future__ import annotations

import time

from micropay.chain_refresh import ChainRefresh


def test_a_refresh_stores_what_the_chain_says_and_the_next_payment_needs_no_read(
        clients, freelancer, make_payer, payee):
    payer = make_payer(clients[0])
    channel = payer.open_channel(freelancer.address, 10**16)
    payee.receive(payer.pay(channel.id, 10**15, task="a"))
    payer.top_up(channel.id, 10**16)  # the chain changed: the stored deposit is behind
    ref = payee.ref(channel.id)
    assert payee.store.channel(ref).deposit == 10**16

    assert ChainRefresh(payee.receiver).refresh_once() == 1
    stored = payee.store.channel(ref)
    assert stored.deposit == 2 * 10**16 and time.time() - stored.checked_at < 5
    assert payee.store.peek_tip(ref).record.deposit == 2 * 10**16  # in memory too

    later = payer.pay(channel.id, 15 * 10**15, task="b")  # above the old deposit: judged by the refreshed one
    assert payee.receiver.check(later, offline=True) is not None  # None would mean: the chain must be asked
    assert payee.receive(later).cumulative == 16 * 10**15


def test_a_closed_or_foreign_channel_is_not_read(clients, freelancer, make_payer, payee):
    payer = make_payer(clients[0])
    channel = payer.open_channel(freelancer.address, 10**16)
    payee.receive(payer.pay(channel.id, 10**15, task="a"))
    payee.close(channel.id)
    assert ChainRefresh(payee.receiver).refresh_once() == 0
