"""Payee.receive: every check, and every rejection leaves the store unchanged (byte for byte, on SQLite)."""

from datetime import timedelta

import pytest
from eth_account import Account

from micropay import Escrow, Payee, Payment
from micropay.errors import (
    ChannelExpired,
    ChannelFinal,
    DomainMismatch,
    InsufficientDeposit,
    InvalidSignature,
    InvalidVoucher,
    LedgerGap,
    LedgerMismatch,
    MicropayError,
    NotParticipant,
    StaleVoucher,
    UnknownChannel,
    WindowTooShort,
)
from micropay.ledger import TaskReceipt, extend_root
from micropay.voucher import sign_voucher
from store_snapshot import store_state


@pytest.fixture
def setup(clients, freelancer, make_payer, payee):
    payer = make_payer(clients[0])
    channel = payer.open_channel(freelancer.address, 10**16, expires_in=timedelta(days=7))
    payee.receive(payer.pay(channel.id, 10**15, task="first"))
    return payer, channel


def rejected(payee, payment, error):
    before = store_state(payee.store)
    with pytest.raises(error) as info:
        payee.receive(payment)
    assert store_state(payee.store) == before, "a rejected payment changed the store"
    return info.value


def test_receive_reports_what_was_added(setup, payee):
    payer, channel = setup
    received = payee.receive(payer.pay(channel.id, 7, task="logo draft 2", note="blue"))
    assert (received.added, received.cumulative) == (7, 10**15 + 7)
    assert received.tasks == (TaskReceipt("logo draft 2", 7, note="blue"),)
    assert received.payer == payer.address and not received.duplicate


def test_same_payment_again_is_an_idempotent_no_op(setup, payee):
    payer, channel = setup
    payment = payer.pay(channel.id, 5, task="second")
    first = payee.receive(payment)
    before = store_state(payee.store)
    again = payee.receive(payment.encode())
    assert again.duplicate and (again.added, again.tasks, again.cumulative) == (first.added, first.tasks,
                                                                                  first.cumulative)
    assert store_state(payee.store) == before


def test_lower_voucher_is_stale(setup, payee):
    payer, channel = setup
    old = payer.pay(channel.id, 5, task="second")
    payer.pay(channel.id, 5, task="third")
    payee.receive(payer.resend(channel.id, since=1))  # the later payment overtakes the earlier one
    rejected(payee, old, StaleVoucher)


def test_missing_payment_is_a_gap_and_resend_fills_it(setup, payee):
    payer, channel = setup
    payer.pay(channel.id, 5, task="lost in the mail")
    latest = payer.pay(channel.id, 6, task="arrived")
    gap = rejected(payee, latest, LedgerGap)
    assert gap.have == 1
    received = payee.receive(payer.resend(channel.id, since=gap.have))
    assert [t.task_id for t in received.tasks] == ["lost in the mail", "arrived"] and received.added == 11


def test_bare_voucher_without_receipts_is_a_gap(setup, payee):
    payer, channel = setup
    rejected(payee, payer.pay(channel.id, 5, task="x").voucher.encode(), LedgerGap)


def test_wrong_signer_is_rejected(setup, payee, lib_escrow):
    payer, channel = setup
    real = payer.pay(channel.id, 5, task="second")
    forged = sign_voucher(Account.create(), chain_id=real.voucher.chain_id, escrow=real.voucher.escrow,
                          channel_id=real.channel_id,
                          amount=real.amount, ledger_root=real.voucher.ledger_root)
    rejected(payee, Payment.of(forged, real.receipts, real.first_index), InvalidSignature)


def test_receipts_that_do_not_match_the_root_are_rejected(setup, payee):
    payer, channel = setup
    real = payer.pay(channel.id, 5, task="second")
    lying = Payment.of(real.voucher, (TaskReceipt("something else", 5),), real.first_index)
    rejected(payee, lying, LedgerMismatch)


def test_rewriting_an_earlier_task_is_rejected(setup, payee):
    payer, channel = setup
    payee.receive(payer.pay(channel.id, 5, task="second"))
    latest = payer.pay(channel.id, 5, task="third")
    ledger = payer.ledger(channel.id)
    rewritten = (TaskReceipt("FIRST (edited)", ledger[0].receipt.amount), *tuple(e.receipt for e in ledger[1:]))
    rejected(payee, Payment.of(latest.voucher, rewritten, 0), LedgerMismatch)


