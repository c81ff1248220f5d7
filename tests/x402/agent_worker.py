"""A paying client in a process of its own (for the crash test): `python agent_worker.py RPC ESCROW
KEY STORE URL CALLS` makes CALLS paid calls of GET /v1/joke one after another, printing each status."""

from __future__ import annotations

import asyncio
import sys

from eth_account import Account
from web3 import Web3

from micropay import Escrow, Payer
from micropay.x402 import SpendingCaps, paying_client


async def main(rpc: str, escrow: str, key: str, store: str, url: str, count: int) -> None:
    payer = Payer(Escrow(Web3(Web3.HTTPProvider(rpc)), escrow), Account.from_key(key), store)
    caps = SpendingCaps(deposit=10**18, max_spend=10**19)
    async with paying_client(payer, caps, base_url=url, timeout=60) as http:
        for _ in range(count):
            answer = await http.get("/v1/joke")
            print(answer.status_code, flush=True)


if __name__ == "__main__":
    rpc, escrow, key, store, url, count = sys.argv[1:]
    asyncio.run(main(rpc, escrow, key, store, url, int(count)))
