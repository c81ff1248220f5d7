"""The x402 tests' world: one anvil and one escrow, an upstream API in this process (it counts
the calls that reach it), a freelancer's real `micropay serve --paywall` process in front of it,
and clients in this process (library payers with their own stores) or in worker processes."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, HTTPException, Request

from inbox.inboxhelpers import Freelancer, World
from threadserver import ThreadServer

PRICE = 10**15  # 0.001 ETH per call of GET /v1/joke


class Upstream:
    """The freelancer's own API (not Python-specific: the paywall proxies to it): counts its calls."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        app = FastAPI()

        @app.get("/v1/joke")
        def joke() -> dict[str, str]:
            self.calls["joke"] = self.calls.get("joke", 0) + 1
            return {"joke": "a voucher walks into a bar"}

        @app.get("/v1/fail")
        def fail() -> None:
            self.calls["fail"] = self.calls.get("fail", 0) + 1
            raise HTTPException(500, "the handler failed")

        @app.post("/v1/boom")
        def boom() -> None:
            raise HTTPException(500, "the handler failed")

        @app.post("/v1/echo")
        async def echo(request: Request) -> dict[str, str]:
            return {"echo": (await request.body()).decode()}

        @app.get("/v1/echo")
        def echo_free() -> dict[str, str]:  # free, beside the priced POST on the same path
            return {"echo": "free"}

        @app.get("/free")
        def free() -> dict[str, bool]:
            return {"free": True}

        self.served = ThreadServer(app)
        self.url = self.served.url

    def stop(self) -> None:
        self.served.stop()


@pytest.fixture(scope="session")
def x402_world():
    started = World.start()
    yield started
    started.anvil.stop()


@pytest.fixture(scope="module")
def upstream():
    api = Upstream()
    yield api
    api.stop()


@pytest.fixture(scope="module")
def seller(x402_world, tmp_path_factory, store_locations):
    """The freelancer selling calls, with a store on the backend under test (one per module and backend)."""
    return Freelancer(x402_world, tmp_path_factory.mktemp("seller"), store_locations)


@pytest.fixture(scope="module")
def paywall(seller, upstream):
    served = seller.serve("--paywall", upstream.url, "--price", "GET /v1/joke=0.001 ETH",
                          "--price", "GET /v1/fail=0.001 ETH", "--price", "POST /v1/echo=0.002 ETH",
                          "--price", "POST /v1/boom=0.002 ETH")
    yield served
    assert served.stop() == 0


@pytest.fixture(scope="module")
def buyer(x402_world, tmp_path_factory, store_locations):
    """A funded client with its own store, as a library Payer."""
    folder = tmp_path_factory.mktemp("buyers")

    return lambda name="buyer": x402_world.client(folder, name, store_locations)
