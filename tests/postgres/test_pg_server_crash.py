"""The database crashes under a real `micropay serve`: ``pg_ctl stop -m immediate`` in the middle of
a burst of payments, then a restart. Every payment the inbox acknowledged is in the store
afterwards, with its voucher and ledger; while the database is down the inbox answers 503 (never an
acknowledgment); once it is back the inbox takes payments again without being restarted.

The cluster is the test's own (a throwaway one), so the session's cluster is not crashed."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx
from pghelpers import AMOUNT, Served, home_with_key

from helpers import signed_payments
from micropay.acknowledgment import Acknowledgment
from micropay.store import VoucherStore
from pgcluster import new_schema, throwaway_cluster

PAYMENTS = 50  # per channel
CHANNELS = 8
DOWN_FOR = 1.5  # seconds the database stays down


@dataclass
class Stream:
    """One client thread: its channel's payments in order, each posted until the inbox holds it."""

    channel: bytes
    texts: list[str]
    acked: list[tuple[int, Acknowledgment, float]] = field(default_factory=list)  # (index, ack, when)
    answers: list[tuple[int, str | None]] = field(default_factory=list)  # (status, error code)
    messages: set[str] = field(default_factory=set)  # the error answers' messages
    transport_errors: int = 0
    done: bool = False


def post_until_held(url: str, stream: Stream, acked: list[int], lock: threading.Lock, deadline: float) -> None:
    with httpx.Client(timeout=30) as client:
        for index, text in enumerate(stream.texts):
            while True:
                if time.monotonic() > deadline:
                    return
                try:
                    answer = client.post(f"{url}/v1/payments", json={"payment": text})
                except httpx.TransportError:
                    stream.transport_errors += 1
                    time.sleep(0.05)
                    continue
                body = answer.json()
                stream.answers.append((answer.status_code, body.get("error")))
                if "message" in body:
                    stream.messages.add(body["message"])
                if answer.status_code == 200:
                    stream.acked.append((index, Acknowledgment.from_dict(body["acknowledgment"]), time.monotonic()))
                    with lock:
                        acked[0] += 1
                    break
                if answer.status_code != 503:
                    return  # anything else is a failure the test reports
                time.sleep(0.05)  # 503: the client tries again a moment later, as the outbox would
        stream.done = True


def test_the_database_crashing_mid_burst_loses_no_acknowledged_payment_and_the_inbox_recovers(pg_world, tmp_path):
    with throwaway_cluster() as cluster:
        url = new_schema(cluster.url)
        home = tmp_path / "freelancer"
        freelancer = home_with_key(pg_world, home)
        server = Served(pg_world, home, url)
        try:
            payers = [pg_world.payer(tmp_path / f"client{n}.db") for n in range(CHANNELS // 2)]
            channels = [(p, pg_world.open(p, freelancer.address)) for p in payers for _ in range(2)]
            streams = [Stream(ch.id, signed_payments(p, ch, PAYMENTS)) for p, ch in channels]
            acked, lock = [0], threading.Lock()
            deadline = time.monotonic() + 90
            threads = [threading.Thread(target=post_until_held, args=(server.url, s, acked, lock, deadline))
                       for s in streams]
            for thread in threads:
                thread.start()
            while acked[0] < 100 and any(t.is_alive() for t in threads):
                time.sleep(0.002)
            crashed_at = time.monotonic()
            cluster.stop_immediate()  # as a crash of the database server would
            acked_before_crash = acked[0]
            time.sleep(DOWN_FOR)
            cluster.start()  # replays its write-ahead log
            restarted_at = time.monotonic()
            for thread in threads:
                thread.join(120)
        finally:
            code = server.stop()
        log = server.log()
        # The inbox kept running through the outage and stopped cleanly when asked.
        assert code == 0, server.err.read_text()[-3000:]
        assert acked_before_crash >= 100
        answers = [answer for s in streams for answer in s.answers]
        unavailable = [answer for answer in answers if answer[0] != 200]
        # While the database was down: refused cleanly, as unavailable, never acknowledged.
        assert set(unavailable) == {(503, "unavailable")}, set(unavailable)
        messages = set().union(*(s.messages for s in streams))
        assert messages and not [m for m in messages if "postgresql://" in m or "search_path" in m]  # redacted
        # Once it was back, the same process took every payment (no restart of the inbox).
        assert all(s.done for s in streams), [(len(s.acked), s.answers[-3:]) for s in streams]
        assert any(when > restarted_at for s in streams for _, _, when in s.acked)
        assert sum(s.transport_errors for s in streams) == 0  # the inbox never dropped a connection

        escrow = pg_world.escrow
        with VoucherStore(url, owner=freelancer.address) as store:
            for (_, channel), stream in zip(channels, streams, strict=True):
                ref = channel.ref
                assert [index for index, _, _ in stream.acked] == list(range(PAYMENTS))
                for index, ack, _ in stream.acked:
                    ack.verify(freelancer.address, chain_id=escrow.chain_id, escrow=escrow.address,
                               channel_id=stream.channel)
                    assert ack.amount == AMOUNT * (index + 1)
                    voucher, count = store.voucher_at(ref, ack.amount)  # what was acknowledged is held
                    assert (voucher.ledger_root, count) == (ack.ledger_root, index + 1)
                ledger = store.ledger(ref)
                assert [e.receipt.task_id for e in ledger] == [f"t{n}" for n in range(PAYMENTS)]
                assert store.voucher_count(ref) == PAYMENTS  # each payment stored once, retries included
                assert store.best_voucher(ref)[0].amount == AMOUNT * PAYMENTS
        assert restarted_at - crashed_at >= DOWN_FOR
        assert any(line.get("event") == "inbox_closed" for line in log)


def test_an_inbox_whose_database_is_down_answers_503_without_naming_the_database_server(pg_world, tmp_path):
    """A client of a public inbox learns that the store is unavailable, not where the marketplace's
    database server is: the store's location is redacted from the answer, and so must be the host
    and port the driver's message repeats."""
    with throwaway_cluster() as cluster:
        url = new_schema(cluster.url)
        home = tmp_path / "freelancer"
        freelancer = home_with_key(pg_world, home)
        server = Served(pg_world, home, url)
        try:
            payer = pg_world.payer(tmp_path / "client.db")
            texts = signed_payments(payer, pg_world.open(payer, freelancer.address), 2)
            assert server.post(f"{server.url}/v1/payments", {"payment": texts[0]}).status_code == 200
            cluster.stop_immediate()
            down = [server.post(f"{server.url}/v1/payments", {"payment": texts[1]}) for _ in range(2)]
            cluster.start()
            for _ in range(3):  # the first use of a connection the restart dropped may fail once
                back = server.post(f"{server.url}/v1/payments", {"payment": texts[1]})
                if back.status_code == 200:
                    break
        finally:
            assert server.stop() == 0
        assert back.status_code == 200, back.text  # recovered without a restart of the inbox
        assert [(d.status_code, d.json()["error"]) for d in down] == [(503, "unavailable")] * 2
        messages = [d.json()["message"] for d in down]
        leaks = [m for m in messages if str(cluster.port) in m or "127.0.0.1" in m or "postgresql://" in m]
        assert not leaks, leaks
