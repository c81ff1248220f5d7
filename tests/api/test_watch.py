"""Payee.watch: claims when the payer starts closing, on confirmed blocks, and resumes."""

from datetime import timedelta

import pytest
from eth_account import Account

from micropay import ETH, Payee
from micropay.errors import InsufficientFunds, TransactionError


def test_watcher_claims_inside_the_window_after_request_close(w3, tester, lib_escrow, clients, freelancer,
                                                              make_payer, payee):
    payer = make_payer(clients[0])
    channel = payer.open_channel(freelancer.address, 10**16, window=timedelta(days=1))
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


def test_watcher_refuses_to_start_without_gas_money(lib_escrow, store_at):
    broke = Payee(lib_escrow, Account.create(), store_at("broke"))
    with pytest.raises(InsufficientFunds, match="Fund it"):
        broke.watch(rounds=1)


def test_a_strangers_channel_cannot_stall_the_watcher(tester, lib_escrow, clients, freelancer, make_payer, payee,
                                                      fund):
    honest = make_payer(clients[0])
    channel = honest.open_channel(freelancer.address, 10**16)
    payee.receive(honest.pay(channel.id, 10**15, task="real work"))
    stranger = make_payer(fund(Account.create()), name="stranger")
    trap = stranger.open_channel(freelancer.address, 1)  # 1 wei to the freelancer, never paid
    stranger.request_close(trap.id)
    honest.request_close(channel.id)
    tester.mine_blocks(3)
    (settlement,) = payee.watch_once(confirmations=2)
    assert settlement.channels == (channel.id,) and settlement.gross == 10**15


def test_one_tokens_failed_claim_does_not_stop_the_others(tester, lib_escrow, clients, freelancer, make_payer, payee,
                                                          api_token, monkeypatch):
    payer = make_payer(clients[0])
    eth = payer.open_channel(freelancer.address, 10**16)
    usd = payer.open_channel(freelancer.address, 10**6, token=api_token.address)
    payee.receive(payer.pay(eth.id, 10**15, task="eth work"))
    payee.receive(payer.pay(usd.id, 10**5, task="token work"))
    payer.request_close(eth.id)
    payer.request_close(usd.id)
    tester.mine_blocks(3)
    claim_many = type(lib_escrow).claim_many

    def eth_claims_fail(self, sender, payee_address, token, *args, **kwargs):
        if token == ETH:
            raise TransactionError("the node is having a bad day")
        return claim_many(self, sender, payee_address, token, *args, **kwargs)

    monkeypatch.setattr(type(lib_escrow), "claim_many", eth_claims_fail)
    errors = []
    (settlement,) = payee.watch_once(confirmations=2, on_error=lambda what, exc: errors.append((what, str(exc))))
    assert settlement.channels == (usd.id,)
    assert errors == [(f"token {ETH}, 1 channel(s)", "the node is having a bad day")]
    monkeypatch.undo()
    (retried,) = payee.watch_once(confirmations=2)  # the cursor did not move past the failed claim
    assert retried.channels == (eth.id,)
    assert lib_escrow.channel(eth.key).claimed == 10**15 and lib_escrow.channel(usd.key).claimed == 10**5
