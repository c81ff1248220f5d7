"""Payer: pay within the deposit, never sign a cumulative amount twice, exit safely."""

import threading
from datetime import timedelta

import pytest
from eth_account import Account

from micropay import Payer
from micropay.errors import ChannelNotExpired, InsufficientDeposit, MicropayValueError, NotParticipant


def test_pay_beyond_deposit_says_how_much_to_top_up(clients, freelancer, make_payer):
    payer = make_payer(clients[0])
    channel = payer.open_channel(freelancer.address, 1000)
    payer.pay(channel.id, 600, task="a")
    issued_before = payer.store.channel(channel.id).issued
    with pytest.raises(InsufficientDeposit, match="top up at least 100") as info:
        payer.pay(channel.id, 500, task="b")
    assert info.value.shortfall == 100
    assert payer.store.channel(channel.id).issued == issued_before  # nothing was signed or stored
    payer.top_up(channel.id, 100)
    assert payer.pay(channel.id, 500, task="b").amount == 1100


def test_concurrent_payments_never_reuse_a_cumulative_amount(clients, freelancer, make_payer):
    payer = make_payer(clients[1])
    channel = payer.open_channel(freelancer.address, 10**15)
    amounts, errors = [], []

    def pay_many(worker):
        for n in range(25):
            try:
                amounts.append(payer.pay(channel.id, 1 + worker, task=f"w{worker}-{n}").amount)
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

    threads = [threading.Thread(target=pay_many, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(amounts) == len(set(amounts)) == 100
    assert max(amounts) == sum(25 * (1 + w) for w in range(4)) == payer.store.channel(channel.id).issued
    assert payer.store.voucher_count(channel.id) == 100


def test_two_payer_objects_on_one_store_take_turns(lib_escrow, clients, freelancer, store_at):
    first = Payer(lib_escrow, clients[2], store_at("shared"))
    second = Payer(lib_escrow, clients[2], store_at("shared"))  # a second process would look the same
    channel = first.open_channel(freelancer.address, 10**15)
    a = first.pay(channel.id, 10, task="from the first")
    b = second.pay(channel.id, 10, task="from the second")
    assert (a.amount, b.amount) == (10, 20) and b.first_index == 1


def test_request_close_then_reclaim_after_the_window(w3, tester, lib_escrow, clients, freelancer, make_payer, payee):
    payer = make_payer(clients[0])
    channel = payer.open_channel(freelancer.address, 10**16, window=timedelta(days=1))
    payee.receive(payer.pay(channel.id, 4 * 10**15, task="done"))
    payee.settle()
    record = payer.request_close(channel.id)
    assert record.expiry <= lib_escrow.now() + 86_400
    with pytest.raises(ChannelNotExpired):
        payer.reclaim(channel.id)
    tester.time_travel(record.expiry + 1)
    before = w3.eth.get_balance(payer.address)
    assert payer.reclaim(channel.id) == 6 * 10**15
    assert w3.eth.get_balance(payer.address) > before
    assert payer.channel(channel.id).closed


def test_payer_needs_a_local_account_and_its_own_channel(lib_escrow, clients, freelancer, make_payer):
    payer = make_payer(clients[0])
    channel = payer.open_channel(freelancer.address, 1000)
    stranger = Payer(lib_escrow, Account.create(), payer.store)
    with pytest.raises(NotParticipant):
        stranger.pay(channel.id, 1, task="not mine")


def test_a_payer_is_given_an_account_or_an_address_and_something_that_signs(lib_escrow, clients, store_at):
    with pytest.raises(MicropayValueError, match="signer="):
        Payer(lib_escrow, clients[0].address, store_at("x"))  # an address alone cannot sign
    with pytest.raises(MicropayValueError, match="address"):
        Payer(lib_escrow, "0x1234", store_at("x"), signer=Account.create())
    with pytest.raises(MicropayValueError, match="DigestSigner"):
        Payer(lib_escrow, clients[0], store_at("x"), signer=object())
    hot = Account.create()
    payer = Payer(None, clients[0].address.lower(), store_at("x"), signer=hot)
    assert (payer.address, payer.signer_address) == (clients[0].address, hot.address)


def test_a_node_managed_account_funds_and_a_hot_key_pays(lib_escrow, accounts, freelancer, payee, store_at):
    hot = Account.create()
    payer = Payer(lib_escrow, accounts[6], store_at("node"), signer=hot)  # the node holds the funding key
    channel = payer.open_channel(freelancer.address, 10**16)
    assert channel.key.payer == accounts[6] and channel.key.signer == hot.address
    assert payee.receive(payer.pay(channel.id, 5, task="t")).payer == accounts[6]
