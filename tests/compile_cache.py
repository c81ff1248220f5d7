"""Compiled test contracts kept in a file under the system temp directory, keyed by a digest of
their sources and settings, so a test run that cannot use pytest's cache compiles them only once."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def cached_json(folder: str, digest: str, build: Callable[[], Any]) -> Any:
    """What ``build()`` returned for this ``digest`` before (read back from
    ``$TMPDIR/folder/digest.json``), else ``build()``'s result, stored there. A missing, unreadable
    or unwritable file only costs a rebuild; the write is atomic, so a concurrent run never reads
    half a file. Raises what ``build`` raises."""
    cache_file = Path(tempfile.gettempdir()) / folder / f"{digest}.json"
    try:
        return json.loads(cache_file.read_text())
    except (OSError, ValueError):  # not there yet, or unreadable: build again
        pass
    result = build()
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=cache_file.parent, suffix=".tmp", delete=False) as out:
            json.dump(result, out)
        os.replace(out.name, cache_file)
    except OSError:
        pass
    return result
