"""An inbox run with a key the payee delegated to (a platform that does not hold the freelancer's
key): the client's outbox verifies its acknowledgments through the delegation; an inbox with no
valid delegation does not start."""

from __future__ import annotations

import time

import pytest
from eth_account import Account

from micropay import Payee
from micropay.delegation import delegate_inbox
from micropay.errors import InvalidAcknowledgment
from micropay.inbox import Inbox
from threadserver import ThreadServer

MILLI = 10**15


def test_a_delegated_inbox_key_acknowledges_and_the_client_verifies_it(clients, freelancer, make_payer, lib_escrow,
                                                                       store_at):
    platform_key = Account.create()  # the platform's key: it never holds the freelancer's
    delegation = delegate_inbox(freelancer, platform_key.address, chain_id=lib_escrow.chain_id,
                                escrow=lib_escrow.address, until=int(time.time()) + 86_400)
    hosted = Payee(lib_escrow, freelancer.address, store_at("hosted"))  # an address, not a key
    inbox = Inbox(hosted, delegated=(platform_key, delegation))
    served = ThreadServer(inbox.app)
    try:
        payer = make_payer(clients[0], "delegating")
        channel = payer.open_channel(freelancer.address, 10**17)
        payer.set_inbox(channel.id, served.url)
        payer.pay(channel.id, 3 * MILLI, task="logo")  # delivered: the acknowledgment is verified
        (row,) = payer.store.deliveries(channel.ref)
        assert row.state == "held" and row.ack_amount == 3 * MILLI
        assert hosted.store.best_voucher(hosted.ref(channel.id))[0].amount == 3 * MILLI
    finally:
        served.stop()
        inbox.close()


def test_an_inbox_with_no_valid_delegation_does_not_start(freelancer, lib_escrow, store_at):
    key, stranger = Account.create(), Account.create()
    hosted = Payee(lib_escrow, freelancer.address, store_at("h"))
    with pytest.raises(Exception, match="key"):
        Inbox(hosted)  # neither the payee's key nor a delegation: nothing to acknowledge with
    expired = delegate_inbox(freelancer, key.address, chain_id=lib_escrow.chain_id, escrow=lib_escrow.address,
                             until=int(time.time()) - 1)
    with pytest.raises(InvalidAcknowledgment, match="ran out"):
        Inbox(hosted, delegated=(key, expired))
    not_theirs = delegate_inbox(stranger, key.address, chain_id=lib_escrow.chain_id, escrow=lib_escrow.address,
                                until=int(time.time()) + 60)
    with pytest.raises(InvalidAcknowledgment, match="no delegation from the payee"):
        Inbox(hosted, delegated=(key, not_theirs))
