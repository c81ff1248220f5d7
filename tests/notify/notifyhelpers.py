"""Real parts for the notification tests: a hook command that records what it is given, a local
HTTP server that records what is posted to it, and waiting for a background thread."""

from __future__ import annotations

import json
import shlex
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Records its stdin and environment as one JSON line in argv[1]; a "plan" event hangs (after
# writing its pid next to the file), so a test can watch it being killed.
HOOK = """
import json, os, pathlib, sys, time
out = pathlib.Path(sys.argv[1])
data = sys.stdin.read()
if os.environ.get("MICROPAY_EVENT") == "plan":
    (out.parent / "hung.pid").write_text(str(os.getpid()))
    time.sleep(600)
record = {"stdin": json.loads(data), "event": os.environ.get("MICROPAY_EVENT"),
          "text": os.environ.get("MICROPAY_TEXT"), "password": os.environ.get("MICROPAY_PASSWORD")}
with out.open("a", encoding="utf-8") as f:
    f.write(json.dumps(record) + "\\n")
"""


def hook_command(out: Path) -> str:
    """A command line running :data:`HOOK` with this Python, recording into ``out``."""
    return " ".join(shlex.quote(part) for part in (sys.executable, "-c", HOOK, str(out)))


def recorded(out: Path) -> list[dict]:
    """What the hook recorded so far, one dict per event."""
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line]


def wait_for(predicate, timeout: float = 30.0, what: str = "the condition"):
    """Poll ``predicate`` until it is truthy (returned); fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Recorder:
    """A real HTTP server on a free loopback port that records every request and answers each
    with the next status of ``statuses`` (then 200); 3xx answers redirect to ``location``."""

    def __init__(self, statuses: list[int] | None = None, location: str = "") -> None:
        self.requests: list[dict] = []
        self.statuses = list(statuses or [])
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                recorder.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status = recorder.statuses.pop(0) if recorder.statuses else 200
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
