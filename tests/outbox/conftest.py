"""Fixtures for the client's outbox: a client and a freelancer on the in-process chain, and real
HTTP inboxes on free loopback ports (the project's :class:`~micropay.inbox.Inbox`, or
:class:`outbox_double.DoubleInbox`, which follows the same wire protocol and can be told to lie)."""

from __future__ import annotations

import pytest
from eth_account import Account
from outbox_double import DoubleInbox, ServerThread

from chains import free_port
from micropay import Escrow, Payee, Payer


@pytest.fixture(scope="session")
def fund(w3, accounts):
    def _fund(account, wei=10**20):
        w3.eth.wait_for_transaction_receipt(
            w3.eth.send_transaction({"from": accounts[0], "to": account.address, "value": wei}))
        return account

    return _fund


@pytest.fixture(scope="session")
def outbox_escrow(w3, fund):
    return Escrow.deploy(w3, fund(Account.from_key(b"\x41" * 32)))


@pytest.fixture(scope="session")
def client_key(fund):
    return fund(Account.from_key(b"\x42" * 32))


@pytest.fixture(scope="session")
def freelancer_key(fund):
    return fund(Account.from_key(b"\x43" * 32))


@pytest.fixture
def payer(outbox_escrow, client_key, store_at):
    return Payer(outbox_escrow, client_key, store_at("client"))


@pytest.fixture
def payee(outbox_escrow, freelancer_key, store_at):
    return Payee(outbox_escrow, freelancer_key, store_at("freelancer"))


@pytest.fixture
def channel(payer, freelancer_key):
    return payer.open_channel(freelancer_key.address, 10**16)


@pytest.fixture
def inbox(payee):
    """The project's inbox for ``payee``, served by uvicorn in a thread (the chain is in this process)."""
    from micropay.inbox import Inbox

    real = Inbox(payee)
    server = ServerThread(real.app).start()
    yield server
    server.stop()
    real.close()


@pytest.fixture
def double(payee, freelancer_key):
    """A protocol-following inbox that can lie, not started yet (``double.start()``)."""
    fake = DoubleInbox(payee, freelancer_key)
    yield fake
    fake.stop()


@pytest.fixture
def nowhere():
    """An inbox URL nothing listens at (yet)."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def cli_node(monkeypatch, w3):
    """``micropay`` commands run on the in-process chain when no --rpc is given."""
    from micropay.cli import context

    real_connect = context.connect
    monkeypatch.setattr(context, "connect", lambda rpc: w3 if rpc is None else real_connect(rpc))


@pytest.fixture
def people(cli_node, w3, tmp_path, store_locations):
    """A client who deployed an escrow, and a freelancer with a Payee on it (their stores on the
    backend under test)."""
    from outbox_people import Person

    client = Person(w3, tmp_path, "client", locations=store_locations)
    freelancer = Person(w3, tmp_path, "freelancer", locations=store_locations)
    escrow = client.run("deploy").stdout.strip()
    return client, freelancer, escrow


@pytest.fixture
def freelancer_inbox(people, w3, free_inbox_port, tmp_path):
    """The freelancer's real inbox (not started: ``.start()``), on ``free_inbox_port``."""
    from micropay.inbox import Inbox
    from micropay.server_log import ServerLog

    _, freelancer, escrow = people
    payee = Payee(Escrow.at(w3, escrow), freelancer.account, freelancer.store_path)
    log = (tmp_path / "inbox.log").open("w")  # not the client's stderr, which the command's runner captures
    real = Inbox(payee, log=ServerLog(log))
    server = ServerThread(real.app, free_inbox_port)
    server.payee = payee
    yield server
    if server.thread.is_alive():
        server.stop()
    real.close()
    log.close()


@pytest.fixture
def free_inbox_port():
    return free_port()


@pytest.fixture(scope="session")
def anvil_node():
    from chains import Anvil

    node = Anvil()
    yield node
    node.stop()
