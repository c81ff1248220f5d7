"""GroupCommit: payments submitted together share one durable commit, each judged on its own."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from micropay import Payee
from micropay.errors import InsufficientDeposit, LedgerGap, StaleVoucher, StoreError
from micropay.group_commit import GroupCommit
from micropay.ledger import TaskReceipt, extend_entries
from micropay.payment import Payment
from micropay.voucher import sign_voucher


@pytest.fixture
def channels(clients, freelancer, make_payer):
    payers = [make_payer(c) for c in clients]
    return [(p, p.open_channel(freelancer.address, 10**16)) for p in payers]


def test_a_burst_from_many_threads_is_stored_whole_in_fewer_commits_than_payments(channels, payee, store_at):
    streams = [[payer.pay(ch.id, 100 + n, task=f"{i}-{n}") for n in range(40)]
               for i, (payer, ch) in enumerate(channels)]
    errors: list[BaseException] = []
    with GroupCommit(payee.receiver) as group:
        def send(stream):
            try:
                for payment in stream:
                    group.receive(payment)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        # One thread per channel keeps each channel's order.
        threads = [threading.Thread(target=send, args=(s,)) for s in streams]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert group.stored == 120
        assert group.commits <= 120
    reopened = Payee(payee.escrow, payee.account, store_at("freelancer"))
    for i, (_payer, ch) in enumerate(channels):
        assert [e.receipt.task_id for e in reopened.ledger(ch.id)] == [f"{i}-{n}" for n in range(40)]
        assert reopened.store.best_voucher(ch.id)[0].amount == sum(100 + n for n in range(40))


def test_one_refused_payment_in_a_batch_leaves_the_others_stored(channels, payee):
    (payer, ch), (other_payer, other) = channels[0], channels[1]
    first, second = payer.pay(ch.id, 10, task="a"), payer.pay(ch.id, 20, task="b")
    gap = other_payer.pay(other.id, 5, task="lost")
    gap = other_payer.pay(other.id, 5, task="after the lost one")  # its first_index is 1: a gap
    group = GroupCommit(payee.receiver)
    futures = [group.submit(payee.receiver.check(p)) for p in (first, gap, second)]
    group.start()  # everything was queued before the writer runs: one batch, one commit
    group.close()
    assert (group.commits, group.stored) == (1, 2)
    assert futures[0].result().cumulative == 10
    with pytest.raises(LedgerGap) as refused:
        futures[1].result()
    assert refused.value.have == 0
    assert futures[2].result().cumulative == 30
    assert [e.receipt.task_id for e in payee.ledger(ch.id)] == ["a", "b"]
    assert payee.store.find_channel(payee.ref(other.id)) is None  # the refused payment left nothing


def test_two_payments_on_one_channel_in_one_batch_are_judged_in_order(channels, payee):
    payer, ch = channels[0]
    payments = [payer.pay(ch.id, 10**15, task=f"t{n}") for n in range(3)]
    group = GroupCommit(payee.receiver)
    futures = [group.submit(payee.receiver.check(p)) for p in (payments[1], payments[0], payments[2])]
    group.start()
    group.close()
    assert group.commits == 1
    with pytest.raises(LedgerGap):
        futures[0].result()  # t1 before t0: the store holds nothing yet
    assert futures[1].result().added == 10**15
    with pytest.raises(LedgerGap):
        futures[2].result()  # t2 after t0: t1 is missing
    assert [e.receipt.task_id for e in payee.ledger(ch.id)] == ["t0"]
    # The tip the batch declared is what the next receive judges by: t1 then t2 connect.
    for p in payments[1:]:
        payee.receive(p)
    with pytest.raises(StaleVoucher):
        payee.receive(payments[0])
    assert payee.store.best_voucher(ch.id)[0].amount == 3 * 10**15


def test_an_overdrawn_payment_is_refused_alone_and_a_closed_group_takes_nothing(channels, payee):
    (payer, ch), (other_payer, other) = channels[0], channels[1]
    ok = payer.pay(ch.id, 10**16 // 2, task="half")
    fine = other_payer.pay(other.id, 3, task="small")
    group = GroupCommit(payee.receiver)
    checked = [payee.receiver.check(ok)]
    group.start()
    assert group.submit(checked[0]).result().added == 10**16 // 2
    assert group.receive(ok).duplicate
    overdrawn = group.submit(payee.receiver.check(_overdrawn(ch, payer, payee)))
    stored = group.submit(payee.receiver.check(fine))
    with pytest.raises(InsufficientDeposit):
        overdrawn.result()
    assert stored.result().cumulative == 3
    group.close()
    with pytest.raises(StoreError):
        group.submit(payee.receiver.check(fine))
    assert [e.receipt.task_id for e in payee.ledger(ch.id)] == ["half"]


def _overdrawn(ch, payer, payee):
    """A payment signed by the channel's own signer for more than the deposit (the Payer refuses to)."""
    last = payee.ledger(ch.id)[-1]
    (entry,) = extend_entries(last, [TaskReceipt("too much", 10**16, b"\0" * 32, "")])
    voucher = sign_voucher(payer.signer, chain_id=ch.chain_id, escrow=ch.escrow, channel_id=ch.id,
                           amount=entry.total, ledger_root=entry.root)
    return Payment.of(voucher, (entry.receipt,), 1)