def test_voucher_for_another_escrow_or_chain_is_rejected(setup, payee, w3, freelancer, fund):
    payer, channel = setup
    real = payer.pay(channel.id, 5, task="second")
    elsewhere = Payee(Escrow(w3, "0x" + "12" * 20), freelancer, payee.store)
    rejected(elsewhere, real, DomainMismatch)


def test_channel_paying_someone_else_is_rejected(setup, clients, make_payer, payee, fund):
    other = make_payer(clients[1])
    channel = other.open_channel(Account.create().address, 10**16)
    rejected(payee, other.pay(channel.id, 5, task="not yours"), NotParticipant)


def test_unknown_channel_is_rejected(setup, payee):
    payer, channel = setup
    real = payer.pay(channel.id, 5, task="second")
    ghost = sign_voucher(payer.account, chain_id=real.voucher.chain_id, escrow=real.voucher.escrow,
                         channel_id=b"\x99" * 32,
                         amount=5, ledger_root=extend_root(bytes(32), TaskReceipt("x", 5)))
    rejected(payee, Payment.of(ghost, (TaskReceipt("x", 5),), 0), UnknownChannel)


def test_voucher_above_the_deposit_is_rejected(setup, payee, lib_escrow):
    payer, channel = setup
    total = 10**16 + 1  # a dishonest payer signs more than it deposited
    receipt = TaskReceipt("too much", total - 10**15)
    root = extend_root(payer.ledger(channel.id)[-1].root, receipt)
    voucher = sign_voucher(payer.account, chain_id=lib_escrow.chain_id, escrow=lib_escrow.address,
                           channel_id=channel.id, amount=total, ledger_root=root)
    error = rejected(payee, Payment.of(voucher, (receipt,), 1), InsufficientDeposit)
    assert error.shortfall == 1


def test_channel_too_close_to_expiry_is_rejected(clients, freelancer, make_payer, lib_escrow, store_at):
    payer = make_payer(clients[0])
    channel = payer.open_channel(freelancer.address, 10**16, expires_in=timedelta(hours=2))
    careful = Payee(lib_escrow, freelancer, store_at("careful"), safety_margin=timedelta(hours=3))
    error = rejected(careful, payer.pay(channel.id, 5, task="late"), ChannelExpired)
    assert "extend" in str(error)


def test_closed_channel_is_rejected(setup, payee, lib_escrow):
    payer, channel = setup
    late = payer.pay(channel.id, 5, task="after close")
    payee.close(channel.id)
    rejected(payee, late, ChannelFinal)


@pytest.mark.parametrize("text", ["", "hello", "mpp1", "mpv1", "mpp1aaaa", "0x1234", "mpp1" + "a" * 400])
def test_garbage_text_is_rejected(setup, payee, text):
    rejected(payee, text, InvalidVoucher)


def test_every_rejection_is_a_micropay_error(setup, payee):
    for value in (None, 42, b"bytes", {"a": 1}):
        error = rejected(payee, value, InvalidVoucher)
        assert isinstance(error, MicropayError)


def test_after_a_rejection_the_next_payment_is_judged_on_what_is_stored(setup, payee):
    payer, channel = setup
    real = payer.pay(channel.id, 5, task="second")
    rejected(payee, Payment.of(real.voucher, (TaskReceipt("something else", 5),), real.first_index), LedgerMismatch)
    rejected(payee, Payment.of(payer.pay(channel.id, 6, task="third").voucher, (), 2), LedgerGap)
    received = payee.receive(payer.resend(channel.id, since=1))
    assert [t.task_id for t in received.tasks] == ["second", "third"] and received.cumulative == 10**15 + 11
    assert [e.receipt.task_id for e in payee.ledger(channel.id)] == ["first", "second", "third"]


def test_a_channel_whose_window_is_below_the_payees_minimum_is_refused(make_payer, clients, freelancer, lib_escrow,
                                                                       store_at):
    payer = make_payer(clients[2])
    channel = payer.open_channel(freelancer.address, 10**16, window=timedelta(hours=2))
    payment = payer.pay(channel.id, 5, task="first")
    cautious = Payee(lib_escrow, freelancer, store_at("cautious"))  # default minimum: 24 hours
    before = store_state(cautious.store)
    with pytest.raises(WindowTooShort, match="2h00m, shorter than this payee's minimum of 24h") as info:
        cautious.receive(payment)
    assert (info.value.window, info.value.minimum) == (7200, 86_400)
    assert store_state(cautious.store) == before
    relaxed = Payee(lib_escrow, freelancer, store_at("relaxed"), min_window=timedelta(hours=1))
    assert relaxed.receive(payment).added == 5
