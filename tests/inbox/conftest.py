"""The inbox tests' world: one anvil and one escrow for the folder, a freelancer with a key file,
real `micropay serve` processes, and clients (library payers) in this test process that post over
HTTP (helpers: inboxhelpers.py)."""

from __future__ import annotations

import pytest
from inboxhelpers import Freelancer, World


@pytest.fixture(scope="session")
def world():
    started = World.start()
    yield started
    started.anvil.stop()


@pytest.fixture(scope="module")
def freelancer(world, tmp_path_factory, store_locations):
    """The freelancer, with a store on the backend under test (one per module and backend)."""
    return Freelancer(world, tmp_path_factory.mktemp("freelancer"), store_locations)


@pytest.fixture(scope="module")
def make_client(world, tmp_path_factory, store_locations):
    """A funded client with its own store, as a library Payer."""
    folder = tmp_path_factory.mktemp("clients")

    return lambda name="client": world.client(folder, name, store_locations)
