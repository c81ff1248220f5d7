"""Delegated and contract (EIP-1271) voucher signers, end to end: a payer signs with the key its
channels name, the payee verifies against the channel's voucher signer (a contract's signature
through the escrow, asked once per voucher), and the escrow redeems what the payee accepted."""

import json

import pytest
from eth_account import Account

from helpers import SafeSigner, WalletSigner
from helpers import count_signature_checks as counting
from micropay import Payer, Payment, VoucherStore
from micropay.errors import ChannelError, InvalidSignature, NotParticipant, StoreError
from micropay.voucher import sign_voucher
from safe import deploy_safe_stack
from store_snapshot import store_state


@pytest.fixture(scope="module")
def owners():
    return sorted((Account.from_key(bytes([0x60 + i]) * 32) for i in range(3)), key=lambda a: a.address)


@pytest.fixture(scope="module")
def company_safe(w3, deployer, owners):
    """A 2-of-3 Safe holding 10 ETH."""
    safe = deploy_safe_stack(w3, deployer).create_safe(owners, threshold=2)
    w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({"from": deployer, "to": safe.address,
                                                                 "value": 10 * 10**18}))
    return safe


def safe_opens(payer, payee, safe, owners, deployer, deposit=10**16):
    """The Safe's owners execute the open that ``payer`` prepared to ``payee``; returns the recorded channel."""
    record, call, value = payer.prepare_open(payee.address, deposit)
    escrow = payer.escrow
    safe.exec(escrow.address, value, bytes.fromhex(escrow.contract.encode_abi(call.fn_name, args=list(call.args))[2:]),
              owners[:2], deployer)
    return record


def test_a_hot_key_pays_for_the_funding_account_end_to_end(w3, lib_escrow, clients, freelancer, payee, store_at,
                                                           monkeypatch):
    hot = Account.create()
    payer = Payer(lib_escrow, clients[0], store_at("c"), signer=hot)
    channel = payer.open_channel(freelancer.address, 10**16)
    assert (channel.key.payer, channel.key.signer, channel.key.voucher_signer) == (clients[0].address, hot.address,
                                                                                  hot.address)
    checks = counting(monkeypatch, lib_escrow)
    payments = [payer.pay(channel.id, 10**15, task=f"task {n}") for n in range(3)]
    assert all(p.voucher.signer == hot.address and p.encode().startswith("mpp1") for p in payments)
    for payment in payments:
        payee.receive(payment.encode())
    assert checks == []  # the hot key's ECDSA signature needs no chain call
    payer.top_up(channel.id, 10**15)  # the funding account still sends the payer's transactions
    before = w3.eth.get_balance(freelancer.address)
    settlement = payee.settle()
    assert lib_escrow.channel(channel.key).claimed == 3 * 10**15 == settlement.gross
    assert w3.eth.get_balance(freelancer.address) - before == settlement.gross - settlement.fee
    # The funding key never signs this channel's vouchers, even from the same store.
    with pytest.raises(NotParticipant, match=f"signed by {hot.address}, not by this payer's signer"):
        Payer(lib_escrow, clients[0], payer.store).pay(channel.id, 1, task="with the wrong key")
    # Both stores' channels keep their signer through a backup.
    for name, store in (("c", payer.store), ("freelancer", payee.store)):
        bundle = json.loads(json.dumps(store.export()))
        assert bundle["version"] == 2 and bundle["channels"][0]["signer"] == hot.address
        restored = VoucherStore(store_at(f"restored-{name}"))
        assert restored.import_(bundle) == 1
        assert restored.channel(channel.ref).key == channel.key
        assert restored.best_voucher(channel.ref)[0] == payments[-1].voucher


def test_a_wrong_key_is_refused_before_anything_is_signed(lib_escrow, clients, freelancer, store_at):
    hot = Account.create()
    payer = Payer(lib_escrow, clients[1], store_at("c"), signer=hot)
    channel = payer.open_channel(freelancer.address, 10**16)
    other = Payer(None, clients[1].address, payer.store, signer=Account.create())
    before = store_state(payer.store)
    with pytest.raises(NotParticipant, match="never signs with another key"):
        other.pay(channel.id, 1, task="x")
    assert store_state(payer.store) == before
    offline = Payer(None, clients[1].address, payer.store, signer=hot)  # the funding key stays locked away
    assert offline.pay(channel.ref, 5, task="offline").voucher.signer == hot.address


def test_a_safe_funds_and_a_hot_key_pays(w3, lib_escrow, company_safe, owners, deployer, freelancer, payee, store_at,
                                         monkeypatch):
    hot = Account.create()
    payer = Payer(lib_escrow, company_safe.address, store_at("hot"), signer=hot)
    with pytest.raises(NotParticipant, match="is a contract"):
        payer.open_channel(freelancer.address, 10**16)
    record = safe_opens(payer, payee, company_safe, owners, deployer)
    assert (record.key.payer, record.key.signer) == (company_safe.address, hot.address)
    with pytest.raises(ChannelError, match="check it on chain before paying"):
        payer.pay(record.id, 1, task="too early")
    report = payer.sync_all()
    assert report.added == () and [r.id for r in report.updated] == [record.id]
    checks = counting(monkeypatch, lib_escrow)
    received = payee.receive(payer.pay(record.id, 4 * 10**15, task="design"))
    assert (received.payer, received.added, checks) == (company_safe.address, 4 * 10**15, [])
    settlement = payee.settle()
    assert lib_escrow.channel(record.key).claimed == settlement.gross == 4 * 10**15
    with pytest.raises(NotParticipant, match="is a contract"):  # only the Safe's owners can end it
        payer.request_close(record.id)


