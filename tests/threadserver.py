"""An ASGI app served by uvicorn on a free loopback port, in a thread of the test process (for
the apps a test needs beside the real server process it tests: an upstream API, a dashboard)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn


class ThreadServer:
    """``app`` on ``url`` until :meth:`stop`."""

    def __init__(self, app: Any) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
