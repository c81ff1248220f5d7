"""Plans and feedback as documents, with no chain: their hashes are the EIP-712 digests a wallet
signs (eth-account and a hand encoding with eth-abi agree), every text form round-trips, untrusted
text is bounded and anything malformed is an InvalidPlan (never another exception), and a plan
changed after it was signed, or signed by a third key, does not verify."""

from __future__ import annotations

import contextlib
import dataclasses
import json

import pytest
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from micropay._utils import textform
from micropay._utils.bounded import MAX_DEPTH
from micropay._utils.crypto import unsafe_sign_digest
from micropay.documents import MAX_DOCUMENT_BYTES, MAX_TEXT, canonical
from micropay.errors import InvalidPlan, MicropayValueError
from micropay.feedback import MAX_TEXT as MAX_FEEDBACK_TEXT
from micropay.feedback import STATUSES, Feedback, SignedFeedback, parse_feedback
from micropay.plan import MAX_PLAN_JSON, MAX_TASKS, ZERO_HASH, Plan, PlanTask, SignedPlan, parse_plan
from micropay.types import MAX_AMOUNT

PAYER = Account.from_key(b"\x41" * 32)
PAYEE = Account.from_key(b"\x42" * 32)
STRANGER = Account.from_key(b"\x43" * 32)
ESCROW = "0x" + "ab" * 20
ETH = "0x" + "00" * 20
CHAIN = 31337

# The type strings as the issue writes them, typed again here: a second implementation.
DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
TASK_TYPE = "Task(string id,string title,uint256 price,uint64 due,string criteria)"
PLAN_TYPE = ("Plan(string title,address payer,address payee,address token,Task[] tasks,uint32 version,"
             "bytes32 amends,address proposer,uint64 proposedAt,string inbox)")
FEEDBACK_TYPE = "Feedback(bytes32 plan,string taskId,string status,bytes32 deliverable,string note,uint64 at)"


def a_plan(**changes: object) -> Plan:
    fields: dict[str, object] = {
        "title": "Brand refresh", "payer": PAYER.address, "payee": PAYEE.address, "chain_id": CHAIN,
        "escrow": ESCROW, "token": ETH, "proposer": PAYEE.address, "proposed_at": 1_700_000_000,
        "tasks": (PlanTask("logo", "Logo draft", 5 * 10**15, 1_700_600_000, "three options"),
                  PlanTask("site", "Landing page", 7 * 10**15))}
    fields.update(changes)
    return Plan(**fields)  # type: ignore[arg-type]


def both_signed(plan: Plan) -> SignedPlan:
    return SignedPlan(plan).signed_by(PAYEE).signed_by(PAYER)


def a_feedback(**changes: object) -> Feedback:
    fields: dict[str, object] = {"chain_id": CHAIN, "escrow": ESCROW, "plan": a_plan().hash, "task_id": "logo",
                                 "status": "delivered", "at": 1_700_100_000, "deliverable": b"\x11" * 32,
                                 "note": "v1 attached"}
    fields.update(changes)
    return Feedback(**fields)  # type: ignore[arg-type]


def wallet_digest(typed_data: dict[str, object]) -> bytes:
    message = encode_typed_data(full_message=typed_data)
    return keccak(b"\x19" + message.version + message.header + message.body)


# -- a second implementation: eth-abi words, by hand ---------------------------------------------


def hand_domain(chain_id: int, escrow: str) -> bytes:
    return keccak(abi_encode(["bytes32", "bytes32", "bytes32", "uint256", "address"],
                             [keccak(text=DOMAIN_TYPE), keccak(text="MicropayEscrow"), keccak(text="2"), chain_id,
                              escrow]))


def hand_plan_digest(plan: Plan) -> bytes:
    tasks = b"".join(
        keccak(abi_encode(["bytes32", "bytes32", "bytes32", "uint256", "uint64", "bytes32"],
                          [keccak(text=TASK_TYPE), keccak(text=t.id), keccak(text=t.title), t.price, t.due,
                           keccak(text=t.criteria)]))
        for t in plan.tasks)
    struct = keccak(abi_encode(
        ["bytes32", "bytes32", "address", "address", "address", "bytes32", "uint32", "bytes32", "address", "uint64",
         "bytes32"],
        [keccak(text=PLAN_TYPE + TASK_TYPE), keccak(text=plan.title), plan.payer, plan.payee, plan.token,
         keccak(tasks), plan.version, plan.amends, plan.proposer, plan.proposed_at, keccak(text=plan.inbox)]))
    return keccak(b"\x19\x01" + hand_domain(plan.chain_id, plan.escrow) + struct)


