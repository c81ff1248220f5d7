"""Company wallets from the command line: a hot key signs the payments (`open --signer`) while the
client's key, or a real Safe (`open --from-safe`, through a Transaction Builder batch), funds them."""

from __future__ import annotations

import json
import stat

import pytest
from clihelpers import Person, assert_clean_error
from eth_account import Account
from eth_utils.crypto import keccak

from micropay import keystore
from micropay._utils.crypto import recover_address
from micropay.escrow import Escrow
from micropay.payment import parse_payment
from micropay.safe_batch import tx_builder_checksum
from safe import deploy_safe_stack

HOT_PASSWORD = "hot key password"


@pytest.fixture(scope="session")
def owners():
    return [Account.from_key(keccak(text=f"company owner {i}")) for i in range(3)]


@pytest.fixture(scope="session")
def safe_stack(w3, deployer):
    return deploy_safe_stack(w3, deployer)


@pytest.fixture
def company(safe_stack, owners, w3, deployer):
    """A 2-of-3 Safe holding 1 ETH."""
    safe = safe_stack.create_safe(owners, threshold=2)
    w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({"from": deployer, "to": safe.address,
                                                                  "value": 10**18}))
    return safe


@pytest.fixture
def hot(tmp_path):
    """A hot key in a key file of its own, with a password of its own."""
    account = Account.create()
    path = keystore.save_account(account, tmp_path / "hot", HOT_PASSWORD, iterations=2**4)
    return account, path


HOT_ENV = {"MICROPAY_SIGNER_PASSWORD": HOT_PASSWORD}
#: Paying with a hot key never decrypts the funding key: its password may be wrong.
ONLY_HOT = {**HOT_ENV, "MICROPAY_PASSWORD": "not the funding key's password"}


def signer_of(text):
    voucher = parse_payment(text).voucher
    return "0x" + recover_address(voucher.digest(), voucher.signature).hex()


def test_open_with_a_hot_signer_pays_with_the_hot_key_only(people, hot, w3):
    client, freelancer, _ = people
    account, path = hot
    opened = client.json("open", freelancer.address, "0.05 ETH", "--signer", str(path), env=HOT_ENV)
    assert opened["signer"] == account.address
    kept = client.home / "signers" / f"{account.address}.json"
    assert kept.read_bytes() == path.read_bytes() and stat.S_IMODE(kept.stat().st_mode) == 0o600
    path.unlink()  # the data directory keeps its own copy
    texts = [client.run("pay", opened["channel"], "0.01 ETH", f"task {n}", env=ONLY_HOT).stdout.strip()
             for n in range(3)]
    assert {signer_of(text).lower() for text in texts} == {account.address.lower()}
    wrong = client.run("pay", opened["channel"], "0.01 ETH", "x", env={"MICROPAY_SIGNER_PASSWORD": "nope"}, ok=False)
    assert_clean_error(wrong, "wrong password", account.address)
    assert "+0.01 ETH" in freelancer.run("receive", input="\n".join(texts) + "\n").stdout
    settled = freelancer.json("settle")
    assert int(settled["gross"]) == 3 * 10**16
    (row,) = client.json("status")
    assert (row["paid"], row["claimed"]) == (str(3 * 10**16), str(3 * 10**16))


def test_a_hot_signer_must_be_neither_party(people, tmp_path):
    client, freelancer, _ = people
    for person, who in ((client, "this account"), (freelancer, "the freelancer")):
        (own,) = (person.home / "keystores").glob("*.json")
        result = client.run("open", freelancer.address, "0.01 ETH", "--signer", str(own), ok=False)
        assert_clean_error(result, f"the --signer key is {who} ({person.address})")
    assert client.json("status") == []


def batch_calls(batch):
    """What the Safe app sends for a batch file: each transaction's to, value and data."""
    return [(tx["to"], int(tx["value"]), bytes.fromhex(tx["data"][2:])) for tx in batch["transactions"]]


def test_a_safe_funds_a_token_channel_through_a_batch_file(people, hot, company, owners, token, w3, deployer,
                                                           tmp_path):
    client, freelancer, escrow = people
    account, path = hot
    token.functions.mint(company.address, 100 * 10**6).transact({"from": deployer})
    out = tmp_path / "open.json"
    opened = client.json("open", freelancer.address, "40 TUSD", "--token", token.address, "--from-safe",
                         company.address, "--signer", str(path), "--out", str(out), env=ONLY_HOT)
    assert (opened["payer"], opened["signer"], opened["file"], opened["transactions"]) == (
        company.address, account.address, str(out), 2)
    batch = json.loads(out.read_text())
    assert (batch["chainId"], batch["meta"]["createdFromSafeAddress"]) == (str(w3.eth.chain_id), company.address)
    assert batch["meta"]["checksum"] == tx_builder_checksum(batch)
    approve, open_token = batch["transactions"]
    assert (approve["to"], approve["contractMethod"]["name"], approve["contractInputsValues"]) == (
        token.address, "approve", {"spender": escrow, "amount": str(40 * 10**6)})
    assert (open_token["to"], open_token["value"], open_token["contractInputsValues"]["signer"]) == (
        escrow, "0", account.address)
    # Nothing is on chain yet: paying waits for sync to see the channel.
    assert_clean_error(client.run("pay", opened["channel"], "1 TUSD", "early", env=ONLY_HOT, ok=False),
                       "micropay sync")
    assert "not opened yet" in client.run("sync").stdout
    company.exec_batch(batch_calls(batch), owners[:2], deployer)
    assert "now seen on chain, deposit 40 TUSD" in client.run("sync").stdout
    texts = [client.run("pay", opened["channel"], "2.5 TUSD", f"task {n}", env=ONLY_HOT).stdout.strip()
             for n in range(4)]
    assert {signer_of(text).lower() for text in texts} == {account.address.lower()}
    received = freelancer.run("receive", input="\n".join(texts) + "\n").stdout
    assert f"from {company.address}" in received
    assert freelancer.json("settle", "--token", token.address)["gross"] == str(10 * 10**6)
    assert token.functions.balanceOf(freelancer.address).call() == 10 * 10**6
    state = Escrow(w3, escrow).channel(bytes.fromhex(opened["channel"][2:]))
    assert (state.key.payer, state.key.signer, state.deposit, state.claimed) == (
        company.address, account.address, 40 * 10**6, 10 * 10**6)
    assert token.functions.balanceOf(company.address).call() == 60 * 10**6
    # The Safe's money moves only through its owners: the client's key cannot top it up or end it.
    assert_clean_error(client.run("top-up", opened["channel"], "1 TUSD", ok=False), "funded by", company.address)
    assert_clean_error(client.run("request-close", opened["channel"], ok=False), "Safe app")


