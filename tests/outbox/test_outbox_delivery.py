"""The client's outbox through the library, against real HTTP inboxes on loopback: a payment on a
channel with an inbox is held with a verified acknowledgment; a failed delivery stays queued and
is retried in order; a ledger gap triggers the resend by itself; a stale answer is judged by its
acknowledgment; a forged or broken answer is never taken for an acknowledgment."""

from __future__ import annotations

import pytest

import micropay.outbox
from micropay.acknowledgment import Acknowledgment
from micropay.errors import MicropayValueError
from micropay.inbox_client import inbox_url
from micropay.outbox import latest_payment


def acknowledgment_of(payer, record, amount):
    """The acknowledgment stored with the payment of ``amount``, rebuilt from its row."""
    row = payer.outbox.record(record.ref, amount)
    assert row is not None and row.state == "held"
    return Acknowledgment(record.chain_id, record.escrow, record.id, row.ack_amount, row.ack_root, row.ack_signature)


def held_tasks(payee, record):
    return [entry.receipt.task_id for entry in payee.ledger(record.id)]


def test_a_payment_on_a_channel_with_an_inbox_is_held_and_its_acknowledgment_stored(payer, payee, channel, inbox):
    payer.set_inbox(channel.id, inbox.url)
    payment = payer.pay(channel.id, 1000, task="logo")
    row = payer.outbox.record(channel.ref, payment.amount)
    assert (row.state, row.attempts, row.last_error, row.ack_amount) == ("held", 1, None, 1000)
    ack = acknowledgment_of(payer, channel, 1000)
    ack.verify(payee.address, chain_id=channel.chain_id, escrow=channel.escrow, channel_id=channel.id)
    assert ack.ledger_root == payment.voucher.ledger_root
    assert held_tasks(payee, channel) == ["logo"] and payee.store.best_voucher(channel.ref)[0] == payment.voucher
    assert payer.outbox.queued() == [] and payer.outbox.backlog() == []
    assert payer.deliver() == []  # nothing is posted twice


def test_without_an_inbox_nothing_is_queued_and_deliver_false_only_queues(payer, payee, channel, inbox):
    payer.pay(channel.id, 10, task="by hand")
    assert payer.outbox.record(channel.ref, 10) is None and payer.store.deliveries() == []
    payer.set_inbox(channel.id, inbox.url)
    payer.pay(channel.id, 20, task="later", deliver=False)
    assert [(r.amount, r.state, r.attempts) for r in payer.store.deliveries()] == [(30, "queued", 0)]
    assert held_tasks(payee, channel) == []


def test_server_down_two_payments_queue_then_both_arrive_once_in_order(payer, payee, channel, double):
    payer.set_inbox(channel.id, double.url)  # nothing listens there yet
    first = payer.pay(channel.id, 100, task="first")
    second = payer.pay(channel.id, 200, task="second")  # retries the first, which fails again: the second waits
    rows = payer.outbox.queued(channel.ref)
    assert [(r.amount, r.state, r.attempts) for r in rows] == [(100, "queued", 2), (300, "queued", 0)]
    assert "cannot reach the inbox at" in rows[0].last_error and rows[1].last_error is None
    (backlog,) = payer.outbox.backlog()
    assert (backlog.count, backlog.amount, backlog.inbox) == (2, 300, double.url)
    assert "cannot reach" in backlog.last_error

    double.start()
    results = payer.deliver()
    assert [(r.amount, r.outcome, r.error) for r in results] == [(100, "held", None), (300, "held", None)]
    assert [r.acknowledgment.amount for r in results] == [300, 300]
    # One request: the latest voucher with both receipts, in order (vouchers are cumulative).
    assert double.posted == [(300, 0, ("first", "second"))]
    assert held_tasks(payee, channel) == ["first", "second"]
    assert payee.store.best_voucher(channel.ref)[0] == second.voucher and first.amount == 100
    assert payer.outbox.queued() == [] and payer.deliver() == []
    assert len(double.posted) == 1


def test_a_long_backlog_goes_in_requests_of_at_most_max_per_post(payer, payee, channel, double, monkeypatch):
    monkeypatch.setattr(micropay.outbox, "MAX_PER_POST", 2)
    payer.set_inbox(channel.id, double.url)
    for n in range(5):
        payer.pay(channel.id, 1, task=f"t{n}", deliver=False)
    double.start()
    assert {r.outcome for r in payer.deliver()} == {"held"}
    assert double.posted == [(2, 0, ("t0", "t1")), (4, 2, ("t2", "t3")), (5, 4, ("t4",))]
    assert held_tasks(payee, channel) == [f"t{n}" for n in range(5)]


def test_a_ledger_gap_triggers_the_resend_by_itself(payer, payee, channel, double):
    double.start()
    payer.pay(channel.id, 1, task="a")  # before the inbox was known: the freelancer never got these
    payer.pay(channel.id, 2, task="b")
    payer.set_inbox(channel.id, double.url)
    payer.pay(channel.id, 3, task="c")
    row = payer.outbox.record(channel.ref, 6)
    assert row.state == "held" and row.ack_amount == 6
    assert double.posted == [(6, 2, ("c",)), (6, 0, ("a", "b", "c"))]  # the gap, then the resend from 0
    assert held_tasks(payee, channel) == ["a", "b", "c"]


