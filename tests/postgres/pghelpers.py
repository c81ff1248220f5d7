"""What the PostgreSQL tests share: an anvil chain with micropay's escrow, funded accounts, real
`micropay serve` processes on a PostgreSQL store, and payments signed ahead of time.

Like tests/inbox/inboxhelpers.py, but a server here always gets ``--store`` (a URL) and may host
several freelancers (``--delegation`` twice), so it reports every inbox it listens for."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from eth_account.signers.local import LocalAccount

from chains import AnvilWorld
from micropay import Payer, keystore
from micropay.ledger import EMPTY_ROOT, TaskReceipt, extend_entries
from micropay.payment import Payment
from micropay.records import ChannelRecord
from micropay.voucher import sign_voucher

PASSWORD = "postgres-tests"
#: No rate limits: the tests post as fast as they can from one address.
UNLIMITED = ("--client-rate", "0", "--channel-rate", "0")
AMOUNT = 10**12


class World(AnvilWorld):
    """An anvil with the escrow deployed (see :class:`chains.AnvilWorld`), and library Payers."""

    def payer(self, store: str | os.PathLike[str], account: LocalAccount | None = None) -> Payer:
        """A library Payer for ``account`` (default: a new funded one) with its store at ``store``."""
        return Payer(self.escrow, account or self.fund(), store)

    def open(self, payer: Payer, payee: str, deposit: int = 10**18) -> ChannelRecord:
        return payer.open_channel(payee, deposit)


def home_with_key(world: World, home: Path, account: LocalAccount | None = None) -> LocalAccount:
    """A data directory holding a key file for ``account`` (default: a new funded one)."""
    account = account or world.fund()
    keystore.save_account(account, home / "keystores", PASSWORD, iterations=2**4)
    return account


class Served:
    """`micropay serve --store URL` from ``home``'s key, on a free loopback port, logs in files.
    ``inboxes`` maps each payee it serves to its inbox's URL (before ``/v1/``)."""

    def __init__(self, world: World, home: Path, store: str, *args: str, inboxes: int = 1) -> None:
        stamp = time.monotonic_ns()
        self.out, self.err = home / f"serve-{stamp}.out", home / f"serve-{stamp}.err"
        argv = [sys.executable, "-m", "micropay", "--rpc", world.anvil.url, "--home", str(home), "--store", store,
                "--confirmations", "0", "serve", "--escrow", world.escrow.address, "--port", "0", *UNLIMITED, *args]
        with self.out.open("w") as out, self.err.open("w") as err:
            self.process = subprocess.Popen(argv, stdout=out, stderr=err,
                                            env={**os.environ, "MICROPAY_PASSWORD": PASSWORD})
        deadline = time.monotonic() + 60
        while len(self._listening()) < inboxes:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError(f"micropay serve did not start: {self.err.read_text()[-3000:]}")
            time.sleep(0.02)
        self.inboxes = {line.split()[2]: line.split(" listening on ")[1].split("/v1/;")[0]
                        for line in self._listening()}
        first = urlsplit(next(iter(self.inboxes.values())))
        self.base = f"{first.scheme}://{first.netloc}"
        self.url = next(iter(self.inboxes.values())) if inboxes == 1 else self.base
        self.client = httpx.Client(timeout=60)

    def _listening(self) -> list[str]:
        return [line for line in self.out.read_text().splitlines() if " listening on " in line]

    def post(self, url: str, body: object) -> httpx.Response:
        return self.client.post(url, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"})

    def log(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.err.read_text().splitlines() if line.startswith("{")]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def signed_payments(payer: Payer, channel: ChannelRecord, count: int, amount: int = AMOUNT,
                    prefix: str = "t") -> list[str]:
    """The channel's next ``count`` payments (tasks ``t0``, ``t1``…), signed ahead, one receipt each:
    payment ``n`` is for the cumulative ``amount * (n + 1)``."""
    texts, last = [], None
    for n in range(count):
        (entry,) = extend_entries(last, [TaskReceipt(f"{prefix}{n}", amount, EMPTY_ROOT, "")])
        voucher = sign_voucher(payer.account, chain_id=channel.chain_id, escrow=channel.escrow,
                               channel_id=channel.id, amount=entry.total, ledger_root=entry.root)
        texts.append(Payment.of(voucher, (entry.receipt,), n).encode())
        last = entry
    return texts
