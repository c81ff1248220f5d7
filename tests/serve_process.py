"""A real `micropay serve` process on a free loopback port (``--port 0``: it says which), its output
in files: what the inbox and the PostgreSQL tests start, whatever their arguments."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import httpx


class ServeProcess:
    """``argv`` (a `micropay … serve` command line) run with ``password`` for its key file, once it
    says it listens for ``inboxes`` inboxes. ``inboxes`` then maps each payee to its inbox's URL
    (before ``/v1/``); ``line`` is the first such line; ``url`` is the only inbox's URL, or the
    server's own (``base``) when it hosts several; requests go to ``url`` unless given whole."""

    def __init__(self, argv: Sequence[str], folder: Path, password: str, *, inboxes: int = 1,
                 timeout: float = 30) -> None:
        stamp = time.monotonic_ns()
        self.out, self.err = folder / f"serve-{stamp}.out", folder / f"serve-{stamp}.err"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.process = subprocess.Popen(list(argv), stdout=out, stderr=err,
                                            env={**os.environ, "MICROPAY_PASSWORD": password})
        deadline = time.monotonic() + 60
        while len(self._listening()) < inboxes:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError(f"micropay serve did not start: {self.err.read_text()[-3000:]}")
            time.sleep(0.02)
        lines = self._listening()
        self.line = lines[0]
        self.inboxes = {line.split()[2]: line.split(" listening on ")[1].split("/v1/;")[0] for line in lines}
        first = urlsplit(next(iter(self.inboxes.values())))
        self.base = f"{first.scheme}://{first.netloc}"
        self.url = next(iter(self.inboxes.values())) if inboxes == 1 else self.base
        self.client = httpx.Client(base_url=self.url, timeout=timeout)

    def _listening(self) -> list[str]:
        return [line for line in self.out.read_text().splitlines() if " listening on " in line]

    def post(self, path: str, body: object = None, *, content: bytes | None = None,
             headers: dict[str, str] | None = None) -> httpx.Response:
        """POST ``body`` as JSON (or ``content``) to ``path`` under :attr:`url`, or to a whole URL."""
        if content is None:
            content = json.dumps(body).encode()
        return self.client.post(path, content=content, headers={"Content-Type": "application/json", **(headers or {})})

    def pay(self, text: str) -> httpx.Response:
        return self.post("/v1/payments", {"payment": text})

    def log(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.err.read_text().splitlines() if line.startswith("{")]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal it and wait for its exit code (killed, and the wait's error raised, if it hangs)."""
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