def hand_feedback_digest(f: Feedback) -> bytes:
    struct = keccak(abi_encode(["bytes32", "bytes32", "bytes32", "bytes32", "bytes32", "bytes32", "uint64"],
                               [keccak(text=FEEDBACK_TYPE), f.plan, keccak(text=f.task_id), keccak(text=f.status),
                                f.deliverable, keccak(text=f.note), f.at]))
    return keccak(b"\x19\x01" + hand_domain(f.chain_id, f.escrow) + struct)


# -- strategies -------------------------------------------------------------------------------------

texts = st.text(max_size=24)  # hypothesis leaves out lone surrogates: these are all valid Unicode
required_texts = st.text(min_size=1, max_size=24).filter(lambda s: s.strip())
addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
hashes = st.binary(min_size=32, max_size=32)


@st.composite
def plan_tasks(draw: st.DrawFn) -> tuple[PlanTask, ...]:
    ids = draw(st.lists(required_texts, min_size=1, max_size=6, unique=True))
    cap = MAX_AMOUNT // len(ids)
    return tuple(PlanTask(i, draw(required_texts), draw(st.integers(1, cap) | st.just(cap)),
                          draw(st.integers(0, 2**64 - 1) | st.just(0)), draw(texts)) for i in ids)


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    version = draw(st.integers(1, 2**32 - 1) | st.just(1))
    amends = ZERO_HASH if version == 1 else draw(hashes.filter(any))
    proposer = draw(st.sampled_from([PAYER.address, PAYEE.address]))
    return Plan(draw(required_texts), PAYER.address, PAYEE.address, draw(st.integers(1, 2**64 - 1)), draw(addresses),
                draw(st.just(ETH) | addresses), draw(plan_tasks()), proposer, draw(st.integers(0, 2**64 - 1)), version,
                amends, draw(texts))


@st.composite
def signed_plans(draw: st.DrawFn) -> SignedPlan:
    plan = draw(plans())
    signed = SignedPlan(plan)
    for account in draw(st.sampled_from([(PAYEE,), (PAYER,), (PAYEE, PAYER)])):
        signed = signed.signed_by(account)
    return signed


@st.composite
def feedbacks(draw: st.DrawFn) -> Feedback:
    return Feedback(draw(st.integers(1, 2**64 - 1)), draw(addresses), draw(hashes), draw(required_texts),
                    draw(st.sampled_from(STATUSES)), draw(st.integers(0, 2**64 - 1)), draw(hashes), draw(texts))


PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- interop with wallet typed data ---------------------------------------------------------------

EDGE_PLANS = [
    pytest.param(a_plan(), id="plain"),
    pytest.param(a_plan(title="Refonte de marque — 品牌 🎨", tasks=(
        PlanTask("logo ✓", "Логотип", 1, 0, ""), PlanTask("ü", "☃", 2, 0, "critères: « oui »"))), id="unicode"),
    pytest.param(a_plan(tasks=(PlanTask("all", "Everything", MAX_AMOUNT, 0, ""),)), id="largest-price-due-0"),
    pytest.param(a_plan(tasks=(PlanTask("t", "T", 1, 2**64 - 1, ""),), proposer=PAYER.address, proposed_at=0,
                        inbox="https://freelancer.example/pay"), id="largest-due"),
    pytest.param(a_plan(version=7, amends=b"\x99" * 32, token="0x" + "cd" * 20, chain_id=2**64 - 1),
                 id="amendment"),
]


@pytest.mark.parametrize("plan", EDGE_PLANS)
def test_the_plan_hash_is_the_digest_a_wallet_signs(plan):
    assert plan.hash == wallet_digest(plan.typed_data()) == hand_plan_digest(plan)


@pytest.mark.parametrize("plan", EDGE_PLANS)
def test_a_wallet_typed_data_signature_verifies(plan):
    payee = Account.sign_typed_data(PAYEE.key, full_message=plan.typed_data())  # eth_signTypedData_v4
    payer = Account.sign_message(encode_typed_data(full_message=plan.typed_data()), PAYER.key)
    signed = SignedPlan(plan, bytes(payer.signature), bytes(payee.signature))
    signed.verify()
    assert signed.in_force
    assert signed == both_signed(plan)  # the same signature micropay makes (RFC 6979: deterministic)


