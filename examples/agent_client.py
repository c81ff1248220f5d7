"""An agent that calls a paid API and pays per call from its micropay channel (see paid_api.py).

    export MICROPAY_RPC=http://127.0.0.1:8545 MICROPAY_ESCROW=0xEscrow... \\
           MICROPAY_KEYSTORE=path/to/agent-key.json MICROPAY_PASSWORD=... MICROPAY_STORE=agent.db
    python examples/agent_client.py http://127.0.0.1:8000

The first paid call opens a channel to the API's freelancer (one transaction); every call after
that is one HTTP round trip with a signed voucher. Caps: 0.1 ETH (or of ``MICROPAY_TOKEN``) per
channel, 1 in all to one freelancer, 0.01 per call at most.
"""

import asyncio
import os
import sys
from pathlib import Path

from web3 import Web3
from x402.http import PAYMENT_RESPONSE_HEADER, decode_payment_response_header

from micropay import ETH, Escrow, Payer, keystore
from micropay.units import format_amount
from micropay.x402 import SpendingCaps, paying_client


async def main(url: str) -> None:
    escrow = Escrow(Web3(Web3.HTTPProvider(os.environ["MICROPAY_RPC"])), os.environ["MICROPAY_ESCROW"])
    account = keystore.load_account(Path(os.environ["MICROPAY_KEYSTORE"]), os.environ["MICROPAY_PASSWORD"])
    payer = Payer(escrow, account, os.environ.get("MICROPAY_STORE", "agent.db"))
    token = os.environ.get("MICROPAY_TOKEN", ETH)
    units = escrow.token_units(token)
    one = 10 ** units[0]  # one ETH (or one token), in base units
    caps = SpendingCaps(deposit=one // 10, max_spend=one, max_price=one // 100)
    async with paying_client(payer, caps, token=token, base_url=url, timeout=60) as http:
        for answer in [await http.get("/v1/joke"),
                       await http.post("/v1/summarize", json={"text": "Pay per call. Settle once."})]:
            paid = decode_payment_response_header(answer.raise_for_status().headers[PAYMENT_RESPONSE_HEADER]).amount
            print(answer.request.method, answer.request.url.path, answer.status_code, answer.json(),
                  "paid", format_amount(int(paid or 0), *units), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"))
