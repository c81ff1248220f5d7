"""The plan file a freelancer writes (TOML), with no chain: a full file becomes the right Plan
(prices in ETH or a token's units, due dates in UTC), and every mistake is an InvalidPlan whose
message names the field, never another exception: not even for a file nested 100,000 deep."""

from __future__ import annotations

import calendar
import re

import pytest
from eth_account import Account

from micropay.channel import ETH
from micropay.errors import InvalidPlan
from micropay.plan import ZERO_HASH, Plan, PlanTask
from micropay.plan_source import MAX_SOURCE_BYTES, PlanSource, read_source

CLIENT = Account.from_key(b"\x51" * 32).address
FREELANCER = Account.from_key(b"\x52" * 32).address
ESCROW = Account.from_key(b"\x53" * 32).address  # any checksummed address will do
TOKEN = Account.from_key(b"\x54" * 32).address
CHAIN = 31337
NOW = 1_770_000_000
MILLI = 10**15

FULL = f"""
# A freelancer's plan, as the docstring of micropay.plan_source shows it.
title = "Brand refresh"
client = "{CLIENT}"   # who pays
token = "ETH"
inbox = "https://example.org/inbox"

[[tasks]]
id = "logo"
title = "Logo draft"
price = "0.005 ETH"
due = 2026-12-01
criteria = "Three options, SVG"

[[tasks]]
id = "palette"
title = "Colour palette"
price = "3000000 gwei"
due = 2026-12-01T17:00:00Z

[[tasks]]
id = "cards"
title = "Business cards"
price = "0.006 ether"
due = 2026-12-02T09:30:00+02:00

[[tasks]]
id = "site"
title = "Landing page"
price = "7 wei"
due = 2026-12-03T08:00:00

[[tasks]]
id = "final"
title = "Final files"
price = "1 ETH"
"""


def utc(*fields: int) -> int:
    return calendar.timegm((*fields, 0, 0, 0))


def eth_units(token: str) -> tuple[int, str]:
    assert token == ETH, token
    return 18, "ETH"


def plan_of(text: str | bytes, units=eth_units, **kwargs) -> Plan:
    return read_source(text).plan(payee=FREELANCER, chain_id=CHAIN, escrow=ESCROW, units=units, now=NOW, **kwargs)


def source(tasks: str = 'id = "logo"\ntitle = "Logo"\nprice = "0.005 ETH"\n', top: str = "") -> str:
    """A small valid file, with ``top`` added to its top level and ``tasks`` as its one task."""
    return f'title = "Brand refresh"\nclient = "{CLIENT}"\n{top}\n[[tasks]]\n{tasks}'


def refused(text: str | bytes, *fragments: str, units=eth_units) -> str:
    """The InvalidPlan message for ``text``, read and turned into a plan, holding every fragment."""
    with pytest.raises(InvalidPlan) as caught:
        plan_of(text, units)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message
    assert "\n" not in message and len(message) < 400, message
    return message


# --- a file that is right -----------------------------------------------------------------------

def test_a_full_file_becomes_the_plan_it_says():
    plan = plan_of(FULL)
    assert (plan.title, plan.payer, plan.payee, plan.chain_id, plan.escrow, plan.token) == (
        "Brand refresh", CLIENT, FREELANCER, CHAIN, ESCROW, ETH)
    assert (plan.proposer, plan.proposed_at, plan.version, plan.amends, plan.inbox) == (
        FREELANCER, NOW, 1, ZERO_HASH, "https://example.org/inbox")
    assert plan.tasks == (
        PlanTask("logo", "Logo draft", 5 * MILLI, utc(2026, 12, 1, 23, 59, 59), "Three options, SVG"),
        PlanTask("palette", "Colour palette", 3 * MILLI, utc(2026, 12, 1, 17, 0, 0)),
        PlanTask("cards", "Business cards", 6 * MILLI, utc(2026, 12, 2, 7, 30, 0)),  # +02:00 is 07:30 UTC
        PlanTask("site", "Landing page", 7, utc(2026, 12, 3, 8, 0, 0)),  # no zone: UTC
        PlanTask("final", "Final files", 10**18, 0),  # no due date
    )
    assert plan.total == 14 * MILLI + 7 + 10**18


