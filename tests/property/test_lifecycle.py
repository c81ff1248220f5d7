"""A stateful property test of the channel lifecycle against a Python reference model.

Hypothesis drives random sequences of open (by an EOA payer that signs its own vouchers, by one
that delegates signing to a hot key, and by an EIP-1271 contract wallet through its `execute`),
top-up, extend, pay/receive (honest, stale, tampered, replayed, forged), claim, claimMany (by the
payee and by a third party), relayed claims (a payee-signed RelayRequest submitted by a relayer for
a fee; honest, replayed, expired, fee above its cap or the payout, vouchers swapped, dropped,
reordered or repeated, signed for another chain or escrow or by someone else), forged vouchers
(wrong chain, escrow, channel or key, high s, another channel's delegated signer), close,
requestClose, time travel, reclaim, withdraw and a restart of the off-chain stores. After every
step all eleven invariants of REFERENCE §4 are checked on chain against the model and off chain
against the stores. The chain is deployed once and reverted to a snapshot for every example.

Channels opened by an EOA payer for itself go through the library (Payer, Payee, their stores);
delegated and contract-wallet channels are driven at the contract level, their vouchers signed here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import typing
from pathlib import Path

import hypothesis.strategies as st
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from hypothesis import Phase, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from lifecycle_attacks import AttackRules
from lifecycle_kit import (
    CHANNELS_SLOT,
    DELEGATED_KEY,
    PAID_OUT,
    SEEN,
    SELF,
    TOKEN_BALANCES_SLOT,
    WALLET,
    Model,
    Relay,
    pack,
    revert_name,
    seen,
    unpack_channel,
)
from lifecycle_payer import PayerRules

from helpers import ETH, HOUR, transact
from micropay import Escrow, Payee, Payer
from micropay.errors import MicropayError
from micropay.packing import pack_voucher
from micropay.voucher import Voucher

REVERT_MODE = 1
#: Gas for the transactions this test sends itself when it expects them to succeed.
GAS = 3_000_000


class Lifecycle(PayerRules, AttackRules, RuleBasedStateMachine):
    """Set per test by the fixture below: chain, escrow, accounts, actor payee, wallet, hot keys."""

    env: typing.ClassVar[dict] = {}

    # Every example starts with one channel of each kind, each paid once, so that every kind is
    # claimed, relayed and closed in most examples, not just in the few that happen to pay first.
    @initialize(first=st.lists(st.tuples(st.integers(0, 2), st.booleans(), st.integers(10**4, 10**6),
                                         st.integers(1, 10**4)), min_size=3, max_size=3))
    def setup(self, first):
        env = self.env
        self.w3, self.tester, self.escrow = env["w3"], env["tester"], env["escrow"]
        self.token, self.actor, self.wallet, self.owner = env["token"], env["actor"], env["wallet"], env["owner"]
        self.snapshot = self.tester.take_snapshot()
        self.dir, self.locations = Path(tempfile.mkdtemp()), env["stores"]
        self.payers, self.hot_keys = env["payers"], env["hot_keys"]
        self.payee_keys: dict[str, LocalAccount] = {a.address: a for a in env["payee_keys"]}
        self.payees = [a.address for a in env["payee_keys"]] + [self.actor.address]  # the last rejects ETH
        self.relayer = env["relayer"]
        self.channels: list[Model] = []
        self.relayed: list[Relay] = []
        self.claimed_before: dict[bytes, int] = {}
        self.words: dict[bytes, int] = {}
        self.token_balances: dict[str, int] = {}
        self.owed: dict[tuple[str, str], int] = {}
        self.salt = 0
        self._open_stores()
        for kind, (payee, eth, deposit, amount) in zip((SELF, DELEGATED_KEY, WALLET), first, strict=True):
            self.open(payer=0, payee=payee, eth=eth, deposit=deposit, days=5, kind=kind, hot=0)
            self._pay(self.channels[-1], amount)

    def teardown(self):
        if hasattr(self, "snapshot"):
            for api in (*getattr(self, "payer_api", {}).values(), *getattr(self, "payee_api", {}).values()):
                api.store.close()
            self.tester.revert_to_snapshot(self.snapshot)
            shutil.rmtree(self.dir, ignore_errors=True)

    def _open_stores(self):
        """Each party's store: a file in this example's folder, or a schema of its own (PostgreSQL)."""
        stores = self.locations.make
        self.payer_api = {a.address: Payer(self.escrow, a, stores(self.dir, f"payer-{a.address}"))
                          for a in self.payers}
        self.payee_api = {p: Payee(self.escrow, p, stores(self.dir, f"payee-{p}"), safety_margin=0, freshness=0,
                                   min_window=0)
                          for p in self.payees}

    def now(self) -> int:
        return self.w3.eth.get_block("pending")["timestamp"]

    def live(self, m: Model, now: int | None = None) -> bool:
        return not m.closed and (self.now() if now is None else now) <= m.expiry

    def best(self, m: Model) -> Voucher | None:
        """The payee's best voucher of a channel."""
        if m.kind != SELF:
            return m.vouchers[-1] if m.vouchers else None
        best = self.payee_api[m.key.payee].store.best_voucher(m.key.id)
        return None if best is None else best[0]

    def signed_voucher(self, m: Model) -> Voucher:
        """The payer side's latest voucher of a channel that has one."""
        return self.payer_api[m.key.payer].store.best_voucher(m.key.id)[0] if m.kind == SELF else m.last_signed

    def word(self, channel_id: bytes) -> int:
        """A channel's storage slot, read directly: far cheaper than an eth_call to `channel`, which
        `chain_matches_model` still checks it against whenever it changes."""
        slot = keccak(channel_id + CHANNELS_SLOT.to_bytes(32, "big"))
        return int.from_bytes(self.w3.eth.get_storage_at(self.escrow.address, slot), "big")

    def state(self) -> dict[bytes, int]:
        return {c.key.id: self.word(c.key.id) for c in self.channels}

    # -- the payee's rules (the payer's are in lifecycle_payer.py, attacks in lifecycle_attacks.py)

    @precondition(lambda self: any(c.acknowledged for c in self.channels))
    @rule(data=st.data(), by_relayer=st.booleans(), stale=st.sampled_from([False, False, False, True]))
    def claim_again(self, data, by_relayer, stale):
        self.claim(data, by_relayer, stale)

    @precondition(lambda self: any(c.acknowledged for c in self.channels))
    @rule(data=st.data(), by_relayer=st.booleans(), stale=st.sampled_from([False, False, False, True]))
    def claim(self, data, by_relayer, stale):
        m = data.draw(st.sampled_from([c for c in self.channels if c.acknowledged]))
        voucher = m.vouchers[0] if stale and m.vouchers else self.best(m)  # the oldest: mostly pays nothing
        # micropay's packing is the contract's layout, byte for byte
        assert pack_voucher(m.key, voucher) == pack(m.key, voucher.amount, voucher.ledger_root, voucher.signature,
                                                    contract=m.kind == WALLET)
        sender = self.relayer if by_relayer or m.key.payee == self.actor.address else m.key.payee
        self._submit(m, lambda: self.escrow.claim(sender, m.key, voucher), voucher.amount)

    def _claimable(self) -> list[Model]:
        now = self.now()
        return [c for c in self.channels if c.acknowledged and self.live(c, now) and min(c.acknowledged, c.deposit)
                > c.claimed]

    @precondition(lambda self: self._claimable())
    @rule(data=st.data())
    def claim_many(self, data):
        payee, token = data.draw(st.sampled_from(sorted({(c.key.payee, c.key.token) for c in self._claimable()})))
        mine = [c for c in self._claimable() if (c.key.payee, c.key.token) == (payee, token)]
        items = [(c.key, self.best(c)) for c in mine]
        self.escrow.claim_many(self.relayer, payee, token, items)
        seen("claimMany paid out")
        for c, (_, v) in zip(mine, items, strict=True):
            c.submitted_in_time = max(c.submitted_in_time, v.amount)
            self._paid(c, min(v.amount, c.deposit) - c.claimed)

    # -- ending channels ---------------------------------------------------------------------

    @precondition(lambda self: self.channels)
    @rule(data=st.data())
    def close(self, data):
        mine = [c for c in self.channels if c.key.payee != self.actor.address]  # the actor cannot send
        m = data.draw(st.sampled_from([c for c in mine if not c.closed] or mine or self.channels))
        if m.key.payee == self.actor.address:
            return
        best = self.best(m)
        final = None if best is None or not self.live(m) else best
        try:
            self.escrow.close(m.key.payee, m.key, final)
        except MicropayError:
            assert m.closed
            return
        seen("closed by the payee")
        if final is not None:
            m.submitted_in_time = max(m.submitted_in_time, final.amount)
            self._paid(m, max(0, min(final.amount, m.deposit) - m.claimed))
        m.refunded, m.closed = m.deposit - m.claimed, True

    @rule(seconds=st.sampled_from([60, HOUR + 1, 86_400, 3 * 86_400, 6 * 86_400]))
    def travel(self, seconds):
        self.tester.time_travel(self.now() + seconds)

    @rule()
    def travel_past_every_expiry(self):
        self.tester.time_travel(max([self.now(), *(c.expiry for c in self.channels)]) + 2)

    @precondition(lambda self: self._claimable())
    @rule(data=st.data())
    def claim_many_again(self, data):
        self.claim_many(data)

    @precondition(lambda self: self.owed)
    @rule()
    def withdraw(self):
        (account, token), amount = next(iter(self.owed.items()))
        # withdrawFor pushes to the account itself, which still refuses ETH: nothing moves (L-2)
        with pytest.raises(MicropayError) as info:
            self.escrow.withdraw_for(self.relayer, account, token)
        assert revert_name(info.value) == "EthTransferFailed"
        assert self.escrow.owed(account, token) == amount
        call = self.escrow.contract.functions.withdraw(token, self.relayer)._encode_transaction_data()
        before = self.w3.eth.get_balance(self.relayer)
        transact(self.actor.functions.execute(self.escrow.address, 0, call), self.env["deployer"])
        assert self.w3.eth.get_balance(self.relayer) - before == amount
        del self.owed[(account, token)]
        seen("withdrew a credited payout")

    @rule()
    def restart_stores(self):
        for api in (*self.payer_api.values(), *self.payee_api.values()):
            api.store.close()
        self._open_stores()

    # -- helpers -------------------------------------------------------------------------------

    def _balance(self, account: str, token: str) -> int:
        """``account``'s balance; a token balance is read from the token's storage (an eth_call costs ten
        times as much) and checked against its ``balanceOf`` whenever it changes."""
        if token == ETH:
            return self.w3.eth.get_balance(account)
        slot = keccak(bytes(12) + bytes.fromhex(account[2:]) + TOKEN_BALANCES_SLOT.to_bytes(32, "big"))
        held = int.from_bytes(self.w3.eth.get_storage_at(token, slot), "big")
        if self.token_balances.get(account) != held:
            assert self.token.functions.balanceOf(account).call() == held
            self.token_balances[account] = held
        return held

    def send(self, sender: str, call, value: int = 0):
        """Send a call expected to succeed with a fixed gas limit: no estimate, which eth-tester makes
        by executing the call many times. A revert is still a MicropayError (failed on chain)."""
        return self.escrow.pipeline.send(sender, call, value=value, gas=GAS)

    def _submit(self, m, send, amount):
        claimable = self.live(m) and min(amount, m.deposit) > m.claimed
        try:
            send()
        except MicropayError:
            assert not claimable  # invariant 7: a resubmitted voucher pays nothing extra
            return
        assert claimable
        seen("a claim paid out")
        m.submitted_in_time = max(m.submitted_in_time, amount)
        self._paid(m, min(amount, m.deposit) - m.claimed)

    def _paid(self, m, increase):
        m.claimed += increase
        if increase:
            seen(PAID_OUT[m.kind])
        if m.key.payee == self.actor.address and m.key.token == ETH and increase:
            self.owed[(m.key.payee, ETH)] = self.owed.get((m.key.payee, ETH), 0) + increase

    # -- invariants (REFERENCE §4) ----------------------------------------------------------------

    @invariant()
    def chain_matches_model(self):
        if not hasattr(self, "channels"):
            return
        for m in self.channels:
            word = self.word(m.key.id)
            if self.words.get(m.key.id) != word:  # the layout of Channel, as the contract's view returns it
                view = self.escrow.contract.functions.channel(m.key.id).call()
                assert tuple(view) == unpack_channel(word), (view, hex(word))
                self.words[m.key.id] = word
            deposit, claimed, expiry, _, closed = unpack_channel(word)
            assert (deposit, claimed, expiry, closed) == (m.deposit, m.claimed, m.expiry, m.closed)
            assert claimed >= self.claimed_before.get(m.key.id, 0)  # 3: never decreases
            self.claimed_before[m.key.id] = claimed
            assert claimed <= deposit  # 3
            assert m.claimed + m.refunded <= m.deposit  # 2
            if m.closed:
                assert m.claimed + m.refunded == m.deposit  # 2 (final), 6
            assert claimed >= min(m.deposit, m.submitted_in_time) or not m.submitted_in_time  # 4
            assert claimed <= m.signed  # 5: never more than the payer (or its signer) signed

    @invariant()
    def escrow_is_solvent_and_events_match_balances(self):
        if not hasattr(self, "channels"):
            return
        for token in (ETH, self.token.address):
            held = sum(m.deposit - m.claimed - m.refunded for m in self.channels if m.key.token == token)
            owed = sum(v for (_, t), v in self.owed.items() if t == token)
            assert self._balance(self.escrow.address, token) == held + owed  # 1, 9, 10: every wei accounted for
        for (account, token), amount in self.owed.items():
            assert self.escrow.owed(account, token) == amount

    @invariant()
    def stores_keep_what_was_promised(self):
        if not hasattr(self, "channels"):
            return
        for m in self.channels:  # 11
            if m.kind != SELF:
                continue
            issued = self.payer_api[m.key.payer].store.channel(m.key.id).issued
            assert issued == m.signed
            best = self.payee_api[m.key.payee].store.best_voucher(m.key.id)
            assert (best[0].amount if best else 0) >= m.acknowledged


