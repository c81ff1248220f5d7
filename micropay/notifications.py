"""Notifications: tell the freelancer, by a command or a webhook, what just arrived.

An :class:`Event` is one thing worth hearing about (a payment, a plan, a delivery, feedback, a
close request): a ``kind``, a sentence (``text``: "+0.005 ETH from 0xAbC1…1234 for 'logo draft 1'")
and JSON-safe ``data``. :class:`Notifier` hands each event to

- a **command** (split like a shell would, but run without one): the event's JSON on its standard
  input, ``MICROPAY_EVENT`` (the kind) and ``MICROPAY_TEXT`` (the sentence) in its environment,
  killed after :data:`COMMAND_TIMEOUT` seconds; its output is discarded. The ``MICROPAY_*``
  variables of this process (a keystore password, an RPC URL with its API key) are not passed on.
- a **webhook**: the event's JSON POSTed to an http(s) URL, redirects not followed, retried once.

:meth:`Notifier.notify` never blocks and never raises: events wait in a bounded queue that one
background thread drains, and when the queue is full an event is dropped and counted. A failing
or hanging hook is logged and the next event still runs. Logs never name more of a webhook than
its host (its URL may carry a token) nor more of a command than its program.

:class:`micropay.close_watch.CloseRequestWatch` notifies close requests seen on the chain.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal, get_args
from urllib.parse import urlsplit

import requests

from micropay.errors import MicropayValueError
from micropay.feedback import SignedFeedback
from micropay.ledger import TaskReceipt
from micropay.plan import Plan, SignedPlan
from micropay.receiving import Received
from micropay.records import ChannelRecord

EventKind = Literal["payment", "delivery", "feedback", "plan", "close_request"]
KINDS: tuple[EventKind, ...] = get_args(EventKind)
#: The kinds :func:`document_event` makes.
DOCUMENT_KINDS: tuple[EventKind, ...] = ("plan", "delivery", "feedback")
#: Seconds a command may run before it is killed.
COMMAND_TIMEOUT = 30.0
#: Seconds to connect to a webhook, and to wait for its answer.
WEBHOOK_TIMEOUTS = (5.0, 10.0)
#: Seconds before a webhook that failed is tried the second (and last) time.
RETRY_DELAY = 1.0
#: At most one "queue full" warning per this many seconds.
DROP_WARNING_INTERVAL = 60.0
#: The longest piece of someone else's text (a task id, a note, a title) put in a sentence.
MAX_LABEL = 60

_logger = logging.getLogger("micropay.notify")


@dataclass(frozen=True)
class Event:
    """One thing to notify. Raises :class:`MicropayValueError` for an unknown ``kind``."""

    kind: EventKind
    text: str
    data: dict[str, object]

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise MicropayValueError(f"an event is one of {', '.join(KINDS)}, not {self.kind!r:.40}")

    def to_dict(self) -> dict[str, object]:
        """What hooks receive: ``{"event": kind, "text": text, **data}`` (``event`` and ``text``
        are never overridden by ``data``)."""
        return {"event": self.kind, "text": self.text,
                **{key: value for key, value in self.data.items() if key not in ("event", "text")}}

    def to_json(self) -> str:
        """:meth:`to_dict` as compact ASCII JSON (anything not JSON-safe is written as its string)."""
        return json.dumps(self.to_dict(), separators=(",", ":"), default=str)


# -- sentences ---------------------------------------------------------------------------------------

def clean(text: str, limit: int = MAX_LABEL) -> str:
    """Someone else's text made safe for a sentence, a log and an environment variable: control
    and formatting characters (newlines, terminal escapes, bidi overrides, NUL) become U+FFFD,
    and it is cut to ``limit`` characters ("…" ends a cut text)."""
    safe = "".join(char if char.isprintable() else "\ufffd" for char in text)
    return safe if len(safe) <= limit else safe[: limit - 1] + "…"


def short_address(address: str) -> str:
    """"0xAbC1…1234": an address (or any long hex) as people glance at it."""
    return address if len(address) <= 12 else f"{address[:6]}…{address[-4:]}"


def short_id(value: bytes) -> str:
    """"0x12ab…cdef": a 32-byte id as people glance at it."""
    return short_address("0x" + value.hex())


def utc(timestamp: int | float) -> str:
    """A unix time as "2025-06-01 12:00 UTC"."""
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def listed(labels: Sequence[str], shown: int = 2) -> str:
    """"'a'", "'a' and 'b'", "'a', 'b' and 1 more": the first ``shown`` labels, quoted and cleaned."""
    quoted = [f"'{clean(label)}'" for label in labels[:shown]]
    rest = len(labels) - len(quoted)
    if rest:
        return f"{', '.join(quoted)} and {rest} more"
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"


def _task(receipt: TaskReceipt) -> dict[str, object]:
    return {"taskId": receipt.task_id, "amount": str(receipt.amount), "note": receipt.note}


def payment_event(received: Received, record: ChannelRecord, show: Callable[[int], str]) -> Event:
    """The event of a stored payment: "+0.005 ETH from 0xAbC1…1234 for 'logo draft 1'".

    ``show`` formats an amount of the channel's token ("0.005 ETH"). Data: ``channelId``,
    ``chainId``, ``escrow``, ``payer``, ``payee``, ``token``, ``added`` and ``cumulative`` (base
    units, decimal strings), ``amount`` (``added`` as ``show`` writes it), ``tasks`` (``taskId``,
    ``amount``, ``note``) and ``duplicate`` (the same payment received again: callers normally
    notify only new ones). Raises what ``show`` raises."""
    tasks = [t.task_id for t in received.tasks]
    text = f"+{show(received.added)} from {short_address(received.payer)}"
    if tasks:
        text += f" for {listed(tasks)}"
    return Event("payment", text, {
        "channelId": "0x" + received.channel_id.hex(), "chainId": record.chain_id, "escrow": record.escrow,
        "payer": received.payer, "payee": record.key.payee, "token": record.key.token,
        "added": str(received.added), "cumulative": str(received.cumulative), "amount": show(received.added),
        "tasks": [_task(t) for t in received.tasks], "duplicate": received.duplicate})


def document_event(kind: str, summary: str, data: dict[str, object]) -> Event:
    """The event of a plan, delivery or feedback document: ``summary`` (cleaned) is its text
    ("0xAbC1…1234: approved 'logo draft 1'"). Raises :class:`MicropayValueError` unless ``kind``
    is one of :data:`DOCUMENT_KINDS`."""
    for known in DOCUMENT_KINDS:
        if kind == known:
            return Event(known, clean(summary, 500), data)
    raise MicropayValueError(f"a document event is one of {', '.join(DOCUMENT_KINDS)}, not {kind!r:.40}")


def plan_event(signed: SignedPlan, show: Callable[[int], str] | None = None) -> Event:
    """The event of a plan received: "0xAbC1…1234 proposed 'Website': 3 tasks, 0.05 ETH", or
    "'Website' (version 2) is agreed: …" once both sides signed. ``show`` formats the plan's
    token (without it the total is left out). Raises what ``show`` raises."""
    plan = signed.plan
    name = f"'{clean(plan.title)}'" + (f" (version {plan.version})" if plan.version > 1 else "")
    figures = f"{len(plan.tasks)} task{'s' if len(plan.tasks) != 1 else ''}"
    if show is not None:
        figures += f", {show(plan.total)}"
    if signed.in_force:
        text = f"{name} is agreed: {figures}"
    else:
        verb = "proposed" if plan.version == 1 else "proposed an amendment:"
        text = f"{short_address(plan.proposer)} {verb} {name}: {figures}"
    return document_event("plan", text, {
        "planHash": "0x" + plan.hash.hex(), "title": plan.title, "version": plan.version,
        "inForce": signed.in_force, "payer": plan.payer, "payee": plan.payee, "proposer": plan.proposer,
        "chainId": plan.chain_id, "escrow": plan.escrow, "token": plan.token, "total": str(plan.total),
        "tasks": [{"taskId": t.id, "title": t.title, "price": str(t.price)} for t in plan.tasks]})


def feedback_event(signed: SignedFeedback, plan: Plan | None = None) -> Event:
    """The event of feedback received: kind "delivery" for a delivery, else "feedback";
    "0xAbC1…1234: approved 'logo'" (the author is named when ``plan``, the project's plan, is
    given), "…: asked for changes to 'logo': 'bolder'"."""
    f = signed.feedback
    task = f"'{clean(f.task_id)}'"
    action = {"delivered": f"delivered {task}", "approved": f"approved {task}",
              "changes requested": f"asked for changes to {task}"}[f.status]
    if f.note:
        action += f": '{clean(f.note)}'"
    author = plan.party(f.given_by) if plan is not None else None
    text = f"{short_address(author)}: {action}" if author else action
    return document_event("delivery" if f.status == "delivered" else "feedback", text, {
        "plan": "0x" + f.plan.hex(), "taskId": f.task_id, "status": f.status, "note": f.note,
        "deliverable": "0x" + f.deliverable.hex(), "at": f.at, "author": author,
        "chainId": f.chain_id, "escrow": f.escrow})


# -- delivery ----------------------------------------------------------------------------------------

def _command(command: str) -> list[str]:
    try:
        argv = shlex.split(command)
    except ValueError:
        raise MicropayValueError("the notification command does not parse (an unclosed quote?)") from None
    if not argv:
        raise MicropayValueError("the notification command is empty")
    if shutil.which(argv[0]) is None:
        raise MicropayValueError(f"the notification command's program {os.path.basename(argv[0])!r:.80} is not "
                                 "found or not executable")
    return argv


def _webhook_host(url: str) -> str:
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port, parts = None, None, None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise MicropayValueError("the webhook must be an http:// or https:// URL with a host")
    return f"{host}:{port}" if port else host


class Notifier:
    """Runs ``command`` and/or POSTs to ``webhook`` for each event, from one background thread.

    Raises :class:`MicropayValueError` for a command that does not parse or whose program is not
    found, or a webhook that is not an http(s) URL. Events notified before :meth:`start` wait in
    the queue. ``timeout``: seconds a command may run before it is killed."""

    def __init__(self, *, command: str | None = None, webhook: str | None = None, queue_size: int = 1000,
                 timeout: float = COMMAND_TIMEOUT) -> None:
        self._hooks: list[Callable[[Event], bool]] = []
        if command is not None:
            argv = _command(command)
            self._hooks.append(lambda event: self._run_command(argv, event))
        if webhook is not None:
            host = _webhook_host(webhook)
            self._hooks.append(lambda event: self._post(webhook, host, event))
        self.timeout = timeout
        self._queue: queue.Queue[Event | None] = queue.Queue(maxsize=max(1, queue_size))
        self._closing = threading.Event()
        self._abort = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._session = requests.Session()
        self._warned_at = float("-inf")
        #: Events dropped (queue full, or notified after :meth:`close`), hooks that failed, events handled.
        self.dropped = 0
        self.failed = 0
        self.handled = 0

    def __enter__(self) -> Notifier:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start the background thread (once)."""
        with self._lock:
            if self._thread is None and not self._closing.is_set():
                self._thread = threading.Thread(target=self._run, name="micropay-notify", daemon=True)
                self._thread.start()

    def close(self, timeout: float = 10) -> None:
        """Stop taking events; if started, handle those queued for up to ``timeout`` seconds, then
        give up on the rest (a running command is killed). Never raises."""
        self._closing.set()
        with contextlib.suppress(queue.Full):  # when full, the thread stops once it has emptied the queue
            self._queue.put_nowait(None)
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                self._abort.set()
                self._kill(self._process)
                left = self._queue.qsize()
                _logger.warning("notifications: stopped with %d event(s) not sent", left)
                thread.join(1.0)
        self._session.close()

    def notify(self, event: Event) -> None:
        """Queue ``event`` for the hooks. Never blocks, never raises: when the queue is full (or
        the notifier is closed) the event is dropped and counted in :attr:`dropped`."""
        try:
            if self._closing.is_set():
                with self._lock:
                    self.dropped += 1
                return
            self._queue.put_nowait(event)
        except queue.Full:
            now = time.monotonic()
            with self._lock:
                self.dropped += 1
                dropped, warn = self.dropped, now - self._warned_at >= DROP_WARNING_INTERVAL
                if warn:
                    self._warned_at = now
            if warn:
                _logger.warning("notifications: the queue is full (hooks are too slow): %d event(s) dropped so far",
                                dropped)
        except Exception as exc:  # noqa: BLE001 - notify() must never raise into the payment path
            _logger.warning("notifications: could not queue an event (%s)", type(exc).__name__)

    # -- the background thread -----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._abort.is_set():
            event = self._queue.get()
            if event is None or self._abort.is_set():
                break
            self._handle(event)
            if self._closing.is_set() and self._queue.empty():
                break

    def _handle(self, event: Event) -> None:
        ok = True
        for hook in self._hooks:
            try:
                ok = hook(event) and ok
            except Exception as exc:  # noqa: BLE001 - one hook's failure must not stop the next hook or event
                # Only the type: a message could quote the webhook URL, and its token.
                _logger.warning("notifications: a hook failed on a %s event (%s)", event.kind, type(exc).__name__)
                ok = False
        with self._lock:
            self.handled += 1
            self.failed += not ok

    def _run_command(self, argv: list[str], event: Event) -> bool:
        program = os.path.basename(argv[0])
        env = {key: value for key, value in os.environ.items() if not key.startswith("MICROPAY_")}
        env["MICROPAY_EVENT"] = event.kind
        env["MICROPAY_TEXT"] = event.text.replace("\x00", "\ufffd")
        posix = os.name == "posix"
        try:
            process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, env=env, start_new_session=posix)
        except (OSError, ValueError) as exc:
            _logger.warning("notifications: could not run %s: %s", program, type(exc).__name__)
            return False
        self._process = process
        try:
            try:
                process.communicate(event.to_json().encode(), timeout=self.timeout)
            except subprocess.TimeoutExpired:
                self._kill(process)
                process.communicate()
                _logger.warning("notifications: %s ran longer than %g s on a %s event and was killed",
                                program, self.timeout, event.kind)
                return False
        finally:
            self._process = None
        if process.returncode != 0:
            _logger.warning("notifications: %s exited with status %d on a %s event", program,
                            process.returncode, event.kind)
            return False
        return True

    @staticmethod
    def _kill(process: subprocess.Popen[bytes] | None) -> None:
        """Kill ``process`` and, on POSIX, every process it started in its session."""
        if process is None or process.poll() is not None:
            return
        try:
            if os.name == "posix":
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
        except OSError:
            pass  # it ended meanwhile

    def _post(self, url: str, host: str, event: Event) -> bool:
        body = event.to_json().encode()
        headers = {"Content-Type": "application/json", "User-Agent": "micropay-notify"}
        for attempt in (1, 2):
            try:
                with self._session.post(url, data=body, headers=headers, timeout=WEBHOOK_TIMEOUTS,
                                        allow_redirects=False, stream=True) as response:
                    status = response.status_code  # the body is never read
            except requests.RequestException as exc:
                why, retry = type(exc).__name__, True
            else:
                if 200 <= status < 300:
                    return True
                why, retry = f"HTTP {status}", status >= 500 or status == 429
            if not retry or attempt == 2 or self._abort.wait(RETRY_DELAY):
                _logger.warning("notifications: the webhook at %s failed on a %s event (%s)", host, event.kind,
                                why)
                return False
        return False
