"""Backups keep plans: a bundle carries each channel's terms, every plan version and every piece of
feedback, verified before anything is written and merged with what a store already holds."""

from __future__ import annotations

import json
import time

import pytest

from micropay import VoucherStore
from micropay.bundle import bundle_digest
from micropay.errors import InvalidPlan, StoreError
from micropay.plan import Plan, PlanTask, SignedPlan
from micropay.planbook import PlanBook
from micropay.progress import progress
from store_snapshot import store_state

MILLI = 10**15


def story(payer, payee, freelancer, client):
    """A payee store holding a plan in force (version 1), an agreed amendment (version 2), a
    proposal not yet accepted (version 3), a paid task and two pieces of feedback."""
    tasks = tuple(PlanTask(i, i.title(), p * MILLI, int(time.time()) + 86_400) for i, p in
                  (("logo", 5), ("site", 7), ("final", 4)))
    v1 = Plan("Brand refresh", payer.address, payee.address, payee.escrow.chain_id, payee.escrow.address,
              "0x" + "00" * 20, tasks, payee.address, int(time.time()))
    accepted = payer.plans.accept(payee.plans.propose(v1, freelancer).encode(), client)
    payee.plans.take(accepted)
    root = accepted.hash
    record = payer.open_for_plan(root)
    assert payee.receive(payer.pay_task(record.id, "logo")).terms.kind == "plan"
    payee.plans.give(freelancer, root, "site", "delivered", deliverable=b"\x11" * 32)
    payer.plans.take_feedback(payee.store.feedback(root)[-1].signed)
    payee.plans.take_feedback(payer.plans.give(client, root, "site", "changes requested", note="bigger"))
    v2 = Plan(v1.title, v1.payer, v1.payee, v1.chain_id, v1.escrow, v1.token,
              (*tasks, PlanTask("social", "Social kit", 2 * MILLI)), payer.address, int(time.time()),
              version=2, amends=v1.hash)
    payee.plans.accept(payer.plans.propose(v2, client).encode(), freelancer)
    v3 = Plan(v1.title, v1.payer, v1.payee, v1.chain_id, v1.escrow, v1.token, tasks, payee.address,
              int(time.time()), version=3, amends=v2.hash)
    payee.plans.propose(v3, freelancer)
    return record, root


def held(store, root):
    """What a store holds of project ``root``, without the times it received each document."""
    return ([(p.root, p.signed) for p in store.plans(root)], [f.signed for f in store.feedback(root)])


def resealed(bundle):
    bundle["sha256"] = bundle_digest(bundle)
    return bundle


def test_a_round_trip_keeps_plans_amendments_feedback_and_terms(clients, freelancer, make_payer, payee, store_at):
    payer = make_payer(clients[0], "round-trip-client")
    record, root = story(payer, payee, freelancer, clients[0])
    bundle = json.loads(json.dumps(payee.store.export()))  # survives a trip through a file
    assert bundle["version"] == 3  # an older micropay must refuse it, not drop the plans
    assert [p["plan"]["version"] for p in bundle["plans"]] == [1, 2, 3]
    assert len(bundle["feedback"]) == 2 and bundle["channels"][0]["terms"] == "0x" + root.hex()

    restored = VoucherStore(store_at("restored"))
    assert restored.import_(bundle, account=freelancer.address) == 1
    assert restored.plan_roots() == [root]
    assert held(restored, root) == held(payee.store, root)
    assert [p.signed.in_force for p in restored.plans(root)] == [True, True, False]
    assert restored.channel(record.ref).terms == root
    book = PlanBook(restored, freelancer.address)
    assert book.in_force(root).version == 2 and book.history(root).pending.signed.plan.version == 3
    mine, theirs = progress(restored, restored.channel(record.ref), freelancer.address), payee.progress(record.id)
    assert [(t.task_id, t.state, t.version, t.paid) for t in mine.tasks] == [
        (t.task_id, t.state, t.version, t.paid) for t in theirs.tasks]
    assert mine.tasks[1].state == "changes requested"

    before = held(restored, root)
    assert restored.import_(bundle) == 0  # importing again changes nothing
    assert held(restored, root) == before


def test_signatures_merge_with_the_stored_ones(clients, freelancer, make_payer, payee, store_at):
    payer = make_payer(clients[0], "merge-client")
    _, root = story(payer, payee, freelancer, clients[0])
    proposal = SignedPlan(payee.store.plan(root).signed.plan, b"", payee.store.plan(root).signed.payee_signature)
    target = VoucherStore(store_at("target"))
    PlanBook(target, freelancer.address).take(proposal)  # only the freelancer's own signature
    received_at = target.plan(root).received_at
    assert not target.plan(root).signed.in_force

    target.import_(payee.store.export())
    merged = target.plan(root)
    assert merged.signed == payee.store.plan(root).signed and merged.signed.in_force
    assert merged.received_at == received_at  # the version it held is the same version, now signed by both
    assert held(target, root) == held(payee.store, root)

    older = payee.store.export()  # a backup from before the client signed: it takes no signature away
    older["plans"][0]["signatures"]["payer"] = ""
    target.import_(resealed(older))
    assert target.plan(root).signed.in_force and held(target, root) == held(payee.store, root)


