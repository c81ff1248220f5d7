"""The PostgreSQL-only tests (issue 18): what the tests parametrized over both backends cannot say.

They run on the session's cluster (``pg_cluster``, each store in a fresh schema), or, to crash a
server, on a throwaway cluster of their own. A run that leaves PostgreSQL out (``--backends
sqlite``) skips them; one that selects it and has no server fails (see ``pg_cluster``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from pghelpers import World

from pgcluster import Cluster, new_schema


@pytest.fixture(autouse=True)
def _postgres_selected(request: pytest.FixtureRequest) -> None:
    selected = [name.strip() for name in str(request.config.getoption("--backends")).split(",")]
    if "postgres" not in selected:
        pytest.skip("PostgreSQL is not among --backends")


@pytest.fixture(scope="session")
def pg_world() -> Iterator[World]:
    """One anvil with micropay's escrow for the folder."""
    world = World.start()
    yield world
    world.anvil.stop()


@pytest.fixture
def pg_store(pg_cluster: Cluster) -> Callable[[], str]:
    """``pg_store()``: the URL of a new, empty store (a fresh schema) on the session's cluster."""
    return lambda: new_schema(pg_cluster.url)
