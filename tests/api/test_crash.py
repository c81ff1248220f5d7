"""kill -9 at random points: nothing acknowledged is lost, nothing signed is signed twice."""

import os
import random
import signal
import threading
import time

from crash_worker import run_payee, run_payer
from micropay import VoucherStore, verify_ledger

KILLS = 50


class Worker:
    """A forked child process running one crash_worker loop; its output lines are collected."""

    def __init__(self, target, *args) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child: run the loop until the parent kills it
            os.close(to_child_w)
            os.close(from_child_r)
            try:
                target(os.fdopen(to_child_r, "r"), os.fdopen(from_child_w, "w"), *args)
            finally:
                os._exit(1)
        os.close(to_child_r)
        os.close(from_child_w)
        self.stdin = os.fdopen(to_child_w, "w")
        self.stdout = os.fdopen(from_child_r, "r")
        assert self.stdout.readline().strip() == "READY"
        self.lines: list[list[str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.stdout:
            self.lines.append(line.split())

    def feed(self, texts: list[str]) -> None:
        def write() -> None:
            try:
                for text in texts:
                    self.stdin.write(text + "\n")
                    self.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                pass  # killed mid-stream: exactly what we are testing

        threading.Thread(target=write, daemon=True).start()

    def kill_after(self, seconds: float) -> list[list[str]]:
        time.sleep(seconds)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        self._reader.join(timeout=10)
        return self.lines


def test_payee_killed_50_times_never_loses_an_acknowledged_voucher(lib_escrow, clients, freelancer, make_payer,
                                                                   payee, store_at):
    payer = make_payer(clients[0])
    channel = payer.open_channel(freelancer.address, 10**16)
    payments = [payer.pay(channel.id, 1 + n % 7, task=f"task {n}") for n in range(1500)]
    payee.receive(payments[0])  # first contact reads the chain; afterwards the store's state is fresh
    location = store_at("freelancer")  # the payee's store: a path, or a PostgreSQL URL
    args = (location, lib_escrow.address, lib_escrow.chain_id, freelancer.address)
    rng = random.Random(1234)
    acked_max, next_index, total_acks = payments[0].amount, 1, 0
    for _ in range(KILLS):
        worker = Worker(run_payee, *args)
        worker.feed([p.encode() for p in payments[next_index:]])
        lines = worker.kill_after(rng.uniform(0.0, 0.06))
        acks = [int(line[1]) for line in lines if line[0] == "ACK"]
        total_acks += len(acks)
        if acks:
            acked_max = max(acked_max, *acks)
            next_index = next(i for i, p in enumerate(payments) if p.amount == max(acks)) + 1
        # reopened after the crash, as a restart would: the freelancer's rows, which the worker's Payee writes
        with VoucherStore.open(location, account=freelancer.address) as store:
            best, count = store.best_voucher(channel.id)
            assert best.amount >= acked_max, "an acknowledged voucher was lost"
            verify_ledger([e.receipt for e in store.ledger(channel.id)[:count]], best)
    assert total_acks > KILLS  # the kills landed while payments were flowing


def test_payer_killed_50_times_never_reissues_a_cumulative_amount(lib_escrow, clients, freelancer, make_payer,
                                                                  store_at):
    payer = make_payer(clients[1])
    channel = payer.open_channel(freelancer.address, 10**16)
    location = store_at(clients[1].address)  # make_payer's store
    args = (location, lib_escrow.address, lib_escrow.chain_id, channel.id,
            "0x" + bytes(clients[1].key).hex())
    rng = random.Random(99)
    handed_out: dict[int, str] = {}
    for _ in range(KILLS):
        lines = Worker(run_payer, *args).kill_after(rng.uniform(0.0, 0.06))
        signed = [(int(line[1]), line[2]) for line in lines if line and line[0] == "SIGNED" and len(line) == 3]
        for amount, signature in signed:
            assert amount not in handed_out, f"cumulative amount {amount} was signed twice"
            assert all(amount > earlier for earlier in handed_out), "a restart went back to a lower amount"
            handed_out[amount] = signature
        with VoucherStore.open(location, account=clients[1].address) as store:  # the worker Payer's rows
            record = store.channel(channel.id)
            assert record.issued >= max(handed_out, default=0)
            assert store.voucher_count(channel.id) == record.issued  # 1 wei per payment: 1..issued, no repeats
    assert len(handed_out) > KILLS