def test_a_wallet_signature_by_the_wrong_key_does_not_verify():
    plan = a_plan()
    by_payer = bytes(Account.sign_typed_data(PAYER.key, full_message=plan.typed_data()).signature)
    with pytest.raises(InvalidPlan, match="payee signature is not by its payee"):
        SignedPlan(plan, payee_signature=by_payer).verify()


EDGE_FEEDBACK = [
    pytest.param(a_feedback(), id="delivered"),
    pytest.param(a_feedback(status="changes requested", note="Plus grand, s'il vous plaît 🙏", deliverable=bytes(32)),
                 id="unicode-note"),
    pytest.param(a_feedback(status="approved", task_id="ü ✓", at=0, note=""), id="empty-note-at-0"),
    pytest.param(a_feedback(at=2**64 - 1, chain_id=2**64 - 1), id="largest"),
]


@pytest.mark.parametrize("feedback", EDGE_FEEDBACK)
def test_the_feedback_hash_is_the_digest_a_wallet_signs(feedback):
    assert feedback.hash == wallet_digest(feedback.typed_data()) == hand_feedback_digest(feedback)


@pytest.mark.parametrize("feedback", EDGE_FEEDBACK)
def test_a_wallet_signed_feedback_verifies(feedback):
    author = PAYEE if feedback.status == "delivered" else PAYER
    signature = bytes(Account.sign_typed_data(author.key, full_message=feedback.typed_data()).signature)
    SignedFeedback(feedback, signature).verify(a_plan(chain_id=feedback.chain_id, escrow=feedback.escrow))
    assert SignedFeedback(feedback, signature) == SignedFeedback.sign(feedback, author)


@PROPERTY
@given(plan=plans())
def test_any_plan_hash_agrees_with_eth_account_and_eth_abi(plan):
    assert plan.hash == wallet_digest(plan.typed_data()) == hand_plan_digest(plan)


@PROPERTY
@given(feedback=feedbacks())
def test_any_feedback_hash_agrees_with_eth_account_and_eth_abi(feedback):
    assert feedback.hash == wallet_digest(feedback.typed_data()) == hand_feedback_digest(feedback)


# -- round trips ------------------------------------------------------------------------------------


@PROPERTY
@given(signed=signed_plans())
def test_a_signed_plan_round_trips_through_every_text_form(signed):
    text = signed.encode()
    assert text.startswith("mpl1") and text == text.lower()
    for form in (text, text.upper(), f"  {text[:40]}\n{text[40:]}\n", text.encode(), signed.to_json(),
                 signed.to_json().encode()):
        parsed = parse_plan(form)
        assert parsed == signed and parsed.hash == signed.hash
        assert parsed.in_force == signed.in_force
        parsed.verify()
    assert parse_plan(signed) is signed
    assert json.loads(signed.to_json()) == signed.to_dict()


@PROPERTY
@given(plan=plans(), payer=st.binary(max_size=200), payee=st.binary(max_size=200))
def test_a_plan_with_any_signature_bytes_round_trips(plan, payer, payee):
    signed = SignedPlan(plan, payer, payee)  # a contract wallet's signature has no fixed length
    assert parse_plan(signed.encode()) == signed == parse_plan(signed.to_json())


@PROPERTY
@given(feedback=feedbacks(), signature=st.binary(min_size=1, max_size=200))
def test_feedback_round_trips_through_every_text_form(feedback, signature):
    signed = SignedFeedback(feedback, signature)
    text = signed.encode()
    assert text.startswith("mpf1")
    for form in (text, text.upper(), text.encode(), signed.to_json(), signed.to_json().encode()):
        parsed = parse_feedback(form)
        assert parsed == signed and parsed.hash == signed.hash
    assert parse_feedback(signed) is signed


@PROPERTY
@given(feedback=feedbacks())
def test_signed_feedback_round_trips_and_verifies(feedback):
    plan = a_plan(chain_id=feedback.chain_id, escrow=feedback.escrow)
    signed = SignedFeedback.sign(feedback, PAYEE if feedback.status == "delivered" else PAYER)
    for form in (signed.encode(), signed.to_json()):
        parse_feedback(form).verify(plan)


# -- bounded parsing: anything malformed is an InvalidPlan --------------------------------------------


def plan_json() -> dict:
    return both_signed(a_plan()).to_dict()


def mpl1(document: object) -> str:
    return textform.wrap("mpl1", json.dumps(document).encode())


def mutated(edit) -> dict:
    document = plan_json()
    edit(document)
    return document


