"""One route, two ways to pay it: a Paywall that prices GET /v1/data in an EIP-3009 token with
``micropay-channel`` and also offers x402's ``exact`` scheme (x402's own server, client and
facilitator, settling on a real anvil chain) is paid by a stock x402 ``exact`` client (the tokens
move at once, by exactly the price; its signed authorization cannot be replayed) and by a micropay
client from a channel in the same token (the payee's store holds the voucher, nothing moves yet)."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from eth_account import Account
from fastapi import FastAPI
from x402 import AssetAmount, PaymentRequired, x402Client, x402Facilitator
from x402.http import (
    PAYMENT_REQUIRED_HEADER,
    PAYMENT_RESPONSE_HEADER,
    PAYMENT_SIGNATURE_HEADER,
    PaymentOption,
    decode_payment_required_header,
)
from x402.http.clients.httpx import x402AsyncTransport
from x402.mechanisms.evm import FacilitatorWeb3Signer
from x402.mechanisms.evm.exact import ExactEvmClientScheme, ExactEvmFacilitatorScheme, ExactEvmServerScheme

from chains import Anvil, AnvilChain
from micropay import Escrow, Payee, Payer, VoucherStore
from micropay._utils.reverts import ErrorDecoder
from micropay.transactions import TransactionPipeline
from micropay.x402 import Paywall, SpendingCaps, paying_client
from micropay.x402.scheme import SCHEME, network_of

PRICE = 250_000  # "0.25" of a 6-decimals token, in base units
TOKEN_NAME = "Test Dollar"  # the token's EIP-712 domain name (tests/contracts/Eip3009Token.sol)


@dataclass
class World:
    node: Anvil
    chain: AnvilChain
    escrow: Escrow
    token: Any  # web3 contract
    deployer: Any  # LocalAccount
    payee: Payee
    store_path: str  # the payee's store: a file, or a PostgreSQL URL
    url: str
    calls: list[str]

    @property
    def network(self) -> str:
        return network_of(self.escrow.chain_id)

    def balance(self, address: str) -> int:
        return int(self.token.functions.balanceOf(address).call())

    def mint(self, address: str, amount: int) -> None:
        pipeline = TransactionPipeline(self.chain.w3, ErrorDecoder(self.token.abi))
        pipeline.send(self.deployer, self.token.functions.mint(address, amount))


def serve(app: Any) -> tuple[str, uvicorn.Server, threading.Thread]:
    """``app`` on uvicorn on a free loopback port, in a thread."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread


@pytest.fixture(scope="module")
def world(helper_contracts, tmp_path_factory, store_locations):
    node = Anvil()
    chain = AnvilChain(node.url)
    deployer = chain.fund()
    escrow = Escrow.deploy(chain.w3, deployer)
    data = helper_contracts["Eip3009Token"]
    factory = chain.w3.eth.contract(abi=data["abi"], bytecode=data["bytecode"])
    receipt = TransactionPipeline(chain.w3, ErrorDecoder(data["abi"])).send(deployer, factory.constructor())
    token = chain.w3.eth.contract(address=receipt.contract_address, abi=data["abi"])
    network = network_of(escrow.chain_id)

    store_path = store_locations.make(tmp_path_factory.mktemp("payee"), "payee")
    payee = Payee(escrow, chain.fund(), store_path)
    facilitator = x402Facilitator()
    settler = chain.fund()  # the exact facilitator's account: it sends transferWithAuthorization, paying gas
    facilitator.register([network], ExactEvmFacilitatorScheme(
        FacilitatorWeb3Signer(private_key=settler.key.to_0x_hex(), rpc_url=node.url)))
    exact = PaymentOption(scheme="exact", pay_to=payee.address, network=network,
                          price=AssetAmount(amount=str(PRICE), asset=token.address,
                                            extra={"name": TOKEN_NAME, "version": "1"}))
    paywall = Paywall(payee, {"GET /v1/data": "0.25"}, token=token.address, also=[exact],
                      schemes=[(network, ExactEvmServerScheme())], facilitators=[facilitator])
    calls: list[str] = []
    app = FastAPI()

    @app.get("/v1/data")
    def data_route() -> dict[str, str]:
        calls.append("data")
        return {"data": "paid content"}

    url, server, thread = serve(paywall.wrap(app))
    yield World(node, chain, escrow, token, deployer, payee, store_path, url, calls)
    server.should_exit = True
    thread.join(10)
    node.stop()


