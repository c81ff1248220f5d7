"""A platform hosts two freelancers' inboxes in one `micropay serve --store postgresql://…` with two
``--delegation`` files, each at ``/0x<address>``. Clients pay each freelancer at its inbox; their
acknowledgments, signed with the platform's key, verify through the freelancer's delegation; each
freelancer's rows are its own; an unknown ``/0x…`` path is a 404 ``unknown_payee``. The clients
keep their stores in the same database: a channel held by its payer and by its payee there is two
separate sets of rows."""

from __future__ import annotations

import json
import time

import httpx
import psycopg
import pytest
from eth_account import Account
from pghelpers import Served, home_with_key

from micropay import Payer
from micropay.acknowledgment import Acknowledgment
from micropay.delegation import delegate_inbox
from micropay.errors import InvalidAcknowledgment
from micropay.records import store_key
from micropay.signed_request import sign_request
from micropay.store import VoucherStore

TASKS = 3  # delivered through each client's outbox, then one more posted by hand
PRICE = 10**13


def test_one_server_hosts_two_freelancers_each_in_its_own_rows(pg_world, pg_store, tmp_path):
    url = pg_store()  # one database (one schema) for the platform, both freelancers and the clients
    escrow = pg_world.escrow
    home = tmp_path / "platform"
    platform = home_with_key(pg_world, home)
    freelancers = [Account.create(), Account.create()]  # they never run a server, nor hold any ether
    files = []
    for n, freelancer in enumerate(freelancers):
        delegation = delegate_inbox(freelancer, platform.address, chain_id=escrow.chain_id, escrow=escrow.address,
                                    until=int(time.time()) + 7 * 86400)
        files += ["--delegation", str(tmp_path / f"delegation{n}.json")]
        (tmp_path / f"delegation{n}.json").write_text(json.dumps(delegation.to_dict()))
    server = Served(pg_world, home, url, *files, inboxes=2)
    try:
        assert set(server.inboxes) == {f.address for f in freelancers}
        for freelancer in freelancers:
            assert server.inboxes[freelancer.address] == f"{server.base}/0x{freelancer.address[2:].lower()}"
        # Three clients: one pays the first freelancer, one the second, one both.
        clients = [Payer(escrow, pg_world.fund(), url) for _ in range(3)]
        pays = [(clients[0], freelancers[0]), (clients[1], freelancers[1]), (clients[2], freelancers[0]),
                (clients[2], freelancers[1])]
        channels = []
        for client, freelancer in pays:
            channel = client.open_channel(freelancer.address, 10**18)
            client.set_inbox(channel.id, server.inboxes[freelancer.address])
            for n in range(TASKS):
                client.pay(channel.id, PRICE, task=f"task {n}")  # delivered by the outbox, which verifies the ack
            (row,) = [d for d in client.store.deliveries(channel.ref) if d.amount == PRICE * TASKS]
            assert row.state == "held", server.err.read_text()[-3000:]
            channels.append((client, freelancer, channel))

        # By hand: the acknowledgment is the platform's, and verifies only as the freelancer's.
        client, freelancer, channel = channels[2]
        payment = client.pay(channel.id, PRICE, task="by hand", deliver=False)
        answer = server.post(f"{server.inboxes[freelancer.address]}/v1/payments", {"payment": payment.encode()})
        assert answer.status_code == 200, answer.text
        ack = Acknowledgment.from_dict(answer.json()["acknowledgment"])
        assert ack.signer == platform.address and ack.delegation.payee == freelancer.address
        assert ack.amount == PRICE * (TASKS + 1)
        ack.verify(freelancer.address, chain_id=escrow.chain_id, escrow=escrow.address, channel_id=channel.id)
        with pytest.raises(InvalidAcknowledgment):  # the delegation is not the other freelancer's
            ack.verify(freelancers[1].address, chain_id=escrow.chain_id, escrow=escrow.address,
                       channel_id=channel.id)

        # The address as clients copy it, checksummed: the same inbox (the payment is held already).
        again = server.post(f"{server.base}/{freelancer.address}/v1/payments", {"payment": payment.encode()})
        assert again.status_code == 200 and again.json()["duplicate"] is True, again.text
        signed = f"/{freelancer.address}/v1/channels/0x{channel.id.hex()}/progress"  # signed as sent, mixed case
        read = httpx.get(f"{server.base}{signed}", headers=sign_request(client.account, "GET", signed))
        assert (read.status_code, read.json()["error"]) == (404, "unknown_plan"), read.text  # signature accepted

        # Each freelancer's dashboard has its own login: one's link does not open the other's page.
        logins = {line.split("/dashboard/?token=")[0].rsplit("/", 1)[-1]: line.split("?token=")[1].strip()
                  for line in server.out.read_text().splitlines() if "/dashboard/?token=" in line}
        first, second = (f"0x{f.address[2:].lower()}" for f in freelancers)
        assert set(logins) == {first, second} and logins[first] != logins[second]
        own = httpx.get(f"{server.base}/{first}/dashboard/?token={logins[first]}", follow_redirects=True)
        other = httpx.get(f"{server.base}/{second}/dashboard/?token={logins[first]}", follow_redirects=True)
        assert own.status_code == 200 and other.status_code == 401

        # The other freelancer's inbox does not take a payment to the first.
        wrong = server.post(f"{server.inboxes[freelancers[1].address]}/v1/payments", {"payment": payment.encode()})
        assert (wrong.status_code, wrong.json()["error"]) == (403, "not_participant")

        # A path naming no hosted payee.
        stranger = Account.create().address
        for path in (f"/0x{stranger[2:].lower()}/v1/payments", "/v1/payments"):
            missing = server.post(f"{server.base}{path}", {"payment": payment.encode()})
            assert (missing.status_code, missing.json()["error"]) == (404, "unknown_payee"), path
    finally:
        code = server.stop()
    assert code == 0, server.err.read_text()[-3000:]

    # Each freelancer's store: exactly its own channels, as payee, with their ledgers.
    for freelancer in freelancers:
        mine = [(client, channel) for client, f, channel in channels if f is freelancer]
        with VoucherStore(url, owner=freelancer.address) as store:
            held = store.channels()
            assert sorted(r.id for r in held) == sorted(c.id for _, c in mine)
            assert {(r.role, r.key.payee) for r in held} == {("payee", freelancer.address)}
            for _, channel in mine:
                expected = TASKS + (1 if channel is channels[2][2] else 0)
                assert len(store.ledger(channel.ref)) == store.voucher_count(channel.ref) == expected
    # Nobody else's store sees any of it: not the platform's, nor a store without an owner.
    for owner in (platform.address, None):
        with VoucherStore(url, owner=owner) as store:
            assert store.channels() == []

    # The same channel, stored by its payer and by its payee in one database, is two rows apart.
    client, freelancer, channel = channels[2]
    with VoucherStore(url, owner=client.address) as theirs, VoucherStore(url, owner=freelancer.address) as ours:
        assert sorted(r.id for r in theirs.channels()) == sorted(c.id for cl, _, c in channels if cl is client)
        paying, paid = theirs.channel(channel.ref), ours.channel(channel.ref)
        assert (paying.role, paid.role) == ("payer", "payee")
        assert paying.issued == PRICE * (TASKS + 1) and paid.issued == 0
        assert theirs.best_voucher(channel.ref) == ours.best_voucher(channel.ref)
        assert [d.state for d in theirs.deliveries(channel.ref)] == ["held"] * TASKS + ["queued"]
        assert ours.deliveries(channel.ref) == []
    with psycopg.connect(url) as db:
        rows = db.execute("SELECT uid, owner, role FROM channels WHERE id = %s", (channel.id,)).fetchall()
        assert sorted((bytes(uid), owner, role) for uid, owner, role in rows) == sorted([
            (store_key(channel.ref, client.address), client.address, "payer"),
            (store_key(channel.ref, freelancer.address), freelancer.address, "payee")])
        (total,) = db.execute("SELECT count(*) FROM channels").fetchone()
        assert total == 2 * len(channels)  # each channel once for its payer, once for its payee