def _price(bundle):
    bundle["plans"][1]["plan"]["tasks"][0]["price"] = str(50 * MILLI)  # the amendment, re-priced after signing


def _note(bundle):
    bundle["feedback"][1]["feedback"]["note"] = "approved as is"


def _payer_signature(bundle):
    signatures = bundle["plans"][0]["signatures"]
    signatures["payer"] = signatures["payee"]  # the freelancer's signature passed off as the client's


def _feedback_signer(bundle):
    bundle["feedback"][0]["signature"] = bundle["feedback"][1]["signature"]  # signed by the wrong side


@pytest.mark.parametrize("tamper", [_price, _note, _payer_signature, _feedback_signer])
def test_a_tampered_document_is_refused_with_nothing_written(clients, freelancer, make_payer, payee, store_at,
                                                             tamper):
    payer = make_payer(clients[0], "tamper-client")
    story(payer, payee, freelancer, clients[0])
    target = VoucherStore(store_at("target"))
    before = store_state(target)
    bundle = payee.store.export()
    tamper(bundle)
    with pytest.raises(StoreError, match="checksum"):  # as edited: the checksum catches it
        target.import_(bundle)
    with pytest.raises(InvalidPlan, match="does not verify"):  # checksum fixed: the signature does not
        target.import_(resealed(bundle))
    assert store_state(target) == before
    assert target.channels() == [] and target.plan_roots() == []  # not even the valid channel


def test_an_incomplete_bundle_is_refused_with_nothing_written(clients, freelancer, make_payer, payee, store_at):
    payer = make_payer(clients[0], "incomplete-client")
    story(payer, payee, freelancer, clients[0])
    target = VoucherStore(store_at("target"))
    before = store_state(target)
    no_first = payee.store.export()
    del no_first["plans"][0]  # version 2 amends a plan it does not carry; the feedback's project is gone
    with pytest.raises(StoreError, match="feedback on plan"):
        target.import_(resealed(no_first))
    no_first["feedback"] = []
    with pytest.raises(StoreError, match="neither the bundle nor the store holds"):
        target.import_(resealed(no_first))
    assert store_state(target) == before


def test_with_an_account_a_plan_between_others_is_refused(clients, freelancer, make_payer, payee, store_at):
    payer = make_payer(clients[0], "others-client")
    story(payer, payee, freelancer, clients[0])
    others = Plan("Not ours", clients[1].address, clients[2].address, payee.escrow.chain_id, payee.escrow.address,
                  "0x" + "00" * 20, (PlanTask("x", "X", 1),), clients[1].address, int(time.time()))
    bundle = payee.store.export()
    bundle["plans"].append(SignedPlan(others).signed_by(clients[1]).to_dict())
    target = VoucherStore(store_at("target"))
    with pytest.raises(StoreError, match="not this account's"):
        target.import_(resealed(bundle), account=freelancer.address)
    assert target.channels() == [] and target.plan_roots() == []
    target.import_(bundle)  # without an account, every verified plan is kept
    assert target.plan(others.hash).signed.plan == others


def test_terms_that_contradict_the_stored_ones_are_refused(clients, freelancer, make_payer, payee, store_at):
    payer = make_payer(clients[0], "terms-client")
    story(payer, payee, freelancer, clients[0])
    target = VoucherStore(store_at("target"))
    bundle = payee.store.export()
    target.import_(bundle)
    bundle["channels"][0]["terms"] = "0x" + "77" * 32
    before = store_state(target)
    with pytest.raises(StoreError, match="terms never change"):
        target.import_(resealed(bundle))
    assert store_state(target) == before


def test_a_bundle_without_plans_stays_version_one_and_an_old_one_still_imports(clients, freelancer, make_payer,
                                                                              payee, store_at):
    payer = make_payer(clients[0], "plain-client")
    channel = payer.open_channel(freelancer.address, 10**16)
    payee.receive(payer.pay(channel.id, 10, task="t0"))
    bundle = payee.store.export()
    # Terms alone (here: none, read from the chain) do not stop an older micropay reading it.
    assert bundle["version"] == 1 and bundle["plans"] == bundle["feedback"] == []
    assert bundle["channels"][0]["terms"] == "0x" + "00" * 32

    old = json.loads(json.dumps(bundle))
    for field in ("plans", "feedback"):  # as micropay wrote it before plans existed
        del old[field]
    del old["channels"][0]["terms"]
    restored = VoucherStore(store_at("old-bundle"))
    assert restored.import_(resealed(old)) == 1
    record = restored.channel(channel.ref)
    assert record.key == channel.key and record.terms is None  # not known: `sync` reads it from the chain
    assert [e.receipt for e in restored.ledger(channel.ref)] == [e.receipt for e in payee.ledger(channel.id)]
    assert restored.plan_roots() == []
    assert restored.import_(bundle) == 1  # a newer bundle fills in the terms
    assert restored.channel(channel.ref).terms == bytes(32)
