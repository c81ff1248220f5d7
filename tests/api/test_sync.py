"""An interrupted open leaves a trace, and `sync` rebuilds a store's channels from the chain."""

from datetime import timedelta

import pytest
from eth_account import Account

from micropay import ChannelError, InsufficientFunds, Payer, StoreError, TransactionPending, VoucherStore
from micropay.sync import sync


def test_an_open_interrupted_after_sending_is_recorded_and_sync_finds_it(lib_escrow, clients, freelancer,
                                                                         make_payer, monkeypatch):
    payer = make_payer(clients[0])
    pipeline = type(lib_escrow.pipeline)
    wait = pipeline.wait

    def lost_while_waiting(self, tx_hash, **kwargs):  # the transaction is mined; the wait for it is not
        wait(self, tx_hash, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "wait", lost_while_waiting)
    with pytest.raises(KeyboardInterrupt):
        payer.open_channel(freelancer.address, 10**16)
    monkeypatch.undo()
    (recorded,) = payer.store.channels()
    assert not recorded.seen_on_chain and lib_escrow.channel(recorded.key).deposit == 10**16  # funded on chain
    with pytest.raises(ChannelError, match="check it on chain before paying"):
        payer.pay(recorded.id, 1, task="too early")
    report = sync(payer.store, lib_escrow, payer.address)
    assert report.added == () and [r.id for r in report.updated] == [recorded.id]
    assert payer.pay(recorded.id, 5, task="now it is known").amount == 5


def test_an_open_the_node_refused_leaves_nothing_behind(lib_escrow, freelancer, make_payer, fund, monkeypatch):
    payer = make_payer(fund(Account.create(), wei=10**17))

    def refused(self, *args, **kwargs):
        raise InsufficientFunds("not enough ETH for the value plus gas")

    monkeypatch.setattr(type(lib_escrow.pipeline), "send", refused)
    with pytest.raises(InsufficientFunds):
        payer.open_channel(freelancer.address, 10**16)
    assert payer.store.channels() == []


def test_an_open_whose_outcome_is_unknown_keeps_its_record(lib_escrow, freelancer, make_payer, clients, monkeypatch):
    payer = make_payer(clients[1])

    def unknown(self, *args, **kwargs):
        raise TransactionPending("the connection failed", tx_hash=b"\x01" * 32)

    monkeypatch.setattr(type(lib_escrow.pipeline), "send", unknown)
    with pytest.raises(TransactionPending):
        payer.open_channel(freelancer.address, 10**16)
    assert len(payer.store.channels()) == 1


def test_sync_rebuilds_a_lost_store_for_both_sides(lib_escrow, clients, freelancer, make_payer, payee, store_at):
    payer = make_payer(clients[2])
    channel = payer.open_channel(freelancer.address, 10**16, expires_in=timedelta(days=3))
    payee.receive(payer.pay(channel.id, 4, task="paid before the loss"))
    bundle = payee.store.export()
    client_store, freelancer_store = VoucherStore(store_at("c2")), VoucherStore(store_at("f2"))
    (as_payer,) = sync(client_store, lib_escrow, payer.address).added
    (as_payee,) = sync(freelancer_store, lib_escrow, freelancer.address).added
    assert (as_payer.role, as_payee.role) == ("payer", "payee") and as_payer.key == as_payee.key == channel.key
    assert (as_payer.deposit, as_payer.expiry) == (10**16, channel.expiry)
    assert freelancer_store.import_(bundle) == 1  # the vouchers come back from the export
    assert freelancer_store.best_voucher(as_payee.ref)[0].amount == 4
    assert sync(freelancer_store, lib_escrow, freelancer.address).added == ()  # nothing twice
    # The client's rebuilt channel has no ledger: signing on it could repeat an amount.
    rebuilt = Payer(lib_escrow, clients[2], client_store)
    with pytest.raises(StoreError, match="could sign an amount twice"):
        rebuilt.pay(channel.id, 1, task="after the loss")
    rebuilt.request_close(channel.id)  # but the deposit is never stuck
    assert lib_escrow.channel(channel.key).expiry < channel.expiry


def test_sync_rebuilds_a_channel_with_its_voucher_signer(lib_escrow, clients, freelancer, store_at):
    hot = Account.create()
    payer = Payer(lib_escrow, clients[0], store_at("c"), signer=hot)
    channel = payer.open_channel(freelancer.address, 10**16)
    (as_payer,) = sync(VoucherStore(store_at("lost-client")), lib_escrow, clients[0].address).added
    (as_payee,) = sync(VoucherStore(store_at("lost-freelancer")), lib_escrow, freelancer.address).added
    assert as_payer.key == as_payee.key == channel.key and as_payer.key.voucher_signer == hot.address
    assert VoucherStore(store_at("lost-client")).channel(channel.ref).key.signer == hot.address  # as stored