def test_the_source_keeps_what_the_file_says_until_it_is_tied_to_a_chain():
    spec = read_source(FULL.encode())  # bytes and text read alike
    assert spec == read_source(FULL)
    assert isinstance(spec, PlanSource)
    assert (spec.title, spec.client, spec.token, spec.escrow, spec.inbox) == (
        "Brand refresh", CLIENT, ETH, None, "https://example.org/inbox")
    assert [task["price"] for task in spec.tasks] == ["0.005 ETH", "3000000 gwei", "0.006 ether", "7 wei", "1 ETH"]


def test_defaults_eth_no_inbox_no_criteria_and_any_case_of_eth():
    plan = plan_of(source())
    assert (plan.token, plan.inbox, plan.tasks[0].criteria, plan.tasks[0].due) == (ETH, "", "", 0)
    assert plan_of(source(top='token = "eth"')).token == ETH


def test_prices_in_a_tokens_units_come_from_the_units_callable():
    asked = []

    def units(token: str) -> tuple[int, str]:
        asked.append(token)
        return 6, "TUSD"

    text = source('id = "a"\ntitle = "A"\nprice = "1.5 TUSD"\n[[tasks]]\nid = "b"\ntitle = "B"\nprice = "7 units"\n'
                  '[[tasks]]\nid = "c"\ntitle = "C"\nprice = "0.000001 tusd"\n', top=f'token = "{TOKEN}"')
    plan = plan_of(text, units)
    assert asked == [TOKEN]
    assert plan.token == TOKEN
    assert [t.price for t in plan.tasks] == [1_500_000, 7, 1]
    refused(source('id = "a"\ntitle = "A"\nprice = "1.0000001 TUSD"\n', top=f'token = "{TOKEN}"'),
            "task 1 (a)", "more decimals than TUSD has (6)", units=units)
    refused(source('id = "a"\ntitle = "A"\nprice = "20 gwei"\n', top=f'token = "{TOKEN}"'),
            "task 1 (a)", "gwei is a unit of ETH", "TUSD", units=units)
    refused(source('id = "a"\ntitle = "A"\nprice = "1 ETH"\n', top=f'token = "{TOKEN}"'),
            "task 1 (a)", "in ETH", "TUSD", units=units)


def test_a_lowercase_address_is_the_same_account():
    text = source('id = "a"\ntitle = "A"\nprice = "5 units"\n', top=f'token = "{TOKEN.lower()}"')
    spec = read_source(text.replace(CLIENT, CLIENT.lower()))
    assert (spec.client, spec.token) == (CLIENT, TOKEN)  # as the plan and `plan amend` compare them
    plan = spec.plan(payee=FREELANCER, chain_id=CHAIN, escrow=ESCROW, units=lambda token: (6, "TUSD"), now=NOW)
    assert (plan.payer, plan.token) == (CLIENT, TOKEN)


def test_the_file_may_name_the_escrow_and_then_it_must_be_the_one_used():
    assert plan_of(source(top=f'escrow = "{ESCROW.lower()}"')).escrow == ESCROW
    other = Account.from_key(b"\x55" * 32).address
    refused(source(top=f'escrow = "{other}"'), f"names escrow {other}", ESCROW)


def test_an_amendment_is_the_next_version_by_either_side():
    previous = b"\x77" * 32
    plan = plan_of(source(), version=2, amends=previous, proposer=CLIENT)
    assert (plan.version, plan.amends, plan.proposer, plan.payee) == (2, previous, CLIENT, FREELANCER)


def test_a_file_of_exactly_the_limit_is_read():
    text = source().encode()
    padded = text + b"#" + b"x" * (MAX_SOURCE_BYTES - len(text) - 2) + b"\n"
    assert len(padded) == MAX_SOURCE_BYTES
    assert read_source(padded).title == "Brand refresh"


# --- every mistake names the field ----------------------------------------------------------------