def test_a_safe_signs_its_own_vouchers_with_contract_signatures(w3, lib_escrow, company_safe, owners, deployer,
                                                                 payee, store_at, monkeypatch):
    payer = Payer(lib_escrow, company_safe.address, store_at("safe"), signer=SafeSigner(company_safe, owners[:2]))
    record = safe_opens(payer, payee, company_safe, owners, deployer)
    assert record.key.signer is None and record.key.voucher_signer == company_safe.address
    payer.sync_all()
    checks = counting(monkeypatch, lib_escrow)
    first = payer.pay(record.id, 10**15, task="one")
    assert first.voucher.is_contract_signature and len(first.voucher.signature) == 130
    text = first.encode()
    assert text.startswith("mpp2") and Payment.decode(text) == first
    assert payee.receive(text).added == 10**15 and len(checks) == 1
    assert payee.receive(text).duplicate and len(checks) == 1  # the same voucher again: no second chain call
    second = payer.pay(record.id, 10**15, task="two")
    assert payee.receive(second).added == 10**15 and len(checks) == 2  # a new signature is always verified
    assert {signer for signer, _, _ in checks} == {company_safe.address}
    settlement = payee.settle()
    assert lib_escrow.channel(record.key).claimed == settlement.gross == 2 * 10**15
    # A backup carries the contract signature; only the chain can check it again.
    bundle = payee.store.export()
    with pytest.raises(StoreError, match="only the chain can check"):
        VoucherStore(store_at("offline")).import_(bundle)
    assert VoucherStore(store_at("online")).import_(bundle, escrows=[lib_escrow]) == 1


def test_a_wallet_whose_owner_signs_is_a_delegated_signer(w3, lib_escrow, clients, freelancer, payee, store_at,
                                                          deploy_helper, fund, monkeypatch):
    owner = fund(Account.create())
    wallet = deploy_helper("OwnerWallet", owner.address)
    payer = Payer(lib_escrow, clients[2], store_at("c"), signer=WalletSigner(wallet, owner))
    channel = payer.open_channel(freelancer.address, 10**16)
    assert channel.key.voucher_signer == wallet.address
    checks = counting(monkeypatch, lib_escrow)
    payment = payer.pay(channel.id, 10**15, task="audited")
    assert payment.voucher.signer == owner.address and payment.encode().startswith("mpp1")  # 65 bytes: the owner's
    assert payee.receive(payment).added == 10**15 and len(checks) == 1
    assert payee.settle().gross == 10**15


def test_a_forged_contract_signature_is_rejected_and_the_store_is_unchanged(lib_escrow, company_safe, owners,
                                                                            deployer, payee, store_at, monkeypatch):
    payer = Payer(lib_escrow, company_safe.address, store_at("safe"), signer=SafeSigner(company_safe, owners[:2]))
    record = safe_opens(payer, payee, company_safe, owners, deployer)
    payer.sync_all()
    payee.receive(payer.pay(record.id, 10**15, task="real"))
    real = payer.pay(record.id, 10**15, task="second")
    strangers = sorted((Account.create() for _ in range(2)), key=lambda a: a.address)
    forgeries = [
        sign_voucher(SafeSigner(company_safe, strangers), chain_id=lib_escrow.chain_id, escrow=lib_escrow.address,
                     channel_id=record.id, amount=real.amount, ledger_root=real.voucher.ledger_root),
        sign_voucher(SafeSigner(company_safe, owners[:1]), chain_id=lib_escrow.chain_id, escrow=lib_escrow.address,
                     channel_id=record.id, amount=real.amount, ledger_root=real.voucher.ledger_root),  # below threshold
        sign_voucher(strangers[0], chain_id=lib_escrow.chain_id, escrow=lib_escrow.address, channel_id=record.id,
                     amount=real.amount, ledger_root=real.voucher.ledger_root),  # a key's, not the Safe's
    ]
    checks = counting(monkeypatch, lib_escrow)
    before = store_state(payee.store)
    for n, forged in enumerate(forgeries, start=1):
        for attempt in range(2):
            with pytest.raises(InvalidSignature):
                payee.receive(Payment.of(forged, real.receipts, real.first_index))
            assert store_state(payee.store) == before
            assert len(checks) == 2 * (n - 1) + attempt + 1  # a rejection is never cached: asked again
    assert payee.receive(real).added == 10**15


def test_a_channel_the_store_never_recorded_is_only_paid_on_when_adopted(lib_escrow, company_safe, owners, deployer,
                                                                         payee, store_at):
    hot = Account.create()
    opener = Payer(lib_escrow, company_safe.address, store_at("elsewhere"), signer=hot)
    record = safe_opens(opener, payee, company_safe, owners, deployer)
    careful = Payer(lib_escrow, company_safe.address, store_at("careful"), signer=hot)
    (added,) = careful.sync_all().added
    assert added.id == record.id and added.issued == added.deposit  # may have been paid on from a lost store
    with pytest.raises(StoreError, match="could sign an amount twice"):
        careful.pay(record.id, 1, task="x")
    trusting = Payer(lib_escrow, company_safe.address, store_at("trusting"), signer=hot)
    (adopted,) = trusting.sync_all(adopt=True).added
    assert adopted.issued == 0 and adopted.key == record.key
    assert payee.receive(trusting.pay(record.id, 7, task="after adopting")).added == 7