def test_the_async_twin_stores_like_the_blocking_one(channels, payee):
    payer, ch = channels[0]
    payments = [payer.pay(ch.id, 7, task=f"a{n}") for n in range(5)]

    async def run():
        with GroupCommit(payee.receiver) as group:
            return [await group.receive_async(p) for p in payments]

    results = asyncio.run(run())
    assert [r.cumulative for r in results] == [7, 14, 21, 28, 35]
    assert payee.store.best_voucher(ch.id)[0].amount == 35


def test_payments_ready_in_one_turn_of_the_loop_share_one_commit(channels, payee):
    firsts = [payer.pay(ch.id, 1, task="first") for payer, ch in channels]
    seconds = [payer.pay(ch.id, 2, task="second") for payer, ch in channels]

    async def run():
        with GroupCommit(payee.receiver) as group:
            for payment in firsts:  # first contact reads the chain (in a thread): one at a time
                await group.receive_async(payment)
            before = group.commits
            results = await asyncio.gather(*(group.receive_async(p) for p in seconds))
            return results, group.commits - before

    results, commits = asyncio.run(run())
    assert [r.cumulative for r in results] == [3] * len(channels)
    if payee.store.database.remote:  # the writer thread batches what is queued when it wakes: the first may go alone
        assert commits <= 2 < len(channels)
    else:
        assert commits == 1


def test_checkpoints_in_the_background_copy_the_log_into_the_file(tmp_path):
    from micropay import VoucherStore

    def fill(store):
        for batch in range(5):
            with store.transaction() as tx:
                for n in range(4000):
                    tx.set_cursor(f"cursor {batch} {n}", n)

    quiet, busy = VoucherStore(tmp_path / "quiet.db"), VoucherStore(tmp_path / "busy.db")
    quiet.checkpoint_in_background(interval=3600)  # never runs: SQLite's own checkpoints are off too
    busy.checkpoint_in_background(interval=0.01)
    sizes = {}
    for store in (quiet, busy):
        start = store.path.stat().st_size
        fill(store)
        time.sleep(0.2)
        sizes[store] = store.path.stat().st_size - start
    assert sizes[quiet] == 0 < sizes[busy]
    quiet.close()
    busy.close()


def test_a_batchs_tips_read_at_once_equal_each_tip_read_alone(channels, payee, make_payer, clients, freelancer):
    """What a group commit on PostgreSQL reads for a whole batch in two statements is, channel by
    channel, what the receive path reads one at a time: row, best voucher and last ledger entry."""
    for n, (payer, channel) in enumerate(channels):
        for k in range(n + 1):  # 1, 2, 3 payments: different ledgers and best vouchers
            payee.receive(payer.pay(channel.id, 7 + k, task=f"{n}-{k}"))
    refs = [payee.ref(channel.id) for _, channel in channels]
    unpaid = payee.receiver.adopt(make_payer(clients[0], "unpaid").open_channel(freelancer.address, 10**15).id).ref
    unknown = refs[0].__class__(refs[0].chain_id, refs[0].escrow, b"\x07" * 32)
    with payee.store.transaction() as tx:
        together = tx.read_tips([*refs, unpaid, unknown])
        alone = {ref.uid: tx.read_tip(ref) for ref in [*refs, unpaid]}
    assert together == alone
    assert together[unpaid.uid].best is None and together[unpaid.uid].last is None
    assert [together[ref.uid].last.total for ref in refs] == [7, 7 + 8, 7 + 8 + 9]
