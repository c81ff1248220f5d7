"""A small inbox for the outbox tests: wire protocol v1 over real HTTP (FastAPI on uvicorn, in a
thread), backed by a real Payee that checks and stores every payment and signs acknowledgments
with the payee's key, as ``micropay serve`` does. ``lie`` makes it answer as a broken or hostile
server would; ``posted`` records (amount, first index, receipts) of every payment it was sent."""

from __future__ import annotations

import json
import threading
import time

import uvicorn
from eth_account import Account
from fastapi import FastAPI, Request, Response

from chains import free_port
from micropay.acknowledgment import sign_acknowledgment
from micropay.errors import LedgerGap, MicropayError, StaleVoucher
from micropay.payment import parse_payment


class ServerThread:
    """uvicorn serving ``app`` on a loopback port (free, or ``port``), in a daemon thread."""

    def __init__(self, app, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the inbox on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json", headers=headers)


class DoubleInbox:
    """An inbox for ``payee`` (``key`` signs its acknowledgments). ``lie``: None (honest),
    "other_key", "lower_amount", "higher_amount", "other_root", "garbage", "huge", "rate_limited",
    "unavailable"."""

    def __init__(self, payee, key, port: int | None = None) -> None:
        self.payee, self.key = payee, key
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lie: str | None = None
        self.posted: list[tuple[int, int | None, tuple[str, ...]]] = []
        self.server: ServerThread | None = None
        self.app = FastAPI()
        self.app.add_api_route("/v1/payments", self.payments, methods=["POST"])

    def start(self) -> DoubleInbox:
        self.server = ServerThread(self.app, self.port).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def _ack(self, channel_id: bytes, amount: int, root: bytes) -> dict[str, object]:
        key = Account.create() if self.lie == "other_key" else self.key
        amount += {"lower_amount": -1, "higher_amount": 1}.get(self.lie or "", 0)
        root = b"\x99" * 32 if self.lie == "other_root" else root
        escrow = self.payee.escrow
        return sign_acknowledgment(key, chain_id=escrow.chain_id, escrow=escrow.address, channel_id=channel_id,
                                   amount=amount, ledger_root=root).to_dict()

    async def payments(self, request: Request) -> Response:
        payment = parse_payment(json.loads(await request.body())["payment"])
        self.posted.append((payment.amount, payment.first_index, tuple(r.task_id for r in payment.receipts)))
        if self.lie == "garbage":
            return Response(b"<html>502 Bad Gateway</html>", status_code=200, media_type="text/html")
        if self.lie == "huge":
            return Response(b'{"held": true, "pad": "' + b"x" * (2 << 20) + b'"}', media_type="application/json")
        if self.lie == "rate_limited":
            return _json({"error": "rate_limited", "message": "too many requests", "retryAfter": 2}, 429,
                         {"Retry-After": "2"})
        if self.lie == "unavailable":
            return _json({"error": "unavailable", "message": "the store is busy"}, 503)
        voucher = payment.voucher
        try:
            received = self.payee.receive(payment)
        except LedgerGap as exc:
            return _json({"error": "ledger_gap", "message": str(exc), "resendFrom": exc.have}, 409)
        except StaleVoucher as exc:
            best, _ = self.payee.store.best_voucher(self.payee.ref(voucher.channel_id))
            return _json({"error": "stale_voucher", "message": str(exc),
                          "acknowledgment": self._ack(voucher.channel_id, best.amount, best.ledger_root)}, 409)
        except MicropayError as exc:
            return _json({"error": "invalid_payment", "message": str(exc)}, 400)
        return _json({"held": True, "duplicate": received.duplicate, "channelId": "0x" + voucher.channel_id.hex(),
                      "cumulativeAmount": str(received.cumulative), "added": str(received.added),
                      "tasks": [{"taskId": t.task_id, "amount": str(t.amount), "note": t.note} for t in received.tasks],
                      "acknowledgment": self._ack(voucher.channel_id, received.cumulative, voucher.ledger_root)})