MALFORMED_PLANS = {
    "too-long-text": "mpl1" + "a" * (MAX_TEXT + 1),
    "too-long-bytes": b"mpl1" + b"a" * (MAX_TEXT + 1),
    "too-large-json": '{"micropay": "plan", "pad": "' + "x" * MAX_DOCUMENT_BYTES + '"}',
    "too-large-payload": textform.wrap("mpl1", b'{"pad": "' + b"x" * MAX_DOCUMENT_BYTES + b'"}'),
    "100000-brackets-in-json": '{"plan": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "100000-brackets-in-text": textform.wrap("mpl1", b"[" * 100_000),
    "100000-bare-brackets": "[" * 100_000,
    "one-level-too-deep": mpl1(mutated(lambda d: d.update(pad=json.loads("[" * MAX_DEPTH + "]" * MAX_DEPTH)))),
    "not-utf8-bytes": b'{"micropay": "plan", "x": "\xff\xfe"}',
    "not-utf8-payload": textform.wrap("mpl1", b'{"micropay": "plan", "x": "\xc3\x28"}'),
    "empty": "",
    "whitespace": " \n ",
    "not-json": "{micropay: plan}",
    "json-list": "[]",
    "prefix-only": "mpl1",
    "wrong-prefix": "mpp1" + both_signed(a_plan()).encode()[4:],
    "garbage-after-prefix": "mpl1" + "0189!",
    "cut-short": both_signed(a_plan()).encode()[:-7],
    "lone-surrogate-title": json.dumps(mutated(lambda d: d["plan"].update(title="\ud800"))),
    "lone-surrogate-task": mpl1(mutated(lambda d: d["plan"]["tasks"][0].update(title="a\udfffb"))),
    "raw-lone-surrogate-title": json.dumps(mutated(lambda d: d["plan"].update(title="\ud800")),
                                           ensure_ascii=False),
    "feedback-text": SignedFeedback.sign(a_feedback(), PAYEE).encode(),
    "feedback-json": SignedFeedback.sign(a_feedback(), PAYEE).to_json(),
    "mpf1-holding-a-plan": textform.wrap("mpf1", canonical(plan_json())),
    "mpl1-holding-feedback": textform.wrap("mpl1", canonical(SignedFeedback.sign(a_feedback(), PAYEE).to_dict())),
    "extra-top-field": mpl1(mutated(lambda d: d.update(extra=1))),
    "missing-top-field": mpl1(mutated(lambda d: d.pop("signatures"))),
    "extra-plan-field": mpl1(mutated(lambda d: d["plan"].update(extra=""))),
    "missing-plan-field": mpl1(mutated(lambda d: d["plan"].pop("inbox"))),
    "extra-task-field": mpl1(mutated(lambda d: d["plan"]["tasks"][0].update(extra=""))),
    "missing-task-field": mpl1(mutated(lambda d: d["plan"]["tasks"][1].pop("criteria"))),
    "extra-signature": mpl1(mutated(lambda d: d["signatures"].update(stranger=""))),
    "wrong-kind": mpl1(mutated(lambda d: d.update(micropay="payment"))),
    "null-plan": mpl1(mutated(lambda d: d.update(plan=None))),
    "tasks-not-a-list": mpl1(mutated(lambda d: d["plan"].update(tasks={"0": {}}))),
    "no-tasks": mpl1(mutated(lambda d: d["plan"].update(tasks=[]))),
    "task-not-an-object": mpl1(mutated(lambda d: d["plan"]["tasks"].append("task"))),
    "price-number": mpl1(mutated(lambda d: d["plan"]["tasks"][0].update(price=5))),
    "price-negative": mpl1(mutated(lambda d: d["plan"]["tasks"][0].update(price="-5"))),
    "price-exponent": mpl1(mutated(lambda d: d["plan"]["tasks"][0].update(price="1e18"))),
    "price-hex": mpl1(mutated(lambda d: d["plan"]["tasks"][0].update(price="0x10"))),
    "price-fraction": mpl1(mutated(lambda d: d["plan"]["tasks"][0].update(price="1.5"))),
    "price-spaces": mpl1(mutated(lambda d: d["plan"]["tasks"][0].update(price=" 15"))),
    "price-arabic-digits": mpl1(mutated(lambda d: d["plan"]["tasks"][0].update(price="١٢"))),
    "price-superscript": mpl1(mutated(lambda d: d["plan"]["tasks"][0].update(price="²"))),
    "price-empty": mpl1(mutated(lambda d: d["plan"]["tasks"][0].update(price=""))),
    "price-zero": mpl1(mutated(lambda d: d["plan"]["tasks"][0].update(price="0"))),
    "price-5000-digits": mpl1(mutated(lambda d: d["plan"]["tasks"][0].update(price="9" * 5000))),
    "price-above-a-channel": mpl1(mutated(lambda d: d["plan"]["tasks"][0].update(price=str(MAX_AMOUNT + 1)))),
    "total-above-a-channel": mpl1(mutated(lambda d: [t.update(price=str(MAX_AMOUNT)) for t in d["plan"]["tasks"]])),
    "due-5000-digits": '{"micropay": "plan", "plan": {"due": ' + "9" * 5000 + "}}",
    "due-negative": mpl1(mutated(lambda d: d["plan"]["tasks"][0].update(due=-1))),
    "due-string": mpl1(mutated(lambda d: d["plan"]["tasks"][0].update(due="5"))),
    "due-float": mpl1(mutated(lambda d: d["plan"]["tasks"][0].update(due=5.0))),
    "due-above-uint64": mpl1(mutated(lambda d: d["plan"]["tasks"][0].update(due=2**64))),
    "version-bool": mpl1(mutated(lambda d: d["plan"].update(version=True))),
    "version-0": mpl1(mutated(lambda d: d["plan"].update(version=0))),
    "chain-id-0": mpl1(mutated(lambda d: d["plan"].update(chainId=0))),
    "chain-id-string": mpl1(mutated(lambda d: d["plan"].update(chainId="1"))),
    "duplicate-task-ids": mpl1(mutated(lambda d: d["plan"]["tasks"][1].update(id="logo"))),
    "too-many-tasks": mpl1(mutated(lambda d: d["plan"].update(
        tasks=[{"id": str(i), "title": "t", "price": "1", "due": 0, "criteria": ""} for i in range(MAX_TASKS + 1)]))),
    "version-1-amends-something": mpl1(mutated(lambda d: d["plan"].update(amends="0x" + "11" * 32))),
    "version-2-amends-nothing": mpl1(mutated(lambda d: d["plan"].update(version=2))),
    "amends-short": mpl1(mutated(lambda d: d["plan"].update(amends="0x" + "00" * 31))),
    "amends-not-hex": mpl1(mutated(lambda d: d["plan"].update(amends="0x" + "zz" * 32))),
    "empty-title": mpl1(mutated(lambda d: d["plan"].update(title=" "))),
    "empty-task-id": mpl1(mutated(lambda d: d["plan"]["tasks"][0].update(id=""))),
    "title-too-long": mpl1(mutated(lambda d: d["plan"].update(title="é" * 257))),
    "title-not-text": mpl1(mutated(lambda d: d["plan"].update(title=["Brand"]))),
    "payer-is-payee": mpl1(mutated(lambda d: d["plan"].update(payer=PAYEE.address))),
    "proposer-a-stranger": mpl1(mutated(lambda d: d["plan"].update(proposer=STRANGER.address))),
    "bad-address-checksum": mpl1(mutated(lambda d: d["plan"].update(payee="0x" + PAYEE.address[2:].swapcase()))),
    "address-not-hex": mpl1(mutated(lambda d: d["plan"].update(escrow="0x" + "zz" * 20))),
    "signature-not-hex": mpl1(mutated(lambda d: d["signatures"].update(payer="0xzz"))),
    "signature-odd-length": mpl1(mutated(lambda d: d["signatures"].update(payer="0xabc"))),
    "signature-too-long": mpl1(mutated(lambda d: d["signatures"].update(payer="0x" + "ab" * 4097))),
    "signature-not-text": mpl1(mutated(lambda d: d["signatures"].update(payer=None))),
}


