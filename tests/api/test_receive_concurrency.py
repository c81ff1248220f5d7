"""Payee.receive when other writers share the store: another connection to the same file (a
second process, a watcher) and several threads. The cached channel tip must never hide them."""

import threading
from datetime import timedelta

import pytest

from micropay import Payee
from micropay.errors import ChannelFinal, StaleVoucher


@pytest.fixture
def channel(clients, freelancer, make_payer):
    payer = make_payer(clients[0])
    return payer, payer.open_channel(freelancer.address, 10**16, expires_in=timedelta(days=7))


@pytest.fixture
def second_payee(lib_escrow, freelancer, payee, store_at):
    """Another connection to the freelancer's store, as a second process would have."""
    return Payee(lib_escrow, freelancer, store_at("freelancer"))


def test_receives_through_two_connections_on_one_file_continue_each_other(channel, payee, second_payee):
    payer, ch = channel
    payments = [payer.pay(ch.id, 10 + n, task=f"t{n}") for n in range(4)]
    payee.receive(payments[0])
    second_payee.receive(payments[1])  # the first payee's cached tip is now behind the file
    payee.receive(payments[2])
    second_payee.receive(payments[3])
    for p in (payee, second_payee):
        assert [e.receipt.task_id for e in p.ledger(ch.id)] == ["t0", "t1", "t2", "t3"]
        assert p.store.best_voucher(ch.id)[0].amount == sum(10 + n for n in range(4))
    with pytest.raises(StaleVoucher):
        payee.receive(payments[2])


def test_a_close_recorded_by_another_connection_stops_receiving(channel, payee, second_payee):
    payer, ch = channel
    payee.receive(payer.pay(ch.id, 10, task="paid"))
    late = payer.pay(ch.id, 5, task="after close")
    second_payee.close(ch.id)  # a watcher in another process closes the channel
    with pytest.raises(ChannelFinal):
        payee.receive(late)


def test_many_clients_paying_at_once_lose_nothing(clients, freelancer, make_payer, payee, store_at):
    payers = [make_payer(c) for c in clients]
    channels = [p.open_channel(freelancer.address, 10**16) for p in payers]
    streams = [[p.pay(ch.id, 100 + n, task=f"{i}-{n}") for n in range(15)]
               for i, (p, ch) in enumerate(zip(payers, channels, strict=False))]
    errors = []

    def send(stream):
        try:
            for payment in stream:
                payee.receive(payment)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(s,)) for s in streams]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    fresh = Payee(payee.escrow, payee.account, store_at("freelancer"))
    for i, ch in enumerate(channels):
        assert fresh.store.best_voucher(ch.id)[0].amount == sum(100 + n for n in range(15))
        assert [e.receipt.task_id for e in fresh.ledger(ch.id)] == [f"{i}-{n}" for n in range(15)]