@pytest.mark.parametrize(("text", "fragments"), [
    (f'client = "{CLIENT}"\n[[tasks]]\nid = "a"\ntitle = "A"\nprice = "1 ETH"\n', ("title",)),
    (source().replace('title = "Brand refresh"', "title = 5"), ("title",)),
    ('title = "T"\n[[tasks]]\nid = "a"\ntitle = "A"\nprice = "1 ETH"\n', ("client",)),
    (source().replace(f'"{CLIENT}"', "7"), ("client",)),
    (f'title = "T"\nclient = "{CLIENT}"\n', ("tasks",)),
    (f'title = "T"\nclient = "{CLIENT}"\ntasks = []\n', ("tasks",)),
    (f'title = "T"\nclient = "{CLIENT}"\ntasks = ["logo"]\n', ("tasks",)),
    (f'title = "T"\nclient = "{CLIENT}"\ntasks = "logo"\n', ("tasks",)),
    (source(top='budget = "1 ETH"'), ("unknown field", "budget", "known:", "tasks")),
    (source(top='[extra]\nx = 1'), ("unknown field", "extra")),
    (source('id = "a"\ntitle = "A"\nprice = "1 ETH"\ncost = "1 ETH"\n'), ("task 1", "unknown field", "cost",
                                                                          "known:", "price")),
    (source(top="token = 5"), ("token",)),
    (source(top="escrow = 5"), ("escrow",)),
    (source(top="inbox = ['x']"), ("inbox",)),
])
def test_the_file_is_refused_naming_the_field(text, fragments):
    with pytest.raises(InvalidPlan) as caught:
        read_source(text)
    for fragment in fragments:
        assert fragment in str(caught.value), str(caught.value)


def test_a_client_that_is_not_an_address_is_named_as_the_client():
    wrong_case = CLIENT[:2] + CLIENT[2:].swapcase()
    for bad in ("alice", "0x1234", wrong_case if wrong_case != CLIENT else "0xzz"):
        with pytest.raises(InvalidPlan, match=r"^client must be an address"):
            read_source(source().replace(CLIENT, bad))
    with pytest.raises(InvalidPlan, match=r"^token must be ETH or an address"):
        read_source(source(top='token = "USDC"'))


@pytest.mark.parametrize(("task", "fragments"), [
    ('id = "logo"\ntitle = "Logo"\nprice = "5"\n', ("task 1 (logo)", "price", "no unit", '"5 ETH"')),
    ('id = "logo"\ntitle = "Logo"\nprice = "0.5"\n', ("task 1 (logo)", "add the unit", "'0.5 ETH'")),
    ('id = "logo"\ntitle = "Logo"\nprice = 0.005\n', ("task 1 (logo)", "price must be text with its unit")),
    ('id = "logo"\ntitle = "Logo"\n', ("task 1 (logo)", "price must be text with its unit")),
    ('id = "logo"\ntitle = "Logo"\nprice = "0.0000000000000000001 ETH"\n',
     ("task 1 (logo)", "more decimals than ETH has (18)")),
    ('id = "logo"\ntitle = "Logo"\nprice = "1.5 wei"\n', ("task 1 (logo)", "whole numbers")),
    ('id = "logo"\ntitle = "Logo"\nprice = "5 USDC"\n', ("task 1 (logo)", "in USDC", "ETH")),
    ('id = "logo"\ntitle = "Logo"\nprice = "five ETH"\n', ("task 1 (logo)", "cannot read the amount")),
    ('id = "logo"\ntitle = "Logo"\nprice = "0 ETH"\n', ("'logo'", "price")),
    ('id = "logo"\ntitle = "Logo"\nprice = "1 ETH"\ndue = "2026-12-01"\n', ("task 1 (logo)", "due must be a date")),
    ('id = "logo"\ntitle = "Logo"\nprice = "1 ETH"\ndue = 20261201\n', ("task 1 (logo)", "due must be a date")),
    ('id = "logo"\ntitle = "Logo"\nprice = "1 ETH"\ndue = 17:00:00\n', ("task 1 (logo)", "due must be a date")),
    ('id = "logo"\ntitle = "Logo"\nprice = "1 ETH"\ndue = 1969-07-20\n', ("'logo'", "due date")),
    ('title = "Logo"\nprice = "1 ETH"\n', ("task 1 (?)", "id must be text")),
    ('id = 1\ntitle = "Logo"\nprice = "1 ETH"\n', ("task 1 (1)", "id must be text")),
    ('id = ""\ntitle = "Logo"\nprice = "1 ETH"\n', ("task id", "empty")),
    ('id = "logo"\nprice = "1 ETH"\n', ("task 1 (logo)", "title must be text")),
    ('id = "logo"\ntitle = "Logo"\nprice = "1 ETH"\ncriteria = 3\n', ("task 1 (logo)", "criteria must be text")),
])
def test_a_task_is_refused_naming_the_task_and_field(task, fragments):
    message = refused(source(task), *fragments)
    assert "--wei" not in message  # a plan file has no command-line flags