def test_an_eth_channel_from_a_safe_is_one_call(people, hot, company, owners, w3, deployer, tmp_path,
                                                 monkeypatch):
    client, freelancer, escrow = people
    account, path = hot
    monkeypatch.chdir(tmp_path)
    opened = client.json("open", freelancer.address, "0.5 ETH", "--from-safe", company.address.lower(), "--signer",
                         str(path), "--yes", env=ONLY_HOT)
    (written,) = tmp_path.glob(f"open-{freelancer.address}-*.json")
    assert opened["file"] == written.name
    batch = json.loads(written.read_text())
    ((to, value, data),) = batch_calls(batch)
    assert (to, value, batch["transactions"][0]["contractMethod"]["payable"]) == (escrow, 5 * 10**17, True)
    company.exec(to, value, data, owners[1:], deployer)
    client.run("sync")
    text = client.run("pay", opened["channel"], "0.1 ETH", "design", "--signer", str(path), env=ONLY_HOT).stdout
    assert signer_of(text).lower() == account.address.lower()
    assert "+0.1 ETH" in freelancer.run("receive", text).stdout
    assert w3.eth.get_balance(company.address) == 5 * 10**17


def test_from_safe_refusals(people, hot, company, tmp_path):
    client, freelancer, _ = people
    _, path = hot
    assert "--from-safe needs --signer" in client.run("open", freelancer.address, "0.1 ETH", "--from-safe",
                                                     company.address, ok=False).output
    assert "--out names the batch file" in client.run("open", freelancer.address, "0.1 ETH", "--out", "x.json",
                                                      ok=False).output
    not_a_safe = client.run("open", freelancer.address, "0.1 ETH", "--from-safe", freelancer.address, "--signer",
                            str(path), env=HOT_ENV, ok=False)
    assert_clean_error(not_a_safe, "no contract at", freelancer.address)
    out = tmp_path / "taken.json"
    out.write_text("{}")
    taken = client.run("open", freelancer.address, "0.1 ETH", "--from-safe", company.address, "--signer", str(path),
                       "--out", str(out), env=HOT_ENV, ok=False)
    assert_clean_error(taken, "already exists")
    assert out.read_text() == "{}" and client.json("status") == []


def test_resend_works_for_a_safe_channel_with_the_kept_hot_key(people, hot, company, owners, deployer, tmp_path):
    client, freelancer, _ = people
    _, path = hot
    out = tmp_path / "b.json"
    opened = client.json("open", freelancer.address, "0.2 ETH", "--from-safe", company.address, "--signer",
                         str(path), "--out", str(out), env=HOT_ENV)
    ((to, value, data),) = batch_calls(json.loads(out.read_text()))
    company.exec(to, value, data, owners[:2], deployer)
    client.run("sync")
    text = client.run("pay", opened["channel"], "0.01 ETH", "a", env=ONLY_HOT).stdout.strip()
    assert client.run("resend", opened["channel"]).stdout.strip() == text


def test_an_operator_holding_only_the_hot_key_opens_syncs_and_pays(people, hot, company, owners, w3, deployer,
                                                                   tmp_path):
    _, freelancer, escrow = people
    account, path = hot
    operator = Person(w3, tmp_path, "operator", fund=0)
    for own in (operator.home / "keystores").glob("*.json"):
        own.unlink()  # this machine holds no key that could move money: only the hot key
    out = tmp_path / "op.json"
    opened = operator.json("--escrow", escrow, "open", freelancer.address, "0.3 ETH", "--from-safe", company.address,
                           "--signer", str(path), "--out", str(out), env=ONLY_HOT)
    ((to, value, data),) = batch_calls(json.loads(out.read_text()))
    company.exec(to, value, data, owners[:2], deployer)
    synced = operator.run("sync").stdout
    assert "now seen on chain, deposit 0.3 ETH" in synced and "reading the channels of" not in synced
    text = operator.run("pay", opened["channel"], "0.05 ETH", "audit", env=ONLY_HOT).stdout.strip()
    assert signer_of(text).lower() == account.address.lower()
    (row,) = operator.json("status")
    assert (row["counterparty"], row["paid"], row["left"]) == (freelancer.address, str(5 * 10**16), str(25 * 10**16))
    assert "+0.05 ETH" in freelancer.run("receive", text).stdout
    # Without a key file and without a Safe channel, sync still says what is missing.
    empty = Person(w3, tmp_path, "empty", fund=0)
    for own in (empty.home / "keystores").glob("*.json"):
        own.unlink()
    assert_clean_error(empty.run("--escrow", escrow, "sync", ok=False), "no key file")