@pytest.mark.parametrize("text", MALFORMED_PLANS.values(), ids=MALFORMED_PLANS.keys())
def test_a_malformed_plan_is_an_invalid_plan(text):
    with pytest.raises(InvalidPlan) as raised:
        parse_plan(text)
    assert isinstance(raised.value, MicropayValueError)


def test_the_depth_limit_admits_a_real_plan_but_not_one_level_more():
    assert parse_plan(mpl1(plan_json())) == both_signed(a_plan())
    with pytest.raises(InvalidPlan, match=f"nested deeper than {MAX_DEPTH} levels"):
        parse_plan(MALFORMED_PLANS["one-level-too-deep"])


LONGEST_SIGNATURE = b"\xab" * 4096  # a contract wallet's (EIP-1271) signature can be this long


def test_a_plan_of_max_tasks_with_the_longest_fields_parses():
    tasks = tuple(PlanTask(f"{i:03}" + "t" * 253, "é" * 256, 1, 2**64 - 1, "ü" * 1024) for i in range(MAX_TASKS))
    signed = SignedPlan(a_plan(title="ß" * 256, tasks=tasks, inbox="i" * 512), LONGEST_SIGNATURE, LONGEST_SIGNATURE)
    assert parse_plan(signed.encode()) == signed == parse_plan(signed.to_json())


