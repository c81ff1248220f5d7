"""Bursts against a real `micropay serve` process: many clients at once on distinct and shared
channels are all acknowledged in fewer commits than payments, and neither ``kill -9`` nor SIGTERM
in the middle of a burst loses a payment that was acknowledged."""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, field

import httpx
import pytest
from inboxhelpers import open_channel

from helpers import signed_payments
from micropay.acknowledgment import Acknowledgment
from micropay.ledger import LedgerEntry

UNLIMITED = ("--client-rate", "0", "--channel-rate", "0")


@dataclass
class Stream:
    """One client thread: payments of one channel, posted in order, each after the last answer."""

    channel: bytes
    texts: list[str]
    acked: list[tuple[int, Acknowledgment]] = field(default_factory=list)  # (payment index, ack)
    answers: list[int] = field(default_factory=list)
    broken: BaseException | None = None


def post_all(url: str, stream: Stream, acked_total: list[int], lock: threading.Lock) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        for index, text in enumerate(stream.texts):
            try:
                answer = client.post("/v1/payments", json={"payment": text})
            except httpx.TransportError as exc:  # the server went away: this client stops
                stream.broken = exc
                return
            stream.answers.append(answer.status_code)
            body = answer.json()
            if answer.status_code == 200 or body.get("error") == "stale_voucher":
                stream.acked.append((index, Acknowledgment.from_dict(body["acknowledgment"])))
                with lock:
                    acked_total[0] += 1


def run_burst(server, streams: list[Stream], *, then=None, after: int = 0) -> None:
    """Every stream in its own thread; ``then()`` once ``after`` payments are acknowledged."""
    acked, lock = [0], threading.Lock()
    threads = [threading.Thread(target=post_all, args=(server.url, s, acked, lock)) for s in streams]
    for thread in threads:
        thread.start()
    if then is not None:
        while acked[0] < after and any(t.is_alive() for t in threads):
            threading.Event().wait(0.005)
        then()
    for thread in threads:
        thread.join(120)


def check_acknowledged_are_stored(freelancer, streams: list[Stream]) -> int:
    """Every acknowledgment verifies, and the store holds at least what it acknowledges, with the
    ledger it signs; returns how many payments were acknowledged."""
    escrow = freelancer.world.escrow
    count = 0
    with freelancer.store() as store:
        for stream in streams:
            for index, ack in stream.acked:
                ack.verify(freelancer.address, chain_id=escrow.chain_id, escrow=escrow.address,
                           channel_id=stream.channel)
                assert ack.amount >= 10**12 * (index + 1)
            if not stream.acked:
                continue
            count += len(stream.acked)
            ref = next(r.ref for r in store.channels() if r.id == stream.channel)
            best, _ = store.best_voucher(ref)
            highest = max(ack.amount for _, ack in stream.acked)
            assert best.amount >= highest
            ledger: list[LedgerEntry] = store.ledger(ref)
            assert [e.receipt.task_id for e in ledger] == [f"t{n}" for n in range(len(ledger))]
            assert next(e.root for e in ledger if e.total == highest) == next(
                a.ledger_root for _, a in stream.acked if a.amount == highest)
    return count


@pytest.fixture
def clients(make_client):
    return [make_client(f"burst{n}") for n in range(8)]


def test_sixteen_clients_on_distinct_and_shared_channels_are_all_acknowledged_in_fewer_commits(
        freelancer, clients):
    server = freelancer.serve(*UNLIMITED)
    channels = [open_channel(c, freelancer.address) for c in clients] + [
        open_channel(c, freelancer.address) for c in clients[:4]]
    texts = [signed_payments(c, ch, 20) for c, ch in zip(clients + clients[:4], channels, strict=True)]
    # Eight channels with one client each; four shared by two clients posting the same payments.
    streams = [Stream(ch.id, t) for ch, t in zip(channels, texts, strict=True)]
    streams += [Stream(ch.id, list(t)) for ch, t in zip(channels[8:], texts[8:], strict=True)]
    assert len(streams) == 16
    run_burst(server, streams)
    assert server.stop() == 0
    assert all(s.broken is None and len(s.acked) == 20 for s in streams)  # each payment acknowledged
    assert {code for s in streams for code in s.answers} <= {200, 409}
    assert check_acknowledged_are_stored(freelancer, streams) == 320
    with freelancer.store() as store:
        for channel in channels:
            assert store.best_voucher(channel.ref)[0].amount == 20 * 10**12
            assert len(store.ledger(channel.ref)) == 20
    (closed,) = [line for line in server.log() if line["event"] == "inbox_closed"]
    assert closed["payments"] >= 240 and closed["commits"] < closed["payments"]  # the group commit


@pytest.mark.parametrize("how", ["kill -9", "SIGTERM"])
def test_stopping_the_server_mid_burst_loses_no_acknowledged_payment(freelancer, clients, how):
    server = freelancer.serve(*UNLIMITED)
    channels = [open_channel(c, freelancer.address) for c in clients for _ in range(2)]
    streams = [Stream(ch.id, signed_payments(c, ch, 40))
               for c, ch in zip([c for c in clients for _ in range(2)], channels, strict=True)]
    sig = signal.SIGKILL if how == "kill -9" else signal.SIGTERM
    run_burst(server, streams, then=lambda: server.process.send_signal(sig), after=200)
    code = server.process.wait(60)
    assert code == (-signal.SIGKILL if how == "kill -9" else 0)
    acknowledged = check_acknowledged_are_stored(freelancer, streams)
    assert acknowledged >= 200
    if how == "SIGTERM":  # requests under way were answered, then every payment submitted stored
        *_, closed, stopped = server.log()
        assert (closed["event"], stopped["event"], stopped["signal"]) == ("inbox_closed", "stopped", signal.SIGTERM)
        assert closed["payments"] == acknowledged  # no request stored without its answer reaching the client
