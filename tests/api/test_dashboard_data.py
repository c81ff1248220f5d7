"""The dashboard's figures: earnings per client and settled, channel lines with their warnings."""

from __future__ import annotations

import time

from micropay import ETH
from micropay.dashboard_data import channel_lines, earnings
from micropay.overview import overview

MILLI = 10**15


def test_earnings_per_client_and_settled_add_up_to_the_wei(clients, freelancer, make_payer, payee):
    alice, bob = make_payer(clients[0]), make_payer(clients[1])
    a, b = alice.open_channel(freelancer.address, 10**17), bob.open_channel(freelancer.address, 10**17)
    for n, price in enumerate((5, 3, 7)):
        payee.receive(alice.pay(a.id, price * MILLI, task=f"a{n}"))
    for n, price in enumerate((2, 4)):
        payee.receive(bob.pay(b.id, price * MILLI, task=f"b{n}"))
    before = earnings(payee.store, ETH)
    assert [(s.label, [amount for _, amount in s.points]) for s in before.received] == sorted([
        (clients[0].address, [5 * MILLI, 8 * MILLI, 15 * MILLI]), (clients[1].address, [2 * MILLI, 6 * MILLI])])
    assert before.settled.points == ()
    settlement = payee.settle()
    after = earnings(payee.store, ETH)
    assert [amount for _, amount in after.settled.points] == [settlement.gross] == [21 * MILLI]
    assert after.series[-1].label == "settled" and len(after.series) == 3
    assert earnings(payee.store, "0x" + "11" * 20).received == ()  # another token: nothing


def test_channel_lines_count_down_and_warn(clients, freelancer, make_payer, payee, lib_escrow):
    payer = make_payer(clients[0])
    channel = payer.open_channel(freelancer.address, 10**17)
    payee.receive(payer.pay(channel.id, 4 * MILLI, task="t"))
    views = overview(payee.store, [lib_escrow])
    (line,) = channel_lines(payee.store, views, now=channel.expiry - 7200, safety_margin=3600)
    assert (line.role, line.counterparty, line.paid, line.unclaimed, line.seconds_left, line.warnings) == (
        "payee", clients[0].address, 4 * MILLI, 4 * MILLI, 7200, ())
    (late,) = channel_lines(payee.store, views, now=channel.expiry - 600, safety_margin=3600,
                            closing={channel.id})
    assert late.warnings == ("the client has started closing: settle before the window ends",
                             "expires inside the safety margin: settle now")
    (gone,) = channel_lines(payee.store, views, now=channel.expiry + 1, safety_margin=3600)
    assert gone.warnings == ("expired: nothing more can be claimed",) and gone.seconds_left == -1


def test_a_clients_line_counts_what_the_freelancer_does_not_hold_yet(clients, freelancer, make_payer, lib_escrow):
    payer = make_payer(clients[0])
    channel = payer.open_channel(freelancer.address, 10**17)
    payer.set_inbox(channel.id, "http://127.0.0.1:9")  # nothing listens there: the payments stay queued
    payer.pay(channel.id, MILLI, task="a")
    payer.pay(channel.id, MILLI, task="b")
    (line,) = channel_lines(payer.store, overview(payer.store, [lib_escrow]), now=int(time.time()),
                            safety_margin=3600)
    assert (line.role, line.counterparty, line.paid, line.deposit) == ("payer", freelancer.address, 2 * MILLI, 10**17)
    assert (line.undelivered, line.acknowledged, line.warnings) == (2, 0, ())


def test_the_feed_lists_payments_newest_first_with_what_each_added(clients, freelancer, make_payer, payee):
    from micropay.dashboard_data import feed

    payer = make_payer(clients[0])
    channel = payer.open_channel(freelancer.address, 10**17)
    for n, price in enumerate((5, 3, 7)):
        payee.receive(payer.pay(channel.id, price * MILLI, task=f"t{n}"))
    items = feed(payee.store, freelancer.address)
    assert [(i.kind, i.who, i.amount, i.text) for i in items] == [
        ("payment", clients[0].address, 7 * MILLI, "'t2'"), ("payment", clients[0].address, 3 * MILLI, "'t1'"),
        ("payment", clients[0].address, 5 * MILLI, "'t0'")]
    assert len(feed(payee.store, freelancer.address, limit=2)) == 2