def escaped_plan(size: int) -> Plan:
    """A plan of ``size`` characters of criteria, 2048 to a task: each one JSON writes as six (``\\u0001``)."""
    full, rest = divmod(size, 2049)
    return a_plan(tasks=tuple(PlanTask(f"{i:03}", "t", 1, 0, "\x01" * (2048 if i < full else rest))
                              for i in range(full + 1)))


def test_the_largest_plan_that_can_be_made_travels_in_every_form():
    low, high = 0, MAX_TASKS * 2049 - 1  # the largest plan that can be made: the size limit, to a character
    while low < high:
        middle = (low + high + 1) // 2
        try:
            escaped_plan(middle)
            low = middle
        except InvalidPlan:
            high = middle - 1
    with pytest.raises(InvalidPlan, match="could not travel"):
        escaped_plan(low + 1)
    signed = SignedPlan(escaped_plan(low), LONGEST_SIGNATURE, LONGEST_SIGNATURE)
    assert len(canonical(signed.plan.to_dict())) > MAX_PLAN_JSON - 100
    text, document = signed.encode(), signed.to_json()
    assert len(document) > MAX_DOCUMENT_BYTES * 0.9
    assert parse_plan(text) == signed == parse_plan(document) == parse_plan(document.encode())
    wrapped = "\n".join(text[i:i + 76] for i in range(0, len(text), 76))  # as a mail client wraps it
    assert parse_plan(wrapped) == signed


def test_the_longest_feedback_travels_in_every_form():
    feedback = a_feedback(task_id="\x01" * 256, note="\x01" * 2048, status="changes requested")
    signed = SignedFeedback(feedback, LONGEST_SIGNATURE)
    for form in (signed.encode(), signed.to_json(), signed.to_json().encode()):
        assert parse_feedback(form) == signed
    with pytest.raises(InvalidPlan, match="1 to 4096 bytes"):
        SignedFeedback(feedback, LONGEST_SIGNATURE + b"\x00")
    with pytest.raises(InvalidPlan, match="1 to 4096 bytes"):
        SignedFeedback(feedback, b"")


@pytest.mark.parametrize("position", [4, 5, 20, 100, -30, -8, -2])
def test_one_changed_character_fails_the_checksum(position):
    text = both_signed(a_plan()).encode()
    changed = one_character_changed(text, position % len(text))
    with pytest.raises(InvalidPlan, match=r"checksum|mistyped|cut"):
        parse_plan(changed)


@pytest.mark.parametrize("value", [None, 5, ["mpl1"], {"micropay": "plan"}, bytearray(b"mpl1")])
def test_what_is_no_text_is_an_invalid_plan(value):
    with pytest.raises(InvalidPlan):
        parse_plan(value)
    with pytest.raises(InvalidPlan):
        parse_feedback(value)


def one_character_changed(text: str, index: int) -> str:
    return text[:index] + ("b" if text[index] != "b" else "c") + text[index + 1:]


def feedback_json() -> dict:
    return SignedFeedback.sign(a_feedback(), PAYEE).to_dict()


def mpf1(document: object) -> str:
    return textform.wrap("mpf1", json.dumps(document).encode())


def feedback_mutated(edit) -> dict:
    document = feedback_json()
    edit(document)
    return document