class Recording(httpx.AsyncBaseTransport):
    """httpx's transport, keeping each request's headers."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.sent: list[httpx.Headers] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request.headers)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def pay_exactly(world: World, buyer: Any) -> tuple[httpx.Response, str]:
    """GET /v1/data through a stock x402 client paying with ``exact`` from ``buyer``; the answer
    and the PAYMENT-SIGNATURE header it sent."""
    client = x402Client()
    client.register(world.network, ExactEvmClientScheme(buyer))
    # The test token is no default asset: allow it, capped at the price.
    client.set_spend_controls({"allowed_assets": [
        {"network": world.network, "asset": world.token.address, "max_amount_per_payment": str(PRICE)}]})
    recording = Recording()

    async def run() -> httpx.Response:
        async with httpx.AsyncClient(transport=x402AsyncTransport(client, recording), base_url=world.url,
                                     timeout=60) as http:
            return await http.get("/v1/data")

    answer = asyncio.run(run())
    (signature,) = [h[PAYMENT_SIGNATURE_HEADER] for h in recording.sent if PAYMENT_SIGNATURE_HEADER in h]
    return answer, signature


def settled(answer: httpx.Response) -> dict[str, Any]:
    return json.loads(base64.b64decode(answer.headers[PAYMENT_RESPONSE_HEADER]))


def test_the_402_offers_micropay_channel_and_exact_at_the_same_price_in_the_same_token(world):
    before = len(world.calls)
    answer = httpx.get(world.url + "/v1/data")
    assert answer.status_code == 402
    required = decode_payment_required_header(answer.headers[PAYMENT_REQUIRED_HEADER])
    assert isinstance(required, PaymentRequired)
    offers = {r.scheme: r for r in required.accepts}
    assert set(offers) == {SCHEME, "exact"}
    for offer in offers.values():
        assert (offer.network, offer.asset, offer.amount, offer.pay_to) == (
            world.network, world.token.address, str(PRICE), world.payee.address)
    assert offers["exact"].extra == {"name": TOKEN_NAME, "version": "1"}
    assert offers[SCHEME].extra["escrow"] == world.escrow.address
    assert len(world.calls) == before  # the app never ran


def test_a_stock_x402_exact_client_pays_the_route_and_the_tokens_move_by_the_price(world):
    buyer = Account.create()  # no ETH at all: the facilitator sends the transaction
    world.mint(buyer.address, 3 * PRICE)
    payee_before, calls_before = world.balance(world.payee.address), len(world.calls)
    channels_before = len(VoucherStore.open(world.store_path, account=world.payee.address).channels())

    answer, _ = pay_exactly(world, buyer)

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"data": "paid content"}
    assert len(world.calls) == calls_before + 1
    result = settled(answer)
    assert result["success"] is True
    assert result["network"] == world.network
    assert result["payer"].lower() == buyer.address.lower()
    receipt = world.chain.w3.eth.get_transaction_receipt(result["transaction"])
    assert receipt["status"] == 1
    assert world.balance(buyer.address) == 2 * PRICE
    assert world.balance(world.payee.address) == payee_before + PRICE
    assert world.chain.w3.eth.get_balance(buyer.address) == 0
    # micropay's store is not involved in an exact payment
    assert len(VoucherStore.open(world.store_path, account=world.payee.address).channels()) == channels_before


def test_a_replayed_exact_payment_signature_is_refused_and_moves_nothing(world):
    buyer = Account.create()
    world.mint(buyer.address, 3 * PRICE)
    first, signature = pay_exactly(world, buyer)
    assert first.status_code == 200, first.text
    buyer_before, payee_before = world.balance(buyer.address), world.balance(world.payee.address)
    calls_before = len(world.calls)

    replay = httpx.get(world.url + "/v1/data", headers={PAYMENT_SIGNATURE_HEADER: signature}, timeout=60)

    assert replay.status_code == 402, replay.text
    assert PAYMENT_RESPONSE_HEADER not in replay.headers
    refusal = decode_payment_required_header(replay.headers[PAYMENT_REQUIRED_HEADER])
    assert (refusal.error or "").startswith("invalid_exact_evm")  # refused by exact's verify, before the app
    assert len(world.calls) == calls_before
    authorization = json.loads(base64.b64decode(signature))["payload"]["authorization"]
    assert world.token.functions.authorizationState(buyer.address, authorization["nonce"]).call() is True
    assert (world.balance(buyer.address), world.balance(world.payee.address)) == (buyer_before, payee_before)


def test_a_micropay_client_pays_the_same_route_from_a_channel_in_the_token(world, store_at):
    account = world.chain.fund()
    world.mint(account.address, 10 * PRICE)
    payer = Payer(world.escrow, account, store_at("payer"))
    payee_before, escrow_before = world.balance(world.payee.address), world.balance(world.escrow.address)
    calls_before = len(world.calls)

    async def run() -> list[httpx.Response]:
        caps = SpendingCaps(deposit=4 * PRICE, max_spend=8 * PRICE, max_price=PRICE)
        async with paying_client(payer, caps, token=world.token.address, base_url=world.url, timeout=60) as http:
            return [await http.get("/v1/data"), await http.get("/v1/data")]

    answers = asyncio.run(run())

    assert [a.status_code for a in answers] == [200, 200], answers[-1].text
    assert len(world.calls) == calls_before + 2
    result = settled(answers[-1])
    assert result["success"] is True
    assert result["extra"]["charged"] == str(2 * PRICE)
    (channel,) = payer.store.channels("payer")
    assert channel.key.token == world.token.address
    assert channel.deposit == 4 * PRICE  # the scheme approved the escrow and opened it
    assert world.balance(account.address) == 6 * PRICE
    assert world.balance(world.escrow.address) == escrow_before + 4 * PRICE
    assert world.balance(world.payee.address) == payee_before  # paid by voucher: settled later
    # what the payee holds, read apart from it: its account's rows
    payee_store = VoucherStore.open(world.store_path, account=world.payee.address)
    ref = world.payee.ref(channel.id)
    best = payee_store.best_voucher(ref)
    assert best is not None and best[0].amount == 2 * PRICE
    assert payee_store.charged(ref) == (2 * PRICE, 2)
