"""What the benchmarks that run real processes share: free ports, waiting for a process to listen,
a percentile, and anvil on a free port with micropay's escrow deployed and clients funded."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from micropay import Escrow

ROOT = Path(__file__).resolve().parent.parent
ANVIL = ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
# anvil's first two development accounts (public, well-known keys): deployer and freelancer.
DEPLOYER_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
FREELANCER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[Any], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout}s")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


class AnvilChain:
    """anvil on a free port, with the escrow deployed and ``clients`` new accounts funded (10 ETH each)."""

    def __init__(self, clients: int) -> None:
        binary = str(ANVIL) if ANVIL.exists() else shutil.which("anvil")
        if binary is None:
            raise RuntimeError("anvil is missing: run `npm ci` in the project root")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([binary, "--port", str(self.port), "--silent"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.process, "anvil")
        self.w3 = Web3(Web3.HTTPProvider(self.url))
        deployer = Account.from_key(DEPLOYER_KEY)
        self.escrow = Escrow.deploy(self.w3, deployer)
        self.clients: list[LocalAccount] = [Account.from_key(os.urandom(32)) for _ in range(clients)]
        nonce = self.w3.eth.get_transaction_count(deployer.address)
        hashes = [self.w3.eth.send_raw_transaction(deployer.sign_transaction(
            {"to": client.address, "value": 10**19, "gas": 21000, "gasPrice": self.w3.eth.gas_price,
             "nonce": nonce + n, "chainId": self.w3.eth.chain_id}).raw_transaction)
            for n, client in enumerate(self.clients)]
        for tx_hash in hashes:
            self.w3.eth.wait_for_transaction_receipt(tx_hash)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
