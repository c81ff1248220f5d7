"""The lifecycle test's payer-side rules (a mixin of test_lifecycle.Lifecycle): open a channel (by
an EOA payer that signs its own vouchers, by one that named a hot key, or by an EIP-1271 wallet
through its `execute`), top up, extend, pay (the payee keeps what it would accept), request a
close and reclaim.
"""

from __future__ import annotations

import hypothesis.strategies as st
from eth_utils import keccak
from hypothesis.stateful import precondition, rule
from lifecycle_kit import DELEGATED_KEY, SELF, WALLET, Model, payer_record, seen, wall

from helpers import ETH, HOUR
from micropay.channel import ChannelKey
from micropay.errors import MicropayError
from micropay.voucher import sign_voucher


class PayerRules:
    """Rules for a RuleBasedStateMachine that holds the lifecycle's chain, model and stores."""

    @rule(payer=st.integers(0, 1), payee=st.integers(0, 2), eth=st.booleans(), deposit=st.integers(10**4, 10**6),
          days=st.integers(1, 5), kind=st.sampled_from([SELF, DELEGATED_KEY, WALLET]), hot=st.integers(0, 1))
    def open(self, payer, payee, eth, deposit, days, kind, hot):
        account, token, expiry = self.payers[payer], ETH if eth else self.token.address, self.now() + days * 86_400
        if kind == WALLET:
            self.salt += 1
            key = ChannelKey(self.wallet.address, self.payees[payee], token, self.salt)
            call, value = self.escrow.open_call(key, deposit, expiry=expiry, window=HOUR)
            self._wallet(call, value)
            signer = self.owner
        else:
            signer = self.hot_keys[hot] if kind == DELEGATED_KEY else None
            key, _ = self.escrow.open(account.address, self.payees[payee], deposit, token=None if eth else token,
                                      expiry=expiry, window=HOUR, signer=None if signer is None else signer.address)
        state = self.escrow.channel(key)
        assert (state.deposit, state.claimed, state.expiry, state.closed) == (deposit, 0, expiry, False)
        if kind == SELF:
            self.payer_api[account.address].store.add_channel(payer_record(self.escrow, state))
        self.channels.append(Model(key, deposit, state.expiry, HOUR, kind, signer))
        seen("opened a channel")

    @precondition(lambda self: self.channels)
    @rule(data=st.data(), amount=st.integers(1, 10**5))
    def top_up(self, data, amount):
        m = data.draw(st.sampled_from(self.channels))
        try:
            self._as_payer(m, "top_up", "topUp", amount, value=amount if m.key.is_eth else 0)
        except MicropayError:
            assert not self.live(m)
            return
        m.deposit += amount
        if m.kind == SELF:
            self.payer_api[m.key.payer].sync(m.key.id)

    @precondition(lambda self: self.channels)
    @rule(data=st.data(), extra=st.integers(1, 3 * 86_400))
    def extend(self, data, extra):
        m = data.draw(st.sampled_from(self.channels))
        try:
            self._as_payer(m, "extend", "extend", m.expiry + extra)
        except MicropayError:
            assert m.closed or m.expiry + extra <= self.now()  # a new expiry must also be in the future
            return
        m.expiry += extra
        if m.kind == SELF:
            self.payer_api[m.key.payer].sync(m.key.id)

    @precondition(lambda self: self.channels)
    @rule(data=st.data(), amount=st.integers(1, 10**5))
    def pay_and_receive(self, data, amount, live_only=False):
        self._pay(data.draw(st.sampled_from(self._live_channels() if live_only else self.channels)), amount)

    def _pay(self, m: Model, amount: int) -> None:
        if m.kind != SELF:
            self._pay_directly(m, amount)
            return
        payer = self.payer_api[m.key.payer]
        try:
            payment = payer.pay(m.key.id, amount, task=f"t{m.signed + amount}")
        except MicropayError as exc:
            seen(f"pay refused: {type(exc).__name__}")
            assert m.closed or m.signed + amount > m.deposit or m.expiry <= wall()
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

    def _pay_directly(self, m: Model, amount: int) -> None:
        """A hot key or a wallet's owner signs the next cumulative voucher; the payee keeps it if the
        escrow would accept its signature (checked as micropay checks it: ECDSA, else EIP-1271)."""
        total = m.signed + amount
        if m.closed or total > m.deposit:
            return
        voucher = sign_voucher(m.signer, chain_id=self.escrow.chain_id, escrow=self.escrow.address,
                               channel_id=m.key.id, amount=total, ledger_root=keccak(text=f"t{total}"))
        m.signed, m.last_signed = total, voucher
        assert self.escrow.is_signed_by(m.key.voucher_signer, voucher.digest(), voucher.signature)
        if self.live(m):
            m.vouchers.append(voucher)
            m.acknowledged = total
            seen(f"a {m.kind} payment was received")

    # Paying is what a channel mostly does: more entry points, on live channels, make Hypothesis
    # choose it more often.
    @precondition(lambda self: self._live_channels())
    @rule(data=st.data(), amount=st.integers(1, 10**5))
    def pay_and_receive_more(self, data, amount):
        self.pay_and_receive(data, amount, live_only=True)

    @precondition(lambda self: self._live_channels())
    @rule(data=st.data(), amount=st.integers(1, 10**5))
    def pay_and_receive_again(self, data, amount):
        self.pay_and_receive(data, amount, live_only=True)

    def _live_channels(self) -> list[Model]:
        now = self.now()
        return [c for c in self.channels if self.live(c, now)]


    @precondition(lambda self: self.channels)
    @rule(data=st.data())
    def request_close(self, data):
        m = data.draw(st.sampled_from(self.channels))
        try:
            self._as_payer(m, "request_close", "requestClose")
        except MicropayError:
            assert not self.live(m)
            return
        m.expiry = min(m.expiry, self.escrow.channel(m.key).observed_at + m.window)
        assert self.escrow.channel(m.key).expiry == m.expiry

    @precondition(lambda self: any(not c.closed and c.expiry < self.now() for c in self.channels))
    @rule(data=st.data())
    def reclaim_expired(self, data):
        self.reclaim(data)

    @precondition(lambda self: self.channels)
    @rule(data=st.data())
    def reclaim(self, data):
        m = data.draw(st.sampled_from(self.channels))
        before = self.escrow.owed(m.key.payer, m.key.token)
        try:
            self._as_payer(m, "reclaim", "reclaim")
        except MicropayError as exc:
            seen(f"reclaim refused: {type(exc).__name__}")
            assert m.closed or self.now() <= m.expiry
            return
        m.refunded, m.closed = m.deposit - m.claimed, True  # invariant 6
        seen("reclaimed after expiry")
        assert self.escrow.owed(m.key.payer, m.key.token) == before

    def _as_payer(self, m: Model, method: str, function: str, *args, value: int = 0) -> None:
        """A payer-side call: through the proxy for an EOA payer, through `execute` for the wallet."""
        if m.kind != WALLET:
            getattr(self.escrow, method)(m.key.payer, m.key, *args)
        else:
            self._wallet(getattr(self.escrow.contract.functions, function)(*m.key.payer_args(), *args), value)

    def _wallet(self, call, value: int) -> None:
        data = call._encode_transaction_data()
        self.send(self.owner.address, self.wallet.functions.execute(self.escrow.address, value, data))