MALFORMED_FEEDBACK = {
    "too-long-text": "mpf1" + "a" * (MAX_FEEDBACK_TEXT + 1),
    "too-long-json": '{"micropay": "feedback", "pad": "' + "x" * MAX_FEEDBACK_TEXT + '"}',
    "100000-brackets-in-json": '{"feedback": ' + "[" * 100_000 + "}",
    "100000-brackets-in-text": textform.wrap("mpf1", b"[" * 9_000),
    "not-utf8": b'{"micropay": "feedback", "x": "\xff"}',
    "plan-text": both_signed(a_plan()).encode(),
    "plan-json": both_signed(a_plan()).to_json(),
    "mpf1-holding-a-plan": textform.wrap("mpf1", canonical(plan_json())),
    "mpl1-holding-feedback": textform.wrap("mpl1", canonical(feedback_json())),
    "wrong-checksum": one_character_changed(SignedFeedback.sign(a_feedback(), PAYEE).encode(), 10),
    "no-signature": mpf1(feedback_mutated(lambda d: d.update(signature=""))),
    "extra-field": mpf1(feedback_mutated(lambda d: d["feedback"].update(extra=1))),
    "missing-field": mpf1(feedback_mutated(lambda d: d["feedback"].pop("note"))),
    "unknown-status": mpf1(feedback_mutated(lambda d: d["feedback"].update(status="paid"))),
    "status-not-text": mpf1(feedback_mutated(lambda d: d["feedback"].update(status=["delivered"]))),
    "lone-surrogate-note": json.dumps(feedback_mutated(lambda d: d["feedback"].update(note="\udc80"))),
    "lone-surrogate-task": mpf1(feedback_mutated(lambda d: d["feedback"].update(taskId="\ud800"))),
    "at-5000-digits": '{"micropay": "feedback", "feedback": {"at": ' + "9" * 5000 + "}}",
    "at-negative": mpf1(feedback_mutated(lambda d: d["feedback"].update(at=-1))),
    "plan-short": mpf1(feedback_mutated(lambda d: d["feedback"].update(plan="0x" + "11" * 31))),
    "deliverable-not-hex": mpf1(feedback_mutated(lambda d: d["feedback"].update(deliverable="0x" + "gg" * 32))),
    "note-too-long": mpf1(feedback_mutated(lambda d: d["feedback"].update(note="n" * 2049))),
}


@pytest.mark.parametrize("text", MALFORMED_FEEDBACK.values(), ids=MALFORMED_FEEDBACK.keys())
def test_malformed_feedback_is_an_invalid_plan(text):
    with pytest.raises(InvalidPlan):
        parse_feedback(text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=15,
)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_a_mutated_plan_document_is_an_invalid_plan_or_does_not_verify(data):
    document = plan_json()
    where = data.draw(st.sampled_from(["top", "plan", "task", "signatures"]))
    target = {"top": document, "plan": document["plan"], "task": document["plan"]["tasks"][0],
              "signatures": document["signatures"]}[where]
    target[data.draw(st.sampled_from(sorted(target)))] = data.draw(json_values)
    form = data.draw(st.sampled_from([mpl1, json.dumps]))
    try:
        parsed = parse_plan(form(document))
    except InvalidPlan:
        return
    original = both_signed(a_plan())
    if parsed.plan == original.plan and all(parsed.signature(r) in (b"", original.signature(r))
                                            for r in ("payer", "payee")) and (parsed.payer_signature
                                                                             or parsed.payee_signature):
        parsed.verify()  # the same value written again, or a signature left out: still the signed plan
        return
    with pytest.raises(InvalidPlan):
        parsed.verify()


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: textform.wrap("mpl1", b)))
def test_any_text_is_a_plan_or_an_invalid_plan(text):
    for parse in (parse_plan, parse_feedback):
        with contextlib.suppress(InvalidPlan):
            parse(text)


# -- tampering and foreign signatures -------------------------------------------------------------

TAMPERINGS = {
    "price": lambda p: dataclasses.replace(p, tasks=(dataclasses.replace(p.tasks[0], price=p.tasks[0].price + 1),
                                                     *p.tasks[1:])),
    "title": lambda p: dataclasses.replace(p, title=p.title + "!"),
    "task-title": lambda p: dataclasses.replace(p, tasks=(dataclasses.replace(p.tasks[0], title="Logo"),
                                                          *p.tasks[1:])),
    "task-due": lambda p: dataclasses.replace(p, tasks=(dataclasses.replace(p.tasks[0], due=0), *p.tasks[1:])),
    "task-criteria": lambda p: dataclasses.replace(p, tasks=(dataclasses.replace(p.tasks[0], criteria=""),
                                                             *p.tasks[1:])),
    "task-removed": lambda p: dataclasses.replace(p, tasks=p.tasks[:1]),
    "task-added": lambda p: dataclasses.replace(p, tasks=(*p.tasks, PlanTask("more", "More", 1))),
    "tasks-reordered": lambda p: dataclasses.replace(p, tasks=p.tasks[::-1]),
    "chain": lambda p: dataclasses.replace(p, chain_id=p.chain_id + 1),
    "escrow": lambda p: dataclasses.replace(p, escrow="0x" + "ac" * 20),
    "token": lambda p: dataclasses.replace(p, token="0x" + "cd" * 20),
    "inbox": lambda p: dataclasses.replace(p, inbox="https://attacker.example"),
    "proposer": lambda p: dataclasses.replace(p, proposer=p.payer),
    "payee-replaced": lambda p: dataclasses.replace(p, payee=STRANGER.address, proposer=p.payer),
}


