"""Payee.watch: claims when the payer starts closing, on confirmed blocks, and resumes."""

from datetime import timedelta

import pytest
from eth_account import Account

from micropay import Payee
from micropay.errors import InsufficientFunds


def test_watcher_claims_inside_the_window_after_request_close(w3, tester, lib_escrow, clients, freelancer,
                                                              make_payer, payee):
    payer = make_payer(clients[0])
    channel = payer.open_channel(freelancer.address, 10**16, window=timedelta(hours=2))
    payee.receive(payer.pay(channel.id, 3 * 10**15, task="unpaid work"))
    assert payee.watch(rounds=1, confirmations=2) == []  # nothing to do yet
    record = payer.request_close(channel.id)
    tester.time_travel(lib_escrow.now() + 600)  # ten minutes later
    assert payee.watch_once(confirmations=2) == []  # the request is not yet 2 blocks deep
    tester.mine_blocks(2)
    (settlement,) = payee.watch_once(confirmations=2)
    assert settlement.channels == (channel.id,) and settlement.gross == 3 * 10**15
    mined_at = w3.eth.get_block(w3.eth.get_transaction_receipt(settlement.tx_hash).blockNumber).timestamp
    assert mined_at <= record.expiry  # inside the challenge window
    assert lib_escrow.channel(channel.id).claimed == 3 * 10**15
    assert payee.watch_once(confirmations=2) == []  # resumes from its cursor: nothing twice


def test_watcher_claims_when_expiry_nears(tester, lib_escrow, clients, freelancer, make_payer, payee):
    payer = make_payer(clients[1])
    channel = payer.open_channel(freelancer.address, 10**16, expires_in=timedelta(hours=30))
    payee.receive(payer.pay(channel.id, 10**15, task="x"))
    tester.time_travel(lib_escrow.now() + 29 * 3600)  # within the 1 hour margin of expiry
    tester.mine_blocks(3)
    (settlement,) = payee.watch_once(confirmations=2, margin=timedelta(hours=2))
    assert settlement.gross == 10**15


def test_watcher_refuses_to_start_without_gas_money(lib_escrow, tmp_path):
    broke = Payee(lib_escrow, Account.create(), tmp_path / "broke.db")
    with pytest.raises(InsufficientFunds, match="Fund it"):
        broke.watch(rounds=1)
