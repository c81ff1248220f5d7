"""The freelancer's settling, closing and watching as the command shows them (issue 12, items 7,
12 and 17): what was claimed from whom and why, every transaction hash, and the history."""

import re

from clihelpers import Person, assert_clean_error

from micropay.transactions import TransactionPipeline

TX = r"0x[0-9a-f]{64}"


def paid(client, freelancer, amount="0.01 ETH", deposit="0.05 ETH"):
    channel = client.open(freelancer.address, deposit)
    freelancer.run("receive", client.pay(channel, amount, "a task"))
    return channel


# --- item 12: one --confirmations ------------------------------------------------------------------

def test_watch_has_no_confirmations_of_its_own(people):
    _, freelancer, _ = people
    result = freelancer.run("watch", "--confirmations", "0", "--rounds", "1", ok=False)
    assert result.exit_code == 2 and re.search(r"No such option:? '?--confirmations", result.output)


def test_watch_acts_on_blocks_as_deep_as_the_global_confirmations(people, tester):
    client, freelancer, _ = people
    channel = paid(client, freelancer)
    client.run("request-close", channel)
    shallow = freelancer.run("--confirmations", "0", "watch", "--rounds", "1")
    assert re.search(rf"claimed 0.01 ETH from client {client.address} on channel {channel[:12]}: the client started "
                     r"closing \(claims allowed until \d{4}-\d\d-\d\d \d\d:\d\d UTC\); 0.01 ETH claimed on it in all",
                     shallow.stdout), shallow.output
    assert re.search(rf"  in transaction {TX}, fee ~?0\.\d+ ETH", shallow.stdout)
    assert "acting on blocks 0 deep" in shallow.stderr


def test_watch_without_gas_money_says_so_in_eth(people, w3, tmp_path):
    client, _, _ = people
    poor = Person(w3, tmp_path, "poor", fund=10**9)
    paid(client, poor)
    message = assert_clean_error(poor.run("watch", "--rounds", "1", ok=False), "watching needs at least")
    assert re.search(r"holds 0\.000000001 ETH; watching needs at least ~?0\.\d+ ETH", message) and "wei" not in message


# --- item 17: settle and close say what they did ---------------------------------------------------

def test_settle_with_nothing_to_claim_says_so_first_and_asks_no_password(people):
    client, freelancer, _ = people
    channel = paid(client, freelancer)
    freelancer.run("settle")
    result = freelancer.run("settle", env={"MICROPAY_PASSWORD": "wrong, and never asked for"})
    assert result.output.splitlines()[0].startswith("nothing to claim: no channel holds unclaimed payments")
    assert "settling" not in result.output
    assert "0.001 ETH plus gas" in freelancer.run("settle", "--min-net", "0.001 ETH").stdout
    assert channel


def test_close_says_who_got_what(people, w3):
    client, freelancer, _ = people
    channel = paid(client, freelancer, "0.02 ETH")
    before = w3.eth.get_balance(client.address)
    out = freelancer.run("close", channel).stdout
    assert re.fullmatch(rf"closed channel {channel[:12]} with client {client.address}: 0.02 ETH paid to you in all "
                        r"\(0.02 ETH now\), 0.03 ETH back to the client; fee ~?0\.\d+ ETH\n", out), out
    assert w3.eth.get_balance(client.address) - before == 3 * 10**16


# --- item 7 and item 3's command side: every transaction, the history ------------------------------

def test_settle_prints_every_transaction_it_used(people, w3, tmp_path):
    _, freelancer, _ = people
    clients = [Person(w3, tmp_path, f"client{n}") for n in range(3)]
    for client in clients:
        client.run("--escrow", people[2], "open", freelancer.address, "0.05 ETH")
        (row,) = client.json("status")
        freelancer.run("receive", client.pay(row["channel"], "0.01 ETH", "work"))
    before = w3.eth.get_balance(freelancer.address)
    result = freelancer.run("settle", "--max-gas", "100000")
    hashes = re.findall(rf"^transaction ({TX}): \d channel\(s\), 0\.0[12] ETH, fee", result.stdout, re.M)
    assert len(hashes) >= 2, result.stdout
    fees = 0
    for tx in hashes:
        receipt = w3.eth.get_transaction_receipt(tx)
        assert receipt.status == 1
        fees += receipt.gasUsed * receipt.effectiveGasPrice
    assert f"claimed 0.03 ETH from 3 channel(s) in {len(hashes)} transaction(s)" in result.stdout
    assert w3.eth.get_balance(freelancer.address) - before == 3 * 10**16 - fees
    history = freelancer.json("settlements")
    assert sorted(h["tx"] for h in history) == sorted(hashes)
    assert {h["status"] for h in history} == {"confirmed"} and sum(int(h["gross"]) for h in history) == 3 * 10**16


def test_ctrl_c_during_settle_prints_the_hash_it_sent(people, monkeypatch, w3):
    client, freelancer, _ = people
    paid(client, freelancer)

    def interrupted(self, tx_hash, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(TransactionPipeline, "wait", interrupted)
    result = freelancer.run("settle", ok=False)
    monkeypatch.undo()
    assert result.exit_code == 130, result.output
    (tx,) = re.findall(rf"transaction ({TX}) \(pending\) may have been sent: it may still be mined", result.stderr)
    assert w3.eth.get_transaction_receipt(tx).status == 1  # it was: the hash is the one to look for
    assert "Aborted!" not in result.output
    (row,) = freelancer.json("settlements")
    assert (row["tx"], row["status"]) == (tx, "pending")


def test_settlements_history_in_eth_and_dates(people):
    client, freelancer, _ = people
    paid(client, freelancer, "0.015 ETH")
    assert freelancer.run("settlements").stdout.strip() == "no settlements yet"
    freelancer.run("settle")
    header, _, row = freelancer.run("settlements").stdout.splitlines()
    assert header.split() == ["transaction", "status", "channels", "gross", "fee", "block", "sent"]
    assert re.match(rf"{TX}\s+confirmed\s+1\s+0\.015 ETH\s+~?0\.\d+ ETH\s+\d+\s+\d{{4}}-\d\d-\d\d \d\d:\d\d UTC", row)
