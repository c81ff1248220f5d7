"""CloseRequestWatch on a real anvil: a client's requestClose is notified exactly once, with its
deadline, across polls, node outages and restarts; a stranger's channel is never notified."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from notifyhelpers import hook_command, recorded, wait_for
from web3 import Web3

from chains import Anvil, AnvilChain
from micropay import Escrow, Payee, Payer
from micropay.close_watch import CloseRequestWatch
from micropay.notifications import Notifier


class FlakyNode:
    """A JSON-RPC proxy on a free loopback port in front of ``url``: while ``down``, it answers
    every call with 503, as a node behind a load balancer does during an outage."""

    def __init__(self, url: str) -> None:
        self.down = False
        self.refused = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if proxy.down:
                    proxy.refused += 1
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                answer = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=30)
                self.send_response(answer.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def chain():
    node = Anvil()
    yield AnvilChain(node.url)
    node.stop()


def test_a_close_request_is_notified_once_with_its_deadline_through_a_node_outage(chain, tmp_path, store_at,
                                                                                  caplog):
    caplog.set_level(logging.INFO, logger="micropay.notify")
    escrow = Escrow.deploy(chain.w3, chain.fund())
    client, freelancer_key, stranger_key = chain.fund(), chain.fund(), chain.fund()
    payer = Payer(escrow, client, store_at("client"))
    freelancer = Payee(escrow, freelancer_key, store_at("freelancer"))
    channel = payer.open_channel(freelancer.address, 10**16)
    freelancer.receive(payer.pay(channel.id, 3 * 10**15, "logo draft 1"))
    stranger = Payer(escrow, stranger_key, store_at("stranger"))
    trap = stranger.open_channel(freelancer.address, 1)  # 1 wei to the freelancer, never paid
    stranger.request_close(trap.id)  # a close request on a channel the freelancer holds nothing for

    node = FlakyNode(chain.url)
    # web3's own retries would hide a short outage: without them, each failed poll is one refused call.
    provider = Web3.HTTPProvider(node.url, exception_retry_configuration=None)
    watched = Escrow(Web3(provider), escrow.address, from_block=escrow.from_block,
                     chain_id=escrow.chain_id)
    out = tmp_path / "events.jsonl"
    notifier = Notifier(command=hook_command(out))
    watch = CloseRequestWatch(watched, freelancer.store, freelancer.address, notifier, poll=0.2)
    notifier.start()
    watch.start()
    try:
        def polled_past(block):
            return lambda: (freelancer.store.cursor(watch.cursor_name) or 0) > block - watch.confirmations

        chain.mine(2)
        wait_for(polled_past(chain.w3.eth.block_number), what="the watch to read the stranger's close request")
        assert recorded(out) == []  # the stranger's channel is never notified

        node.down = True
        payer.request_close(channel.id)
        chain.mine(2)
        wait_for(lambda: node.refused >= 3, what="polls failing against the node")
        assert recorded(out) == []
        node.down = False

        (event,) = wait_for(lambda: recorded(out), what="the close request's notification")
        deadline = escrow.channel(channel.id).expiry
        assert event["event"] == "close_request"
        assert event["stdin"]["channelId"] == "0x" + channel.id.hex()
        assert event["stdin"]["deadline"] == deadline and event["stdin"]["unclaimed"] == str(3 * 10**15)
        assert event["text"].startswith(f"{client.address[:6]}…{client.address[-4:]} started closing channel "
                                        f"0x{channel.id.hex()[:4]}…{channel.id.hex()[-4:]}: claim 0.003 ETH before ")
        assert event["text"].endswith(" UTC")

        chain.mine(3)  # more polls over more blocks: nothing new
        wait_for(polled_past(chain.w3.eth.block_number), what="later polls")
    finally:
        watch.close()
        notifier.close()
        node.stop()
    assert len(recorded(out)) == 1
    assert caplog.text.count("reading the chain failed (HTTPError)") == 1  # once per outage, by type only
    assert "reading the chain works again" in caplog.text and node.url not in caplog.text

    # A restarted watch resumes from the stored cursor: the request is not notified again.
    again = Notifier(command=hook_command(out))
    restarted = CloseRequestWatch(escrow, freelancer.store, freelancer.address, again)
    assert restarted.poll_once() == []
    again.close()


def test_a_close_request_with_nothing_left_to_claim_says_so(chain, store_at):
    escrow = Escrow.deploy(chain.w3, chain.fund())
    client, freelancer_key = chain.fund(), chain.fund()
    payer = Payer(escrow, client, store_at("client"))
    freelancer = Payee(escrow, freelancer_key, store_at("freelancer"))
    channel = payer.open_channel(freelancer.address, 10**16)
    freelancer.receive(payer.pay(channel.id, 10**15, "x"))
    freelancer.settle()  # everything held is claimed
    payer.request_close(channel.id)
    notifier = Notifier()  # no hook: the events are returned
    watch = CloseRequestWatch(escrow, freelancer.store, freelancer.address, notifier, confirmations=0)
    (event,) = watch.poll_once()
    assert "nothing is left to claim" in event.text and event.data["unclaimed"] == "0"
    assert watch.poll_once() == []