def test_the_second_task_is_named_as_such():
    text = source('id = "logo"\ntitle = "Logo"\nprice = "1 ETH"\n[[tasks]]\nid = "cards"\ntitle = "Cards"\n'
                  'price = "2"\n')
    refused(text, "task 2 (cards)", "no unit")


def test_duplicate_task_ids_are_refused():
    twice = source('id = "logo"\ntitle = "Logo"\nprice = "1 ETH"\n[[tasks]]\nid = "logo"\ntitle = "Logo again"\n'
                   'price = "2 ETH"\n')
    refused(twice, "task ids repeat", "logo")


# --- files that are not plan files at all -----------------------------------------------------------

def test_a_file_over_the_limit_is_refused_before_it_is_parsed():
    big = source().encode() + b"#" + b"x" * MAX_SOURCE_BYTES + b"\n"
    with pytest.raises(InvalidPlan, match=f"above the limit of {MAX_SOURCE_BYTES:,}"):
        read_source(big)
    with pytest.raises(InvalidPlan, match="above the limit"):
        read_source(big.decode())
    wide = source() + "#" + "é" * (MAX_SOURCE_BYTES // 2) + "\n"  # fewer characters than the limit, more bytes
    assert len(wide) < MAX_SOURCE_BYTES < len(wide.encode())
    with pytest.raises(InvalidPlan, match="above the limit"):
        read_source(wide)


@pytest.mark.parametrize("text", [
    'title = "unterminated\n',
    "title = \"T\"\ntitle = \"again\"\n",
    "[[tasks]\n",
    "= 5\n",
    "\x00",
])
def test_invalid_toml_is_refused(text):
    with pytest.raises(InvalidPlan, match=r"^the plan file is not valid TOML: "):
        read_source(text)


def test_bytes_that_are_not_utf8_are_refused():
    for data in (b"title = \"\xff\"\n", source().encode("utf-16"), b"\xc3\x28"):
        with pytest.raises(InvalidPlan, match="not UTF-8"):
            read_source(data)
    with pytest.raises(InvalidPlan, match="not valid Unicode"):
        read_source('title = "\ud800"\n')  # a lone surrogate: no file holds it, but a str can


@pytest.mark.parametrize("nested", [
    "x = " + "[" * 100_000 + "]" * 100_000 + "\n",
    "x = " + "{a=" * 50_000 + "1" + "}" * 50_000 + "\n",
    "x = " + "[" * 100_000 + "\n",  # unclosed too
])
def test_deep_nesting_is_an_invalid_plan_not_a_crash(nested):
    assert len(nested.encode()) <= MAX_SOURCE_BYTES
    for data in (nested, nested.encode()):
        with pytest.raises(InvalidPlan, match="not valid TOML"):
            read_source(data)
    assert read_source(source()).title == "Brand refresh"  # and the interpreter carries on


def test_messages_never_carry_a_whole_untrusted_value():
    long_id = "x" * 10_000
    message = refused(source(f'id = "{long_id}"\ntitle = "Logo"\nprice = "5"\n'), "task 1 (")
    assert re.search(r"task 1 \(x{1,40}\)", message)
