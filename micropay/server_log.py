"""Structured server logs: one JSON object per line, for ``micropay serve`` and a host's inbox.

Every line has ``time`` (UTC, ISO 8601 with milliseconds), ``level`` and ``event``; an access
line adds ``method``, ``path`` (never its query string), ``status``, ``ms``, ``client``, and the
``channel`` and ``error`` code when there is one. Only scalar fields are written, each string cut
to :data:`MAX_FIELD` characters, and a field whose name suggests a secret (a key, a password, a
signature, a body, a header) is dropped whatever the caller passes: a key, a password, a signed
request's headers or a request body never reach the log.

Libraries' own loggers (uvicorn's) are routed here by :meth:`ServerLog.handler`, so the log stays
JSON lines from start to stop.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import traceback
from datetime import datetime, timezone
from typing import IO, Literal

Level = Literal["debug", "info", "warning", "error"]
LogValue = str | int | float | bool | None
#: The longest string a field keeps.
MAX_FIELD = 500
_LEVELS: dict[str, int] = {"debug": 10, "info": 20, "warning": 30, "error": 40}
_SECRET_WORDS = ("key", "password", "secret", "signature", "body", "header", "token", "authorization", "cookie")
_FIXED = frozenset({"time", "level", "event"})


def _allowed(name: str) -> bool:
    lowered = name.lower()
    return name not in _FIXED and not any(word in lowered for word in _SECRET_WORDS)


class ServerLog:
    """Writes JSON lines to ``stream`` (default: standard error at the time of writing) at
    ``level`` and above. Thread-safe; never raises (a log that cannot be written is skipped)."""

    def __init__(self, stream: IO[str] | None = None, *, level: Level = "info") -> None:
        self._stream = stream
        self.level = level
        self._lock = threading.Lock()

    def enabled(self, level: Level) -> bool:
        """Whether a line at ``level`` would be written."""
        return _LEVELS[level] >= _LEVELS[self.level]

    def event(self, event: str, *, level: Level = "info", **fields: LogValue) -> None:
        """Write one line: ``event`` and the scalar ``fields`` (None ones and secret-looking names left out)."""
        if not self.enabled(level):
            return
        now = datetime.now(timezone.utc)
        line: dict[str, LogValue] = {"time": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
                                     "level": level, "event": event[:100]}
        for name, value in fields.items():
            if value is not None and _allowed(name):
                line[name] = value[:MAX_FIELD] if isinstance(value, str) else value
        text = json.dumps(line, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
        stream = self._stream if self._stream is not None else sys.stderr
        with self._lock:
            try:
                stream.write(text)
                stream.flush()
            except (OSError, ValueError):  # a closed or broken stream: the server goes on
                pass

    def access(self, *, method: str, path: str, status: int, ms: float, client: str | None,
               channel: str | None = None, error: str | None = None) -> None:
        """The line for one request, written at info (a 5xx at error)."""
        self.event("request", level="error" if status >= 500 else "info", method=method[:16],
                   path=path.split("?", 1)[0][:200], status=status, ms=round(ms, 2), client=client,
                   channel=channel, error=error)

    def failure(self, event: str, exc: BaseException, **fields: LogValue) -> None:
        """An unexpected error, at error level: its type, first line and where it was raised
        (file, line, function of each frame; no values)."""
        frames = traceback.extract_tb(exc.__traceback__)[-12:]
        where = " < ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in reversed(frames))
        message = str(exc).splitlines()[0] if str(exc) else ""
        self.event(event, level="error", exception=type(exc).__name__, message=message, where=where, **fields)

    def handler(self) -> logging.Handler:
        """A logging handler that writes library records (uvicorn's) here as ``log`` events."""
        return _Handler(self)


class _Handler(logging.Handler):
    def __init__(self, log: ServerLog) -> None:
        super().__init__()
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        level: Level = ("error" if record.levelno >= logging.ERROR else "warning" if record.levelno >= logging.WARNING
                        else "info" if record.levelno >= logging.INFO else "debug")
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a record whose arguments do not fit its format
            message = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            self.log.failure("log", record.exc_info[1], logger=record.name, text=message)
        else:
            self.log.event("log", level=level, logger=record.name, message=message)
