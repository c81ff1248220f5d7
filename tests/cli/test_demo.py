"""`micropay demo`: the story told in plain words, and its statement for scripts (issue 12, item 19)."""

import json
import re

from click.testing import CliRunner

from micropay.cli import main


def test_demo_json_is_labelled_with_amounts_as_decimal_strings():
    result = CliRunner().invoke(main, ["demo", "--json"])
    assert result.exit_code == 0, result.output
    s = json.loads(result.stdout)
    assert s["unit"] == "wei" and s["chain"]["kind"].startswith("embedded") and s["chain"]["escrow"].startswith("0x")
    assert [t["task"] for t in s["tasks"]][:2] == ["logo draft 1", "logo draft 2"]
    amounts = [t["price"] for t in s["tasks"]] + [step["fee"] for step in s["steps"]] + [
        s[who][field] for who in ("client", "freelancer") for field in ("before", "after", "fees")] + [
        s["deposit"], s["paid"], s["refund"]]
    assert all(isinstance(a, str) and a.isdigit() for a in amounts)
    paid = sum(int(t["price"]) for t in s["tasks"])
    assert int(s["paid"]) == paid == 25 * 10**15 and int(s["refund"]) == int(s["deposit"]) - paid
    client, freelancer = s["client"], s["freelancer"]
    assert int(client["before"]) - int(client["after"]) == paid + int(client["fees"])
    assert int(freelancer["after"]) - int(freelancer["before"]) == paid - int(freelancer["fees"])
    assert [(step["who"], step["what"]) for step in s["steps"]] == [
        ("client", "open channel"), ("freelancer", "settle (one claimMany)"), ("freelancer", "close channel")]
    assert all(isinstance(step["gas"], int) and 40_000 < step["gas"] < 60_000 for step in s["steps"])
    assert int(client["fees"]) == int(s["steps"][0]["fee"])


def test_demo_tells_the_story_in_plain_words():
    text = CliRunner().invoke(main, ["demo"]).output
    assert "Ethereum chain inside this process" in text and "play money" in text  # the chain, explained
    assert "ONE transaction (a batch claim, claimMany)" in text and "latest one is worth all 5 tasks" in text
    assert "closes the channel" in text and "0.025 ETH of the deposit goes straight back to the client" in text
    assert text.count("no transaction, no fee") == 5
    assert "CLOSING STATEMENT" in text and "total paid                    0.025 ETH" in text
    # fees and balances are rounded for reading, never 18 decimals
    assert not re.search(r"\d\.\d{9,} ETH", text.split("CLOSING STATEMENT")[1]), text
    assert re.search(r"client: open channel\s+\d{2},\d{3}\s+~?0\.\d+ ETH", text)
