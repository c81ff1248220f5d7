"""A stateful property test of the channel lifecycle against a Python reference model.

Hypothesis drives random sequences of open, top-up, extend, pay/receive (honest, stale,
tampered, replayed, forged), claim, claimMany (by the payee and by a third party), close,
requestClose, time travel, reclaim, withdraw and a restart of the off-chain stores. After every
step all eleven invariants of REFERENCE §4 are checked on chain against the model and off chain
against the stores. The chain is deployed once and reverted to a snapshot for every example.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import typing
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import hypothesis.strategies as st
import pytest
from eth_account import Account
from hypothesis import Phase, event, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from helpers import ETH, HOUR, high_s, transact
from micropay import Escrow, Payee, Payer
from micropay.channel import ChannelKey
from micropay.errors import InvalidVoucher, MicropayError
from micropay.payment import Payment
from micropay.voucher import sign_voucher

REVERT_MODE = 1
SEEN: Counter[str] = Counter()


def seen(what: str) -> None:
    """Record that a behaviour happened (the test fails if a key one never does)."""
    SEEN[what] += 1
    event(what)


@dataclass
class Model:
    """What the escrow should hold for one channel."""

    key: ChannelKey
    deposit: int
    expiry: int
    window: int
    claimed: int = 0
    refunded: int = 0
    closed: bool = False
    signed: int = 0  # highest cumulative the payer signed
    acknowledged: int = 0  # highest cumulative the payee acknowledged
    submitted_in_time: int = 0  # highest voucher submitted on chain while claimable


class Lifecycle(RuleBasedStateMachine):
    """Set per test by the fixture below: chain, escrow, accounts, actor payee."""

    env: typing.ClassVar[dict] = {}

    @initialize()
    def setup(self):
        env = self.env
        self.w3, self.tester, self.escrow = env["w3"], env["tester"], env["escrow"]
        self.token, self.actor = env["token"], env["actor"]
        self.snapshot = self.tester.take_snapshot()
        self.dir = Path(tempfile.mkdtemp())
        self.payers = env["payers"]
        self.payees = env["payees"] + [self.actor.address]  # the last one rejects ETH pushes
        self.relayer = env["relayer"]
        self.channels: list[Model] = []
        self.claimed_before: dict[bytes, int] = {}
        self.owed: dict[tuple[str, str], int] = {}
        self._open_stores()

    def teardown(self):
        if hasattr(self, "snapshot"):
            self.tester.revert_to_snapshot(self.snapshot)
            shutil.rmtree(self.dir, ignore_errors=True)

    def _open_stores(self):
        self.payer_api = {a.address: Payer(self.escrow, a, self.dir / f"payer-{a.address}.db") for a in self.payers}
        self.payee_api = {p: Payee(self.escrow, p, self.dir / f"payee-{p}.db", safety_margin=0, freshness=0,
                                   min_window=0)
                          for p in self.payees}

    def now(self) -> int:
        return self.w3.eth.get_block("pending")["timestamp"]

    def live(self, m: Model) -> bool:
        return not m.closed and self.now() <= m.expiry

    # -- rules ------------------------------------------------------------------------------

    @rule(payer=st.integers(0, 1), payee=st.integers(0, 2), eth=st.booleans(), deposit=st.integers(10**4, 10**6),
          days=st.integers(1, 5))
    def open(self, payer, payee, eth, deposit, days):
        account = self.payers[payer]
        token = ETH if eth else self.token.address
        key, _ = self.escrow.open(account.address, self.payees[payee], deposit, token=None if eth else token,
                                  expiry=self.now() + days * 86_400, window=HOUR)
        state = self.escrow.channel(key)
        self.payer_api[account.address].store.add_channel(_payer_record(self.escrow, state))
        self.channels.append(Model(key, deposit, state.expiry, HOUR))
        seen("opened a channel")

    @precondition(lambda self: self.channels)
    @rule(data=st.data(), amount=st.integers(1, 10**5))
    def top_up(self, data, amount):
        m = data.draw(st.sampled_from(self.channels))
        try:
            self.escrow.top_up(m.key.payer, m.key, amount)
        except MicropayError:
            assert not self.live(m)
            return
        m.deposit += amount
        self.payer_api[m.key.payer].sync(m.key.id)

    @precondition(lambda self: self.channels)
    @rule(data=st.data(), extra=st.integers(1, 3 * 86_400))
    def extend(self, data, extra):
        m = data.draw(st.sampled_from(self.channels))
        try:
            self.escrow.extend(m.key.payer, m.key, m.expiry + extra)
        except MicropayError:
            assert m.closed or m.expiry + extra <= self.now()  # a new expiry must also be in the future
            return
        m.expiry += extra
        self.payer_api[m.key.payer].sync(m.key.id)

    @precondition(lambda self: self.channels)
    @rule(data=st.data(), amount=st.integers(1, 10**5))
    def pay_and_receive(self, data, amount):
        m = data.draw(st.sampled_from(self.channels))
        payer = self.payer_api[m.key.payer]
        try:
            payment = payer.pay(m.key.id, amount, task=f"t{m.signed + amount}")
        except MicropayError as exc:
            seen(f"pay refused: {type(exc).__name__}")
            assert m.closed or m.signed + amount > m.deposit or m.expiry <= _wall()
            return
        assert payment.amount > m.signed  # invariant 11: never at or below an issued amount
        m.signed = payment.amount
        try:
            received = self.payee_api[m.key.payee].receive(payment.encode())
        except MicropayError as exc:
            seen(f"receive refused: {type(exc).__name__}")
            assert not self.live(m) or m.signed > m.deposit or m.acknowledged < m.signed - amount, repr(exc)
            return
        m.acknowledged = received.cumulative
        seen("a payment was received")

    # Paying is what a channel mostly does: more entry points make Hypothesis choose it more often.
    @precondition(lambda self: self.channels)
    @rule(data=st.data(), amount=st.integers(1, 10**5))
    def pay_and_receive_more(self, data, amount):
        self.pay_and_receive(data, amount)

    @precondition(lambda self: self.channels)
    @rule(data=st.data(), amount=st.integers(1, 10**5))
    def pay_and_receive_again(self, data, amount):
        self.pay_and_receive(data, amount)

    @precondition(lambda self: any(c.signed for c in self.channels))
    @rule(data=st.data(), kind=st.sampled_from(["stale", "tampered", "other channel", "wrong chain",
                                                "other escrow", "high s"]))
    def receive_bad(self, data, kind):
        m = data.draw(st.sampled_from([c for c in self.channels if c.signed]))
        payee = self.payee_api[m.key.payee]
        payer = self.payer_api[m.key.payer]
        best = payer.store.best_voucher(m.key.id)[0]
        forged = _forge(best, kind, self.channels, m, payer.account)
        before = _files(payee.store.path)
        with pytest.raises(MicropayError):
            payee.receive(forged)
        assert _files(payee.store.path) == before  # invariant 8, off chain: nothing stored

    @precondition(lambda self: any(c.acknowledged for c in self.channels))
    @rule(data=st.data(), by_relayer=st.booleans())
    def claim_again(self, data, by_relayer):
        self.claim(data, by_relayer)

    @precondition(lambda self: any(c.acknowledged for c in self.channels))
    @rule(data=st.data(), by_relayer=st.booleans())
    def claim(self, data, by_relayer):
        m = data.draw(st.sampled_from([c for c in self.channels if c.acknowledged]))
        voucher = self.payee_api[m.key.payee].store.best_voucher(m.key.id)[0]
        sender = self.relayer if by_relayer or m.key.payee == self.actor.address else m.key.payee
        self._submit(m, lambda: self.escrow.claim(sender, m.key, voucher), voucher.amount)

    def _claimable_eth(self) -> list[Model]:
        return [c for c in self.channels if c.acknowledged and c.key.token == ETH and self.live(c)
                and min(c.acknowledged, c.deposit) > c.claimed]

    @precondition(lambda self: self._claimable_eth())
    @rule(data=st.data())
    def claim_many(self, data):
        address = data.draw(st.sampled_from(sorted({c.key.payee for c in self._claimable_eth()})))
        mine = [c for c in self._claimable_eth() if c.key.payee == address]
        store = self.payee_api[address].store
        items = [(c.key, store.best_voucher(c.key.id)[0]) for c in mine]
        self.escrow.claim_many(self.relayer, address, ETH, items)
        seen("claimMany paid out")
        for c, (_, v) in zip(mine, items, strict=False):
            c.submitted_in_time = max(c.submitted_in_time, v.amount)
            self._paid(c, min(v.amount, c.deposit) - c.claimed)

    @precondition(lambda self: any(c.signed for c in self.channels))
    @rule(data=st.data(), kind=st.sampled_from(["wrong chain", "other escrow", "high s", "other channel"]))
    def claim_forged(self, data, kind):
        m = data.draw(st.sampled_from([c for c in self.channels if c.signed]))
        payer = self.payer_api[m.key.payer]
        best = payer.store.best_voucher(m.key.id)[0]
        key, signature = m.key, best.signature
        if kind in ("wrong chain", "other escrow"):
            signature = sign_voucher(payer.account, chain_id=best.chain_id + (kind == "wrong chain"),
                                     escrow="0x" + "99" * 20 if kind == "other escrow" else best.escrow,
                                     channel_id=best.channel_id, amount=best.amount,
                                     ledger_root=best.ledger_root).signature
        elif kind == "high s":
            signature = high_s(best.signature)
        else:  # replay this channel's voucher on another channel of the same payer
            others = [c for c in self.channels if c is not m and c.key.payer == m.key.payer]
            if not others:
                return
            key = data.draw(st.sampled_from(others)).key
        states = {c.key.id: self.escrow.contract.functions.channel(c.key.id).call() for c in self.channels}
        fn = self.escrow.contract.functions.claim(key.as_tuple(), best.amount, best.ledger_root, signature)
        with pytest.raises(MicropayError):
            self.escrow.unsafe_send(self.relayer, fn)
        seen("a forged claim reverted")
        assert states == {c.key.id: self.escrow.contract.functions.channel(c.key.id).call()
                          for c in self.channels}  # invariant 8, on chain: nothing changed

    @precondition(lambda self: self.channels)
    @rule(data=st.data())
    def close(self, data):
        m = data.draw(st.sampled_from([c for c in self.channels if c.key.payee != self.actor.address] or
                                      self.channels))
        if m.key.payee == self.actor.address:
            return
        best = self.payee_api[m.key.payee].store.best_voucher(m.key.id)
        try:
            self.escrow.close(m.key.payee, m.key, None if best is None or not self.live(m) else best[0])
        except MicropayError:
            assert m.closed
            return
        seen("closed by the payee")
        if best is not None and self.live(m):
            m.submitted_in_time = max(m.submitted_in_time, best[0].amount)
            self._paid(m, max(0, min(best[0].amount, m.deposit) - m.claimed))
        m.refunded, m.closed = m.deposit - m.claimed, True

    @precondition(lambda self: self.channels)
    @rule(data=st.data())
    def request_close(self, data):
        m = data.draw(st.sampled_from(self.channels))
        try:
            self.escrow.request_close(m.key.payer, m.key)
        except MicropayError:
            assert not self.live(m)
            return
        m.expiry = min(m.expiry, self.escrow.channel(m.key).observed_at + m.window)
        assert self.escrow.channel(m.key).expiry == m.expiry

    @rule(seconds=st.sampled_from([60, HOUR + 1, 86_400, 3 * 86_400, 6 * 86_400]))
    def travel(self, seconds):
        self.tester.time_travel(self.now() + seconds)

    @rule()
    def travel_past_every_expiry(self):
        self.tester.time_travel(max([self.now(), *(c.expiry for c in self.channels)]) + 2)

    @precondition(lambda self: any(not c.closed and c.expiry < self.now() for c in self.channels))
    @rule(data=st.data())
    def reclaim_expired(self, data):
        self.reclaim(data)

    @precondition(lambda self: self._claimable_eth())
    @rule(data=st.data())
    def claim_many_again(self, data):
        self.claim_many(data)

    @precondition(lambda self: self.channels)
    @rule(data=st.data())
    def reclaim(self, data):
        m = data.draw(st.sampled_from(self.channels))
        before = self.escrow.owed(m.key.payer, m.key.token)
        try:
            self.escrow.reclaim(m.key.payer, m.key)
        except MicropayError as exc:
            seen(f"reclaim refused: {type(exc).__name__}")
            assert m.closed or self.now() <= m.expiry
            return
        m.refunded, m.closed = m.deposit - m.claimed, True  # invariant 6
        seen("reclaimed after expiry")
        assert self.escrow.owed(m.key.payer, m.key.token) == before

    @precondition(lambda self: self.owed)
    @rule()
    def withdraw(self):
        (account, token), amount = next(iter(self.owed.items()))
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
        if m.key.payee == self.actor.address and m.key.token == ETH and increase:
            self.owed[(m.key.payee, ETH)] = self.owed.get((m.key.payee, ETH), 0) + increase

    # -- invariants (REFERENCE §4) ----------------------------------------------------------------

    @invariant()
    def chain_matches_model(self):
        if not hasattr(self, "channels"):
            return
        for m in self.channels:
            deposit, claimed, expiry, _, closed = self.escrow.contract.functions.channel(m.key.id).call()
            assert (deposit, claimed, expiry, closed) == (m.deposit, m.claimed, m.expiry, m.closed)
            assert claimed >= self.claimed_before.get(m.key.id, 0)  # 3: never decreases
            self.claimed_before[m.key.id] = claimed
            assert claimed <= deposit  # 3
            assert m.claimed + m.refunded <= m.deposit  # 2
            if m.closed:
                assert m.claimed + m.refunded == m.deposit  # 2 (final), 6
            assert claimed >= min(m.deposit, m.submitted_in_time) or not m.submitted_in_time  # 4
            assert claimed <= m.signed  # 5: never more than the payer signed

    @invariant()
    def escrow_is_solvent_and_events_match_balances(self):
        if not hasattr(self, "channels"):
            return
        for token in (ETH, self.token.address):
            held = sum(m.deposit - m.claimed - m.refunded for m in self.channels if m.key.token == token)
            owed = sum(v for (_, t), v in self.owed.items() if t == token)
            balance = (self.w3.eth.get_balance(self.escrow.address) if token == ETH
                       else self.token.functions.balanceOf(self.escrow.address).call())
            assert balance == held + owed  # 1, 9, 10: every wei accounted for, nothing else left
        for (account, token), amount in self.owed.items():
            assert self.escrow.owed(account, token) == amount

    @invariant()
    def stores_keep_what_was_promised(self):
        if not hasattr(self, "channels"):
            return
        for m in self.channels:  # 11
            issued = self.payer_api[m.key.payer].store.channel(m.key.id).issued
            assert issued == m.signed
            best = self.payee_api[m.key.payee].store.best_voucher(m.key.id)
            assert (best[0].amount if best else 0) >= m.acknowledged


def _payer_record(escrow, state):
    import time

    from micropay.records import ChannelRecord

    return ChannelRecord(state.key, escrow.chain_id, escrow.address, "payer", state.deposit, state.claimed,
                         state.expiry, state.window, state.closed, time.time(), state.observed_at)


def _wall() -> float:
    import time

    return time.time()


def _files(path: Path) -> bytes:
    return b"".join(Path(str(path) + s).read_bytes() for s in ("", "-wal") if Path(str(path) + s).exists())


def _forge(best, kind, channels, m, account):
    if kind == "stale":
        return sign_voucher(account, chain_id=best.chain_id, escrow=best.escrow, channel_id=best.channel_id,
                            amount=max(0, best.amount - 1), ledger_root=best.ledger_root)
    if kind == "tampered":
        return Payment.of(best, (), 0).encode()[:-3] + "aaa"
    if kind == "other channel":
        other = next((c for c in channels if c is not m), None)
        target = other.key.id if other else b"\x42" * 32
        from micropay.voucher import Voucher

        return Voucher(best.chain_id, best.escrow, target, best.amount, best.ledger_root, best.signature)
    if kind == "wrong chain":
        return sign_voucher(account, chain_id=best.chain_id + 1, escrow=best.escrow, channel_id=best.channel_id,
                            amount=best.amount + 1, ledger_root=best.ledger_root)
    if kind == "other escrow":
        return sign_voucher(account, chain_id=best.chain_id, escrow="0x" + "99" * 20, channel_id=best.channel_id,
                            amount=best.amount + 1, ledger_root=best.ledger_root)
    from micropay.voucher import Voucher

    try:
        return Voucher(best.chain_id, best.escrow, best.channel_id, best.amount, best.ledger_root,
                       high_s(best.signature))
    except InvalidVoucher:
        return best.encode()[:-2] + "zz"  # the library refuses to even build it; send garbage instead


@pytest.fixture
def lifecycle_env(w3, tester, key_of, accounts, deploy_helper, token, deployer):
    escrow = Escrow.deploy(w3, accounts[0])
    actor = deploy_helper("Actor")
    transact(actor.functions.setMode(REVERT_MODE), deployer)
    payers = [Account.from_key(key_of(a)) for a in accounts[5:7]]
    for payer in payers:
        transact(token.functions.mint(payer.address, 10**30), payer.address)
        transact(token.functions.approve(escrow.address, 2**256 - 1), payer.address)
    return {"w3": w3, "tester": tester, "escrow": escrow, "token": token, "actor": actor, "payers": payers,
            "payees": accounts[7:9], "relayer": accounts[3], "deployer": deployer}


def test_channel_lifecycle(lifecycle_env):
    Lifecycle.env = lifecycle_env
    run = Lifecycle.TestCase
    deep = os.environ.get("MICROPAY_HYPOTHESIS_PROFILE") == "deep"
    run.settings = settings(max_examples=int(os.environ.get("MICROPAY_LIFECYCLE_EXAMPLES", "300" if deep else "15")),
                            stateful_step_count=40, deadline=None,
                            # The fixed budget explores the same sequences on every run, so the
                            # behaviour-coverage check below cannot fail by chance; `deep` explores.
                            derandomize=not deep,
                            phases=[Phase.explicit, Phase.reuse, Phase.generate]
                            + ([] if os.environ.get("MICROPAY_NO_SHRINK") else [Phase.shrink]))
    SEEN.clear()
    run().runTest()
    for behaviour in ("opened a channel", "a payment was received", "a claim paid out", "claimMany paid out",
                      "closed by the payee", "reclaimed after expiry", "a forged claim reverted"):
        assert SEEN[behaviour], f"the state machine never exercised: {behaviour} ({dict(SEEN)})"
