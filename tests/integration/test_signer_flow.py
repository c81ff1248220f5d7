"""Delegated and contract voucher signers through the whole flow, on eth-tester and on anvil: a
hot key paying for its funding account, and a real Safe that funds and signs its own vouchers."""

from datetime import timedelta

import pytest
from eth_account import Account

from helpers import SafeSigner, count_signature_checks, store_bytes
from micropay import Escrow, InvalidSignature, Payee, Payer, Payment, TxOptions
from micropay._utils.reverts import ErrorDecoder
from micropay.transactions import TransactionPipeline
from micropay.voucher import sign_voucher
from safe import deploy_safe_stack


def proxy_of(node, escrow):
    return Escrow(node.w3, escrow.address, from_block=escrow.from_block,
                  options=TxOptions(confirmations=0, poll_interval=0.02))


def test_a_hot_key_pays_for_its_funding_account_in_eth_and_a_token(node, deployed, tmp_path, monkeypatch):
    escrow, token, deployer = deployed
    proxy, funder, hot = proxy_of(node, escrow), node.fund(), Account.create()  # the hot key holds no ETH
    payer = Payer(proxy, funder, tmp_path / "client.db", signer=hot)
    payee = Payee(proxy, node.fund(), tmp_path / "freelancer.db")
    TransactionPipeline(node.w3, ErrorDecoder(token.abi)).send(deployer, token.functions.mint(funder.address, 10**9))
    eth = payer.open_channel(payee.address, 10**17, expires_in=timedelta(days=2))
    usd = payer.open_channel(payee.address, 50_000_000, token=token.address)
    assert eth.key.signer == usd.key.signer == hot.address
    checks = count_signature_checks(monkeypatch, proxy)
    for n in range(2):
        payee.receive(payer.pay(eth.id, 10**16, task=f"eth {n}").encode())
        payee.receive(payer.pay(usd.id, 5_000_000, task=f"usd {n}").encode())
    assert checks == []  # a key's signature is checked without the chain
    assert payee.settle().gross == 2 * 10**16
    assert payee.settle(token=token.address).gross == 10_000_000 == token.functions.balanceOf(payee.address).call()
    node.travel(3 * 86_400)
    assert payer.reclaim(eth.id) == 8 * 10**16  # the funding account takes the rest back


def test_a_safe_funds_and_signs_with_contract_signatures(node, deployed, tmp_path, monkeypatch):
    escrow, _, _ = deployed
    proxy, deployer = proxy_of(node, escrow), node.fund()
    owners = sorted((Account.create() for _ in range(3)), key=lambda a: a.address)
    safe = deploy_safe_stack(node.w3, deployer).create_safe(owners, threshold=2)
    node.w3.eth.wait_for_transaction_receipt(node.w3.eth.send_transaction(
        {"from": node.w3.eth.accounts[0], "to": safe.address, "value": 10**18}))
    payer = Payer(proxy, safe.address, tmp_path / "client.db", signer=SafeSigner(safe, owners[:2]))
    payee = Payee(proxy, node.fund(), tmp_path / "freelancer.db")
    record, call, value = payer.prepare_open(payee.address, 10**17)
    safe.exec(proxy.address, value, bytes.fromhex(proxy.contract.encode_abi(call.fn_name, args=list(call.args))[2:]),
              owners[:2], deployer)
    assert [r.id for r in payer.sync_all().updated] == [record.id]
    checks = count_signature_checks(monkeypatch, proxy)
    first = payer.pay(record.id, 10**16, task="one")
    text = first.encode()
    assert text.startswith("mpp2") and payee.receive(text).added == 10**16 and len(checks) == 1
    assert payee.receive(text).duplicate and len(checks) == 1
    forged = sign_voucher(SafeSigner(safe, sorted((Account.create() for _ in range(2)), key=lambda a: a.address)),
                          chain_id=proxy.chain_id, escrow=proxy.address, channel_id=record.id, amount=2 * 10**16,
                          ledger_root=payer.pay(record.id, 10**16, task="two").voucher.ledger_root)
    before = store_bytes(payee.store.path)
    with pytest.raises(InvalidSignature):
        payee.receive(Payment.of(forged, tuple(e.receipt for e in payer.ledger(record.id)[1:]), 1))
    assert store_bytes(payee.store.path) == before
    assert payee.receive(payer.resend(record.id, since=1)).added == 10**16
    assert payee.settle().gross == 2 * 10**16 == proxy.channel(record.key).claimed
