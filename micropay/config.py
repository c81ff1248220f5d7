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
    home: Path

    @classmethod
    def default(cls, home: str | os.PathLike[str] | None = None) -> Paths:
        return cls(Path(home) if home else Path(user_data_dir("micropay", appauthor=False)))

    @property
    def keystores(self) -> Path:
        return self.home / "keystores"

    @property
    def store(self) -> Path:
        return self.home / "micropay.db"

    @property
    def deployments(self) -> Path:
        return self.home / "deployments.json"


def load_deployments(path: Path) -> dict[int, str]:
    """chain id → escrow address, as recorded by ``micropay deploy``."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        return {int(chain): normalize(address)[0] for chain, address in data.items()}  # type: ignore[index]
    except (ValueError, TypeError, AttributeError) as exc:
        raise MicropayValueError(f"{path} is not a valid deployments file: {exc}") from None


def record_deployment(path: Path, chain_id: int, address: str) -> None:
    deployments = load_deployments(path)
    deployments[chain_id] = address
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({str(k): v for k, v in sorted(deployments.items())}, indent=2) + "\n")
    os.replace(tmp, path)  # atomic: a crash leaves the old file or the new one
