"""Payer and payee loops for the crash tests, which kill them with SIGKILL at random points.

The test forks a child that runs one of these loops (the same as running this file, minus the
1.7 s of imports a fresh interpreter pays). The node URL is unreachable on purpose: both roles
must work from their store alone.

    python crash_worker.py payee STORE ESCROW CHAIN_ID PAYEE                 payment texts on stdin, ACK <amount>
    python crash_worker.py payer STORE ESCROW CHAIN_ID CHANNEL_ID (key in MICROPAY_TEST_KEY)   SIGNED <amount> <sig>
"""

import os
import sys
from typing import TextIO

from eth_account import Account
from web3 import Web3

from micropay import Escrow, Payee, Payer
from micropay.errors import StaleVoucher


def offline_escrow(address: str, chain_id: int) -> Escrow:
    return Escrow(Web3(Web3.HTTPProvider("http://127.0.0.1:9")), address, chain_id=chain_id)  # nothing listens


def run_payee(stdin: TextIO, stdout: TextIO, store: str, escrow: str, chain_id: int, payee_address: str) -> None:
    payee = Payee(offline_escrow(escrow, chain_id), payee_address, store, freshness=3600, safety_margin=60)
    print("READY", file=stdout, flush=True)
    for line in stdin:
        try:
            received = payee.receive(line.strip())
        except StaleVoucher:
            print("SKIP", file=stdout, flush=True)
            continue
        print(f"ACK {received.cumulative}", file=stdout, flush=True)  # only after receive returned


def run_payer(stdin: TextIO, stdout: TextIO, store: str, escrow: str, chain_id: int, channel_id: bytes,
              key: str) -> None:
    """Pays 1 wei per task forever (``stdin`` is unused: the same signature as run_payee)."""
    payer = Payer(offline_escrow(escrow, chain_id), Account.from_key(key), store)
    print("READY", file=stdout, flush=True)
    n = 0
    while True:
        n += 1
        payment = payer.pay(channel_id, 1, task=f"tick {n} pid {os.getpid()}")
        print(f"SIGNED {payment.amount} {payment.voucher.signature.hex()}", file=stdout, flush=True)


if __name__ == "__main__":
    role, store, escrow, chain_id, extra = sys.argv[1:6]
    if role == "payee":
        run_payee(sys.stdin, sys.stdout, store, escrow, int(chain_id), extra)
    else:
        run_payer(sys.stdin, sys.stdout, store, escrow, int(chain_id), bytes.fromhex(extra),
                  os.environ["MICROPAY_TEST_KEY"])
