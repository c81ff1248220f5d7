"""The chains integration tests run on: in-process eth-tester, and anvil over JSON-RPC.

Both offer the same small interface (funded LocalAccounts, time travel, mining, snapshots), so
one test module can make the same assertions on each.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from typing_extensions import Self
from web3 import Web3

from micropay import Escrow

ROOT = Path(__file__).resolve().parent.parent
ANVIL = ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Anvil:
    """A real anvil node on a free loopback port, stopped by :meth:`stop`."""

    def __init__(self, hardfork: str = "cancun") -> None:
        binary = str(ANVIL) if ANVIL.exists() else shutil.which("anvil")
        if binary is None:
            raise RuntimeError("anvil is missing: run `npm ci` in the project root")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--host", "127.0.0.1", "--silent", "--hardfork", hardfork,
             "--balance", "1000000"],  # ETH per dev account: the suites on both stores fund many clients
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        w3 = Web3(Web3.HTTPProvider(self.url))
        deadline = time.monotonic() + 30
        while not w3.is_connected():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"anvil did not start: {self.process.stderr.read().decode()[-500:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


class TestChain:
    name: str
    w3: Web3

    def fund(self, wei: int = 10**20) -> Any:
        account = Account.create()
        self.w3.eth.wait_for_transaction_receipt(self.w3.eth.send_transaction(
            {"from": self.w3.eth.accounts[0], "to": account.address, "value": wei}))
        return account

    def now(self) -> int:
        return self.w3.eth.get_block("latest")["timestamp"]

    def travel(self, seconds: int) -> None:
        raise NotImplementedError

    def mine(self, blocks: int = 1) -> None:
        raise NotImplementedError

    def snapshot(self) -> Any:
        raise NotImplementedError

    def revert(self, snapshot: Any) -> None:
        raise NotImplementedError


class EthTesterChain(TestChain):
    name = "eth-tester"

    def __init__(self, w3: Web3, tester: Any) -> None:
        self.w3, self.tester = w3, tester

    def travel(self, seconds: int) -> None:
        self.tester.time_travel(max(self.now(), self.w3.eth.get_block("pending")["timestamp"]) + seconds)

    def mine(self, blocks: int = 1) -> None:
        self.tester.mine_blocks(blocks)

    def snapshot(self) -> Any:
        return self.tester.take_snapshot()

    def revert(self, snapshot: Any) -> None:
        self.tester.revert_to_snapshot(snapshot)


class AnvilChain(TestChain):
    name = "anvil"

    def __init__(self, url: str) -> None:
        self.url = url
        self.w3 = Web3(Web3.HTTPProvider(url))

    def _rpc(self, method: str, params: list[Any]) -> Any:
        response = self.w3.provider.make_request(method, params)
        if "error" in response:
            raise RuntimeError(f"{method}: {response['error']}")
        return response["result"]

    def travel(self, seconds: int) -> None:
        self._rpc("evm_increaseTime", [seconds])
        self._rpc("evm_mine", [])

    def mine(self, blocks: int = 1) -> None:
        for _ in range(blocks):
            self._rpc("evm_mine", [])

    def snapshot(self) -> Any:
        return self._rpc("evm_snapshot", [])

    def revert(self, snapshot: Any) -> None:
        assert self._rpc("evm_revert", [snapshot]) is True


@dataclass
class AnvilWorld:
    """A fresh anvil with micropay's escrow deployed, and funded accounts on demand (stop its
    ``anvil`` when done)."""

    anvil: Anvil
    w3: Web3
    escrow: Escrow

    @classmethod
    def start(cls) -> Self:
        node = Anvil()
        w3 = Web3(Web3.HTTPProvider(node.url))
        deployer = Account.create()
        w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(
            {"from": w3.eth.accounts[0], "to": deployer.address, "value": 10**20}))
        return cls(node, w3, Escrow.deploy(w3, deployer))

    def fund(self, wei: int = 10**20) -> LocalAccount:
        account = Account.create()
        self.w3.eth.wait_for_transaction_receipt(self.w3.eth.send_transaction(
            {"from": self.w3.eth.accounts[0], "to": account.address, "value": wei}))
        return account