@pytest.fixture
def lifecycle_env(w3, tester, key_of, accounts, deploy_helper, token, deployer, store_locations):
    escrow = Escrow.deploy(w3, accounts[0])
    actor = deploy_helper("Actor")
    transact(actor.functions.setMode(REVERT_MODE), deployer)
    payers = [Account.from_key(key_of(a)) for a in accounts[5:7]]
    owner = Account.from_key(key_of(accounts[9]))
    wallet = deploy_helper("OwnerWallet", owner.address)
    w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction({"from": owner.address, "to": wallet.address,
                                                                  "value": 10**21}))
    transact(token.functions.mint(wallet.address, 10**30), owner.address)
    approve = token.functions.approve(escrow.address, 2**256 - 1)._encode_transaction_data()
    transact(wallet.functions.execute(token.address, 0, approve), owner.address)
    for payer in payers:
        transact(token.functions.mint(payer.address, 10**30), payer.address)
        transact(token.functions.approve(escrow.address, 2**256 - 1), payer.address)
    return {"w3": w3, "tester": tester, "escrow": escrow, "token": token, "actor": actor, "payers": payers,
            "payee_keys": [Account.from_key(key_of(a)) for a in accounts[7:9]], "relayer": accounts[3],
            "deployer": deployer, "wallet": wallet, "owner": owner, "stores": store_locations,
            "hot_keys": [Account.from_key(keccak(text=f"lifecycle hot key {i}")) for i in range(2)]}


def test_channel_lifecycle(lifecycle_env):
    Lifecycle.env = lifecycle_env
    run = Lifecycle.TestCase
    deep = os.environ.get("MICROPAY_HYPOTHESIS_PROFILE") == "deep"
    run.settings = settings(max_examples=int(os.environ.get("MICROPAY_LIFECYCLE_EXAMPLES", "300" if deep else "20")),
                            stateful_step_count=40, deadline=None,
                            # The fixed budget explores the same sequences on every run, so the
                            # behaviour-coverage check below cannot fail by chance; `deep` explores.
                            derandomize=not deep,
                            phases=[Phase.explicit, Phase.reuse, Phase.generate]
                            + ([] if os.environ.get("MICROPAY_NO_SHRINK") else [Phase.shrink]))
    SEEN.clear()
    run().runTest()
    for behaviour in ("opened a channel", "a payment was received", "a claim paid out", "claimMany paid out",
                      "closed by the payee", "reclaimed after expiry", "a forged claim reverted",
                      "a delegated voucher paid out", "a contract-signed voucher paid out", "a relayed claim paid out"):
        assert SEEN[behaviour], f"the state machine never exercised: {behaviour} ({dict(SEEN)})"