@pytest.mark.parametrize("tamper", TAMPERINGS.values(), ids=TAMPERINGS.keys())
def test_a_plan_changed_after_it_was_signed_does_not_verify(tamper):
    signed = both_signed(a_plan())
    changed = tamper(signed.plan)
    assert changed.hash != signed.hash
    for partial in (SignedPlan(changed, signed.payer_signature, signed.payee_signature),
                    SignedPlan(changed, payee_signature=signed.payee_signature),
                    SignedPlan(changed, payer_signature=signed.payer_signature)):
        with pytest.raises(InvalidPlan, match="changed after it was signed"):
            partial.verify()
        with pytest.raises(InvalidPlan):
            parse_plan(partial.encode()).verify()


def test_a_price_edited_in_the_mpl1_json_does_not_verify():
    document = json.loads(textform.unwrap(both_signed(a_plan()).encode(), "mpl1", "plan"))
    document["plan"]["tasks"][0]["price"] = "1"
    edited = parse_plan(mpl1(document))  # a well-formed document, a valid checksum: only the signatures catch it
    with pytest.raises(InvalidPlan, match="payer signature is not by its payer"):
        edited.verify()


def test_a_plan_signed_by_a_third_key_as_payee_does_not_verify():
    plan = a_plan()
    forged = SignedPlan(plan, payee_signature=unsafe_sign_digest(STRANGER, plan.hash))
    with pytest.raises(InvalidPlan, match="payee signature is not by its payee"):
        forged.verify()
    with pytest.raises(InvalidPlan, match="payee signature"):
        SignedPlan(plan, unsafe_sign_digest(PAYER, plan.hash), forged.payee_signature).verify()
    with pytest.raises(InvalidPlan, match="neither the plan's payer nor its payee"):
        SignedPlan(plan).signed_by(STRANGER)
    swapped = both_signed(plan)
    with pytest.raises(InvalidPlan):
        SignedPlan(plan, swapped.payee_signature, swapped.payer_signature).verify()


def test_a_plan_with_no_signature_or_a_malleable_one_does_not_verify():
    plan = a_plan()
    with pytest.raises(InvalidPlan, match="no signature"):
        SignedPlan(plan).verify()
    good = unsafe_sign_digest(PAYEE, plan.hash)
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    s = int.from_bytes(good[32:64], "big")
    high_s = good[:32] + (n - s).to_bytes(32, "big") + bytes([55 - good[64]])  # the same signer, other form
    with pytest.raises(InvalidPlan):
        SignedPlan(plan, payee_signature=high_s).verify()


@PROPERTY
@given(payer=st.binary(max_size=130), payee=st.binary(min_size=65, max_size=65))
def test_random_signature_bytes_are_an_invalid_plan(payer, payee):
    with pytest.raises(InvalidPlan):
        SignedPlan(a_plan(), payer, payee).verify()


def test_feedback_signed_by_the_wrong_side_or_for_another_escrow_does_not_verify():
    plan = a_plan()
    with pytest.raises(InvalidPlan, match="must be signed by the plan's payee"):
        SignedFeedback.sign(a_feedback(), PAYER).verify(plan)
    with pytest.raises(InvalidPlan, match="must be signed by the plan's payer"):
        SignedFeedback.sign(a_feedback(status="changes requested"), PAYEE).verify(plan)
    with pytest.raises(InvalidPlan, match="must be signed"):
        SignedFeedback.sign(a_feedback(), STRANGER).verify(plan)
    with pytest.raises(InvalidPlan, match="another chain or escrow"):
        SignedFeedback.sign(a_feedback(escrow="0x" + "ac" * 20), PAYEE).verify(plan)
    signed = SignedFeedback.sign(a_feedback(), PAYEE)
    edited = SignedFeedback(dataclasses.replace(signed.feedback, note="v2 attached"), signed.signature)
    with pytest.raises(InvalidPlan, match="changed after it was signed"):
        edited.verify(plan)
