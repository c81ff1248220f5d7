"""Where micropay keeps its files, and which escrow it uses on which chain.

Nothing here is global state: a :class:`Paths` is built from explicit arguments (the CLI's
flags), falling back to the user's data directory.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_data_dir

from micropay._utils.addresses import normalize
from micropay.errors import MicropayValueError


@dataclass(frozen=True)
class Paths:
    """The files of one micropay home directory. Building one touches no file and never raises."""

    home: Path

    @classmethod
    def default(cls, home: str | os.PathLike[str] | None = None) -> Paths:
        """``home`` if given, else the user's data directory for micropay. Never raises."""
        return cls(Path(home) if home else Path(user_data_dir("micropay", appauthor=False)))

    @property
    def keystores(self) -> Path:
        """The directory of encrypted key files."""
        return self.home / "keystores"

    @property
    def store(self) -> Path:
        """The SQLite file of channels, vouchers and receipts."""
        return self.home / "micropay.db"

    @property
    def deployments(self) -> Path:
        """The JSON file of escrow addresses by chain id (see :func:`load_deployments`)."""
        return self.home / "deployments.json"


def load_deployments(path: Path) -> dict[int, str]:
    """chain id → escrow address (checksummed), as recorded by ``micropay deploy``; empty if
    ``path`` does not exist.

    Raises MicropayValueError if the file is not a JSON object of chain ids to addresses, and
    OSError if it exists but cannot be read."""
    if not path.exists():
        return {}
    deployments: dict[int, str] = {}
    try:
        data = json.loads(path.read_text())
        for chain, address in data.items():
            normalized = normalize(address) if isinstance(address, str) else None
            if normalized is None:
                raise ValueError(f"{address!r} is not an address")
            deployments[int(chain)] = normalized[0]
    except (ValueError, TypeError, AttributeError) as exc:
        raise MicropayValueError(f"{path} is not a valid deployments file: {exc}") from None
    return deployments


def record_deployment(path: Path, chain_id: int, address: str) -> None:
    """Record ``address`` as the escrow on ``chain_id`` in ``path``, replacing the file atomically.

    Raises MicropayValueError if the existing file is not a valid deployments file, and OSError
    if it cannot be written."""
    deployments = load_deployments(path)
    deployments[chain_id] = address
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({str(k): v for k, v in sorted(deployments.items())}, indent=2) + "\n")
    os.replace(tmp, path)  # atomic: a crash leaves the old file or the new one
