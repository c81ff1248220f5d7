"""A freelancer's API that charges per call: two priced routes behind a micropay paywall.

    export MICROPAY_RPC=http://127.0.0.1:8545 MICROPAY_ESCROW=0xEscrow... \\
           MICROPAY_KEYSTORE=path/to/your-key.json MICROPAY_PASSWORD=... MICROPAY_STORE=freelancer.db
    uvicorn examples.paid_api:app --port 8000       # or: python examples/paid_api.py
    micropay settle                                 # later, same environment: claim what the calls paid

The same environment variables as the ``micropay`` command (``micropay account new`` makes the key
file). Prices are in ETH, or in the token at ``MICROPAY_TOKEN`` (an ERC-20 address) if set. Each
paid call's voucher is stored in ``MICROPAY_STORE`` before its answer goes out; no transaction per call.
"""

import os
from pathlib import Path

from fastapi import FastAPI
from web3 import Web3

from micropay import ETH, Escrow, Payee, keystore
from micropay.x402 import Paywall

escrow = Escrow(Web3(Web3.HTTPProvider(os.environ["MICROPAY_RPC"])), os.environ["MICROPAY_ESCROW"])
account = keystore.load_account(Path(os.environ["MICROPAY_KEYSTORE"]), os.environ["MICROPAY_PASSWORD"])
payee = Payee(escrow, account, os.environ.get("MICROPAY_STORE", "freelancer.db"))
api = FastAPI()


@api.get("/v1/joke")
def joke() -> dict[str, str]:
    return {"joke": "A voucher walks into a bar. The bartender says: we settle later."}


@api.post("/v1/summarize")
def summarize(body: dict[str, str]) -> dict[str, str]:
    return {"summary": body.get("text", "").split(".")[0][:200]}


prices = {"GET /v1/joke": "0.001", "POST /v1/summarize": "0.01"}  # in ETH, or in MICROPAY_TOKEN's units
app = Paywall(payee, prices, token=os.environ.get("MICROPAY_TOKEN", ETH)).wrap(api)

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
