"""Two `micropay serve` processes for one freelancer on one PostgreSQL store, each receiving the same
payments at the same moment (many clients and channels): each payment is stored once, both answer
200 with the acknowledgment of the same amount, and every channel's ledger stays in order.

Also, on the library's group commit: two inboxes whose batches meet the same new channels in
opposite orders must not deadlock each other (a deadlock would answer 503 to a whole batch)."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
from pghelpers import AMOUNT, Served, home_with_key

from helpers import signed_payments
from micropay import Payee
from micropay.acknowledgment import Acknowledgment
from micropay.group_commit import GroupCommit
from micropay.store import VoucherStore

PAYMENTS = 20  # per channel
CLIENTS = 4  # two channels each


def post_in_step(url: str, texts: list[str], barrier: threading.Barrier, answers: list[tuple[int, dict]]) -> None:
    """Post each payment once both servers' threads of this channel are ready to post it."""
    with httpx.Client(timeout=60) as client:
        for text in texts:
            barrier.wait()
            answer = client.post(f"{url}/v1/payments", json={"payment": text})
            answers.append((answer.status_code, answer.json()))


def test_two_servers_receiving_the_same_payments_at_once_store_each_once_and_both_acknowledge(
        pg_world, pg_store, tmp_path):
    url = pg_store()
    home = tmp_path / "freelancer"
    freelancer = home_with_key(pg_world, home)
    with ThreadPoolExecutor(2) as pool:  # start both at once (each takes a couple of seconds)
        servers = list(pool.map(lambda _: Served(pg_world, home, url), range(2)))
    try:
        payers = [pg_world.payer(tmp_path / f"client{n}.db") for n in range(CLIENTS)]
        channels = [(p, pg_world.open(p, freelancer.address)) for p in payers for _ in range(2)]
        texts = [signed_payments(p, ch, PAYMENTS) for p, ch in channels]
        answers = {(c, s): [] for c in range(len(channels)) for s in range(2)}
        # First contact one channel at a time (both servers at once), so that no batch holds two new
        # channels (see the group-commit test below); then every channel at once.
        for c, channel_texts in enumerate(texts):
            barrier = threading.Barrier(2)
            step = [threading.Thread(target=post_in_step, args=(servers[s].url, channel_texts[:1], barrier,
                                                                answers[c, s])) for s in range(2)]
            for thread in step:
                thread.start()
            for thread in step:
                thread.join(60)
        threads = []
        for c, channel_texts in enumerate(texts):
            barrier = threading.Barrier(2)
            threads += [threading.Thread(target=post_in_step, args=(servers[s].url, channel_texts[1:], barrier,
                                                                    answers[c, s])) for s in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        codes = [server.stop() for server in servers]
    assert codes == [0, 0]

    escrow = pg_world.escrow
    stored_by = [0, 0]
    for c, (_, channel) in enumerate(channels):
        first, second = answers[c, 0], answers[c, 1]
        assert len(first) == len(second) == PAYMENTS
        for index, ((code0, body0), (code1, body1)) in enumerate(zip(first, second, strict=True)):
            assert (code0, code1) == (200, 200), (body0, body1)
            acks = [Acknowledgment.from_dict(body["acknowledgment"]) for body in (body0, body1)]
            for ack in acks:
                ack.verify(freelancer.address, chain_id=escrow.chain_id, escrow=escrow.address,
                           channel_id=channel.id)
            assert acks[0].amount == acks[1].amount == AMOUNT * (index + 1)
            assert acks[0].ledger_root == acks[1].ledger_root
            # Exactly one of the two stored it; the other found it stored (the same answer, duplicate).
            new = [not body["duplicate"] for body in (body0, body1)]
            assert sorted(new) == [False, True], (index, body0, body1)
            stored_by[new.index(True)] += 1
    assert all(stored_by), stored_by  # both processes stored some: they really raced

    with VoucherStore(url, owner=freelancer.address) as store:
        for _, channel in channels:
            ledger = store.ledger(channel.ref)
            assert [e.receipt.task_id for e in ledger] == [f"t{n}" for n in range(PAYMENTS)]
            assert [e.total for e in ledger] == [AMOUNT * (n + 1) for n in range(PAYMENTS)]
            assert store.voucher_count(channel.ref) == PAYMENTS
            assert [count for count, _ in store.voucher_times(channel.ref)] == list(range(1, PAYMENTS + 1))
    with psycopg.connect(url) as db:  # nothing else in the database: no second copy under another key
        counts = db.execute("SELECT (SELECT count(*) FROM channels), (SELECT count(*) FROM vouchers), "
                            "(SELECT count(*) FROM receipts)").fetchone()
    assert counts == (len(channels), len(channels) * PAYMENTS, len(channels) * PAYMENTS)


def test_group_commits_meeting_the_same_new_channels_in_opposite_orders_do_not_deadlock(pg_world, pg_store,
                                                                                         tmp_path):
    """Two inboxes (two stores: two processes' connections) each store a batch with the first
    payments of two channels neither holds yet, in opposite orders, the first of each stored before
    the second begins (the barrier, given up after a while if the other never comes). Locking (and
    inserting) in one order makes one wait for the other; inserting new channels in payment order
    makes each wait for the other's insert: a deadlock, one batch failed (503 to its payments)."""
    url = pg_store()
    freelancer = pg_world.fund()
    payer = pg_world.payer(tmp_path / "client.db")
    channels = [pg_world.open(payer, freelancer.address) for _ in range(2)]
    first = [signed_payments(payer, channel, 1)[0] for channel in channels]
    payees = [Payee(pg_world.escrow, freelancer.address, url) for _ in range(2)]
    barrier = threading.Barrier(2)

    def meet(tx, received) -> None:
        # Both have stored their batch's first payment, a new channel each: on to the second. (If
        # the other never comes, it is waiting for this transaction, as ordered locking would: go on.)
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=3)

    groups, futures = [], []
    for payee, order in zip(payees, ([0, 1], [1, 0]), strict=True):
        group = GroupCommit(payee.receiver)
        checked = [payee.receiver.check(first[n]) for n in order]  # first contact: read from the chain
        futures.append([group.submit(checked[0], then=meet), group.submit(checked[1])])  # one batch
        groups.append(group)
    try:
        for group in groups:
            group.start()
        outcomes = [[f.exception(60) or f.result() for f in pair] for pair in futures]
    finally:
        for group in groups:
            group.close(60)
        for payee in payees:
            payee.store.close()
    failures = [str(o).split("\n")[0][-80:] for pair in outcomes for o in pair if isinstance(o, BaseException)]
    assert not failures, failures  # e.g. StoreError: … refused a write: deadlock detected
    assert sorted(o.duplicate for pair in outcomes for o in pair) == [False, False, True, True]
    with VoucherStore(url, owner=freelancer.address) as store:
        assert sorted(store.voucher_count(c.ref) for c in channels) == [1, 1]
