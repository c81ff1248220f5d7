"""Notifier: a command hook and a webhook receive each event; a hanging command is killed and the
next event still runs; a full queue drops without blocking; logs never carry a secret."""

from __future__ import annotations

import json
import logging
import os
import sys

import pytest
from notifyhelpers import Recorder, hook_command, recorded, wait_for

from micropay.errors import MicropayValueError
from micropay.notifications import Event, Notifier

PAYMENT = Event("payment", "+0.005 ETH from 0xAbC1…1234 for 'logo draft 1'",
                {"channelId": "0x" + "12" * 32, "added": "5000000000000000", "tasks": [{"taskId": "logo draft 1"}]})


def test_a_command_gets_the_event_on_stdin_and_in_its_environment_but_no_micropay_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("MICROPAY_PASSWORD", "hunter2")  # the server's keystore password
    out = tmp_path / "events.jsonl"
    with Notifier(command=hook_command(out)) as notifier:
        notifier.notify(PAYMENT)
        notifier.notify(Event("feedback", "0xAbC1…1234: approved 'logo'", {"taskId": "logo"}))
        wait_for(lambda: len(recorded(out)) == 2, what="both events")
    first, second = recorded(out)
    assert first["stdin"] == {"event": "payment", "text": PAYMENT.text, **PAYMENT.data}
    assert (first["event"], first["text"]) == ("payment", PAYMENT.text)
    assert first["password"] is None
    assert (second["event"], second["stdin"]["taskId"]) == ("feedback", "logo")
    assert (notifier.handled, notifier.failed, notifier.dropped) == (2, 0, 0)


def test_a_hanging_command_is_killed_after_its_timeout_and_the_next_event_still_runs(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="micropay.notify")
    out = tmp_path / "events.jsonl"
    with Notifier(command=hook_command(out), timeout=1.0) as notifier:
        notifier.notify(Event("plan", "hangs", {}))  # the hook sleeps 600 s on a plan event
        notifier.notify(PAYMENT)
        (record,) = wait_for(lambda: recorded(out), what="the event after the hanging one")
    assert record["event"] == "payment"
    pid = int((tmp_path / "hung.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped
    assert (notifier.handled, notifier.failed) == (2, 1)
    assert "was killed" in caplog.text
    assert "-c" not in caplog.text and str(out) not in caplog.text  # the program's name only


def test_a_full_queue_drops_without_blocking_and_warns_once(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="micropay.notify")
    out = tmp_path / "events.jsonl"
    notifier = Notifier(command=hook_command(out), queue_size=2, timeout=600)
    notifier.start()
    notifier.notify(Event("plan", "hangs", {}))  # occupies the only worker
    wait_for((tmp_path / "hung.pid").exists, what="the hook to start")
    for _ in range(10):
        notifier.notify(PAYMENT)  # returns at once: 2 wait, 8 are dropped
    assert notifier.dropped == 8
    assert caplog.text.count("queue is full") == 1
    notifier.close(timeout=0.5)  # gives up on the hanging command: killed, the queued events not sent
    with pytest.raises(ProcessLookupError):
        os.kill(int((tmp_path / "hung.pid").read_text()), 0)
    assert "2 event(s) not sent" in caplog.text
    notifier.notify(PAYMENT)  # after close: dropped, no error
    assert notifier.dropped == 9 and recorded(out) == []


def test_events_queued_before_close_are_still_delivered(tmp_path):
    out = tmp_path / "events.jsonl"
    notifier = Notifier(command=hook_command(out))
    for i in range(3):
        notifier.notify(Event("payment", f"payment {i}", {}))  # queued before the thread starts
    notifier.start()
    notifier.close()
    assert [r["text"] for r in recorded(out)] == ["payment 0", "payment 1", "payment 2"]


def test_a_webhook_receives_the_event_json():
    server = Recorder()
    try:
        with Notifier(webhook=server.url + "/hooks/micropay?token=s3cret") as notifier:
            notifier.notify(PAYMENT)
            wait_for(lambda: server.requests, what="the webhook call")
        (request,) = server.requests
        assert request["path"] == "/hooks/micropay?token=s3cret"
        assert request["headers"]["Content-Type"] == "application/json"
        assert json.loads(request["body"]) == {"event": "payment", "text": PAYMENT.text, **PAYMENT.data}
        assert notifier.failed == 0
    finally:
        server.stop()


def test_a_failing_webhook_is_retried_once_and_logged_by_its_host_only(caplog):
    caplog.set_level(logging.WARNING, logger="micropay.notify")
    server = Recorder(statuses=[500, 503, 500])
    try:
        with Notifier(webhook=server.url + "/h?token=s3cret") as notifier:
            notifier.notify(PAYMENT)  # 500, then 503 on the one retry: given up
            notifier.notify(PAYMENT)  # 500, then 200 on the retry
        assert len(server.requests) == 4
        assert (notifier.handled, notifier.failed) == (2, 1)
        assert "HTTP 503" in caplog.text and server.url.removeprefix("http://") in caplog.text
        assert "s3cret" not in caplog.text and "/h" not in caplog.text
    finally:
        server.stop()


def test_a_webhook_redirect_is_not_followed_and_a_4xx_is_not_retried():
    elsewhere = Recorder()
    server = Recorder(statuses=[302, 404], location=elsewhere.url + "/steal")
    try:
        with Notifier(webhook=server.url) as notifier:
            notifier.notify(PAYMENT)
            notifier.notify(PAYMENT)
        assert len(server.requests) == 2 and elsewhere.requests == []
        assert notifier.failed == 2
    finally:
        server.stop()
        elsewhere.stop()


def test_an_unreachable_webhook_and_a_failing_command_do_not_stop_each_other(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="micropay.notify")
    dead = Recorder()
    dead.stop()  # nothing listens on its port any more
    out = tmp_path / "events.jsonl"
    with Notifier(command=hook_command(out), webhook=dead.url + "/?key=s3cret") as notifier:
        notifier.notify(PAYMENT)
        notifier.notify(Event("delivery", "delivered 'logo'", {}))
    assert [r["event"] for r in recorded(out)] == ["payment", "delivery"]
    assert notifier.failed == 2
    assert "ConnectionError" in caplog.text and "s3cret" not in caplog.text


def test_a_command_that_fails_is_logged_and_counted(caplog):
    caplog.set_level(logging.WARNING, logger="micropay.notify")
    with Notifier(command=f"{sys.executable} -c 'raise SystemExit(3)'") as notifier:
        notifier.notify(PAYMENT)
    assert notifier.failed == 1 and "exited with status 3" in caplog.text


@pytest.mark.parametrize("kwargs", [
    {"command": "'unclosed"}, {"command": "   "}, {"command": "/no/such/program --flag"},
    {"webhook": "ftp://example.com/x"}, {"webhook": "https:///nohost"}, {"webhook": "http://[::1"},
])
def test_a_bad_command_or_webhook_is_refused_up_front(kwargs):
    with pytest.raises(MicropayValueError):
        Notifier(**kwargs)


def test_an_unknown_event_kind_is_refused():
    with pytest.raises(MicropayValueError):
        Event("refund", "x", {})  # type: ignore[arg-type]
