"""A payer never signs one amount twice, even from several processes at once on one PostgreSQL store:
three processes, each its own Payer of the same account on the same store, pay on one channel as
fast as they can (then are killed): every cumulative amount was signed by exactly one of them, the
channel's ``issued`` is the ledger's total, and no two vouchers share an amount."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from micropay.store import VoucherStore

WORKER = Path(__file__).resolve().parent.parent / "crash_worker.py"  # `payer`: pays 1 wei per task, forever
PROCESSES = 3
EACH = 150  # signed by every process before they are stopped


class PayerProcess:
    def __init__(self, store: str, escrow, channel_id: bytes, key: bytes) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), "payer", store, escrow.address, str(escrow.chain_id), channel_id.hex()],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "MICROPAY_TEST_KEY": "0x" + key.hex()})
        self.ready = threading.Event()
        self.signed: list[tuple[int, bytes]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            word, *rest = line.split()
            if word == "READY":
                self.ready.set()
            elif word == "SIGNED":
                self.signed.append((int(rest[0]), bytes.fromhex(rest[1])))

    def kill(self) -> bool:
        """SIGKILL it; returns whether it was still running (no error stopped it)."""
        running = self.process.poll() is None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        self._reader.join(10)
        return running


def test_payers_in_three_processes_on_one_store_never_sign_an_amount_twice(pg_world, pg_store):
    url = pg_store()
    account = pg_world.fund()
    channel = pg_world.open(pg_world.payer(url, account), pg_world.fund().address, deposit=10**15)
    workers = [PayerProcess(url, pg_world.escrow, channel.id, account.key) for _ in range(PROCESSES)]
    try:
        deadline = time.monotonic() + 60
        while not all(len(w.signed) >= EACH for w in workers):
            assert all(w.process.poll() is None for w in workers), [w.process.stderr.read()[-2000:]
                                                                    for w in workers if w.process.poll() is not None]
            assert time.monotonic() < deadline, [len(w.signed) for w in workers]
            time.sleep(0.05)
    finally:
        running = [w.kill() for w in workers]
    assert running == [True] * PROCESSES  # none stopped on an error (a refused or failed payment)

    signed = [amount for w in workers for amount, _ in w.signed]
    assert len(signed) == len(set(signed))  # no amount signed by two processes, nor twice by one
    with VoucherStore(url, owner=account.address) as store:
        record = store.channel(channel.ref)
        ledger = store.ledger(channel.ref)
        best, count = store.best_voucher(channel.ref)
        # One wei per task: the ledger's totals are 1, 2, … and each has its voucher, once.
        assert [e.total for e in ledger] == list(range(1, len(ledger) + 1))
        assert record.issued == ledger[-1].total == best.amount == len(ledger) == count
        assert store.voucher_count(channel.ref) == len(ledger)
        assert [n for n, _ in store.voucher_times(channel.ref)] == list(range(1, len(ledger) + 1))
        # What each process printed is the voucher stored for that amount (killed mid-payment: at
        # most one stored payment per process was not printed).
        for w in workers:
            for amount, signature in w.signed:
                voucher, _ = store.voucher_at(channel.ref, amount)
                assert voucher.signature == signature
                assert voucher.ledger_root == ledger[amount - 1].root
        assert len(ledger) - len(signed) in range(PROCESSES + 1)
        # Each process's tasks are in its own order along the one ledger, and the processes took turns.
        pids = [int(e.receipt.task_id.split()[-1]) for e in ledger]
        for pid in set(pids):
            ticks = [int(e.receipt.task_id.split()[1]) for e in ledger if e.receipt.task_id.endswith(f" {pid}")]
            assert ticks == list(range(1, len(ticks) + 1))
        assert sum(a != b for a, b in itertools.pairwise(pids)) >= 10  # interleaved, not one block after another