def test_a_backlog_overlapping_what_the_freelancer_holds_adds_only_the_rest(payer, payee, channel, double):
    payer.set_inbox(channel.id, double.url)
    payer.pay(channel.id, 5, task="a", deliver=False)
    payer.pay(channel.id, 5, task="b", deliver=False)
    payee.receive(latest_payment(payer.store, channel))  # the freelancer got the latest, by hand
    payer.pay(channel.id, 5, task="c", deliver=False)
    double.start()
    results = payer.deliver(channel.id)
    assert [(r.amount, r.outcome, r.acknowledgment.amount) for r in results] == [
        (5, "held", 15), (10, "held", 15), (15, "held", 15)]
    assert double.posted == [(15, 0, ("a", "b", "c"))]
    assert held_tasks(payee, channel) == ["a", "b", "c"]
    assert [r.ack_amount for r in payer.store.deliveries(channel.ref)] == [15, 15, 15]


def test_a_stale_answer_is_judged_by_its_acknowledgment(payer, payee, channel, double):
    payer.set_inbox(channel.id, double.url)
    payer.pay(channel.id, 7, task="a")  # down: queued
    payer.set_inbox(channel.id, None)
    payer.pay(channel.id, 8, task="b")  # no inbox meanwhile: not queued, sent by hand
    payee.receive(latest_payment(payer.store, channel))  # holds 15 already
    payer.set_inbox(channel.id, double.url)
    double.start()
    double.lie = "other_root"  # the stale answer's acknowledgment names a ledger the client never signed
    (failed,) = payer.deliver()
    assert failed.outcome == "failed" and "never signed" in failed.error
    double.lie = None
    assert [(r.outcome, r.acknowledgment.amount) for r in payer.deliver()] == [("held", 15)]
    assert double.posted == [(7, 0, ("a",)), (7, 0, ("a",))]  # stale both times: 15 is held


@pytest.mark.parametrize(("lie", "reason"), [
    ("other_key", "not by the payee"),
    ("lower_amount", "less than the payment"),
    ("higher_amount", "never signed"),
    ("other_root", "never signed"),
    ("garbage", "not valid JSON"),
    ("huge", "larger than 1,048,576 bytes"),
    ("rate_limited", "HTTP 429, rate_limited: too many requests"),
    ("unavailable", "HTTP 503"),
])
def test_a_forged_or_broken_answer_leaves_the_payment_queued(payer, payee, channel, double, lie, reason):
    double.lie = lie
    double.start()
    payer.set_inbox(channel.id, double.url)
    payment = payer.pay(channel.id, 1000, task="logo")  # never raises for the inbox's answer
    row = payer.outbox.record(channel.ref, payment.amount)
    assert (row.state, row.attempts, row.ack_signature) == ("queued", 1, None)
    assert reason in row.last_error, row.last_error
    (result,) = payer.deliver()
    assert result.outcome == "failed" and payer.outbox.record(channel.ref, 1000).attempts == 2
    double.lie = None
    (result,) = payer.deliver()
    assert result.outcome == "held" and result.acknowledgment.signer == payee.address


def test_one_channel_failing_does_not_stop_another(payer, payee, channel, double, inbox, freelancer_key):
    other = payer.open_channel(freelancer_key.address, 10**15)
    payer.set_inbox(channel.id, double.url)  # down
    payer.set_inbox(other.id, inbox.url)
    payer.pay(channel.id, 1, task="down", deliver=False)
    payer.pay(other.id, 2, task="up", deliver=False)
    results = payer.deliver()
    assert [(r.channel, r.outcome) for r in results] == [(channel.ref, "failed"), (other.ref, "held")]
    assert held_tasks(payee, other) == ["up"]


def test_inbox_urls_are_checked(payer, channel):
    for bad in ("ftp://example.org", "javascript:alert(1)", "example.org/inbox", "https://user:pw@example.org",
                "https://example.org/?q=1", "https://" + "a" * 600 + ".org", "https://exa mple.org", "http://",
                "https://example.org:99999", 'https://example.org/"a"', 42):
        with pytest.raises(MicropayValueError):
            inbox_url(bad)
        with pytest.raises(MicropayValueError):
            payer.set_inbox(channel.id, bad)
    assert payer.store.inbox(channel.ref) is None
    assert inbox_url(" https://inbox.example.org/alice/ ") == "https://inbox.example.org/alice"
    assert inbox_url("http://127.0.0.1:8402/v1/") == "http://127.0.0.1:8402"  # as `micropay serve` prints it
    payer.set_inbox(channel.id, "http://127.0.0.1:8000/")
    assert payer.store.inbox(channel.ref) == "http://127.0.0.1:8000"
    payer.set_inbox(channel.id, None)
    assert payer.store.inbox(channel.ref) is None
