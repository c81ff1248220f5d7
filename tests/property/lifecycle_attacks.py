"""The lifecycle test's attack rules (a mixin of test_lifecycle.Lifecycle): forged payments
offered to the payee, forged vouchers submitted on chain, and relayed claims, honest, bad and
replayed. Each bad one must revert with the expected error and change nothing (invariant 8).
"""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from eth_utils import keccak
from hypothesis.stateful import precondition, rule
from lifecycle_kit import SELF, WALLET, Model, Relay, forge, pack, relay_digest, revert_name, seen
from web3.logs import DISCARD

from helpers import ETH, HOUR, high_s
from micropay._utils.crypto import unsafe_sign_digest
from micropay.errors import MicropayError
from micropay.packing import pack_vouchers
from micropay.voucher import sign_voucher
from store_snapshot import store_state


class AttackRules:
    """Rules for a RuleBasedStateMachine that holds the lifecycle's chain, model and stores."""

    @precondition(lambda self: any(c.signed and c.kind == SELF for c in self.channels))
    @rule(data=st.data(), kind=st.sampled_from(["stale", "tampered", "other channel", "wrong chain",
                                                "other escrow", "high s"]))
    def receive_bad(self, data, kind):
        m = data.draw(st.sampled_from([c for c in self.channels if c.signed and c.kind == SELF]))
        payee = self.payee_api[m.key.payee]
        payer = self.payer_api[m.key.payer]
        best = payer.store.best_voucher(m.key.id)[0]
        forged = forge(best, kind, self.channels, m, payer.account)
        before = store_state(payee.store)
        with pytest.raises(MicropayError):
            payee.receive(forged)
        assert store_state(payee.store) == before  # invariant 8, off chain: nothing stored

    @precondition(lambda self: any(c.signed for c in self.channels))
    @rule(data=st.data(), kind=st.sampled_from(["wrong chain", "other escrow", "high s", "other channel",
                                                "wrong key", "another channel's signer"]),
          compact=st.booleans(), low=st.booleans())
    def claim_forged(self, data, kind, compact, low):
        m = data.draw(st.sampled_from([c for c in self.channels if c.signed]))
        best = self.signed_voucher(m)
        key, amount, signature, relabel = m.key, best.amount, best.signature, None
        if low:  # I-4: a forgery at or below what is claimed is still reported as a bad signature
            amount = data.draw(st.integers(0, m.claimed))
        if kind in ("wrong chain", "other escrow", "wrong key"):
            right = self.payer_api[m.key.payer].account if m.kind == SELF else m.signer
            signer = right if kind != "wrong key" else data.draw(st.sampled_from(
                [a for a in (*self.payers, *self.hot_keys, self.owner) if a.address != right.address]))
            signature = sign_voucher(signer, chain_id=best.chain_id + (kind == "wrong chain"),
                                     escrow="0x" + "99" * 20 if kind == "other escrow" else best.escrow,
                                     channel_id=best.channel_id, amount=amount,
                                     ledger_root=best.ledger_root).signature
        elif kind == "high s":
            # A wallet's isValidSignature rules on malleability itself (OwnerWallet's ecrecover takes a
            # high s, and it is still its owner's signature of this very voucher): only the ECDSA form.
            compact = compact or m.kind == WALLET
            signature = high_s(sign_voucher(m.signer or self.payer_api[m.key.payer].account,
                                            chain_id=best.chain_id, escrow=best.escrow, channel_id=best.channel_id,
                                            amount=amount, ledger_root=best.ledger_root).signature)
        elif kind == "other channel":  # replay this channel's voucher on another channel of the same signer
            others = [c for c in self.channels if c is not m and c.key.voucher_signer == m.key.voucher_signer]
            if not others:
                return
            key = data.draw(st.sampled_from(others)).key
        else:  # a delegated hot key signs for a channel whose vouchers another key signs
            hot = data.draw(st.sampled_from(self.hot_keys))
            if m.key.voucher_signer == hot.address:
                return
            signature = sign_voucher(hot, chain_id=best.chain_id, escrow=best.escrow, channel_id=m.key.id,
                                     amount=amount, ledger_root=best.ledger_root).signature
            relabel = data.draw(st.sampled_from([None, hot.address]))  # name itself as the signer: another id
        target = next(c for c in self.channels if c.key == key) if kind == "other channel" else m
        packed = pack(key, amount, best.ledger_root, signature, contract=not compact, signer=relabel)
        before = self.state()
        expected = ("ChannelNotFound" if relabel else "ChannelFinal" if target.closed
                    else "InvalidSignature" if self.live(target) else "ChannelExpired")
        fn = self.escrow.contract.functions.claim(key.payee, key.token, packed)
        with pytest.raises(MicropayError) as info:
            self.escrow.unsafe_send(self.relayer, fn)
        assert revert_name(info.value) == expected, (kind, info.value)
        seen("a forged claim reverted")
        if m.kind != SELF:
            seen(f"a forged {m.kind} voucher reverted")
        assert self.state() == before  # invariant 8, on chain: nothing changed

    # -- relayed claims ----------------------------------------------------------------------

    def _relayable(self) -> dict[tuple[str, str], list[Model]]:
        """Channels a payee holding a key could have relayed, by (payee, token): live, with a voucher
        that adds something and that its deposit covers in full."""
        groups: dict[tuple[str, str], list[Model]] = {}
        now = self.now()
        for c in self.channels:
            best = self.best(c) if c.acknowledged and c.key.payee in self.payee_keys and self.live(c, now) else None
            if best is not None and c.claimed < best.amount <= c.deposit:
                groups.setdefault((c.key.payee, c.key.token), []).append(c)
        return groups

    # Honest relays get two more entry points, so they happen about as often as claims.
    @precondition(lambda self: self._relayable())
    @rule(data=st.data())
    def claim_relayed_honestly(self, data):
        self.claim_relayed(data, "ok")

    @precondition(lambda self: self._relayable())
    @rule(data=st.data())
    def claim_relayed_honestly_again(self, data):
        self.claim_relayed(data, "ok")

    @precondition(lambda self: self._relayable())
    @rule(data=st.data(), kind=st.sampled_from(["ok", "fee above cap", "fee above payout", "expired",
                                                "signed by another", "other escrow", "other chain",
                                                "vouchers changed", "channel twice"]))
    def claim_relayed(self, data, kind):
        groups = self._relayable()
        payee, token = data.draw(st.sampled_from(sorted(groups)))
        chosen = data.draw(st.permutations(groups[(payee, token)]))
        chosen = chosen[: data.draw(st.integers(1, len(chosen)))]
        items = [(c.key, self.best(c)) for c in chosen]
        if kind == "channel twice":
            items.append(items[0])
        packed = pack_vouchers(items)
        total = sum(v.amount - c.claimed for c, (_, v) in zip(chosen, items, strict=False))
        fee = data.draw(st.integers(0, total))
        max_fee = fee + data.draw(st.integers(0, 10**4))
        deadline = self.now() + HOUR
        if kind == "fee above cap":
            fee = max_fee + 1
        elif kind == "fee above payout":
            max_fee, fee = total + 10, total + 1
        elif kind == "expired":
            deadline = self.now() - 1
        vouchers_hash = keccak(packed)
        digest = self.escrow.contract.functions.relayDigest(payee, token, vouchers_hash, max_fee, deadline).call()
        assert digest == relay_digest(self.escrow.chain_id, self.escrow.address, payee, token, vouchers_hash,
                                       max_fee, deadline)  # the contract hashes what EIP-712 says
        if kind in ("other escrow", "other chain"):
            digest = relay_digest(self.escrow.chain_id + (kind == "other chain"),
                                   "0x" + "99" * 20 if kind == "other escrow" else self.escrow.address,
                                   payee, token, vouchers_hash, max_fee, deadline)
        signer = self.payee_keys[payee] if kind != "signed by another" else self.payers[0]
        signature = unsafe_sign_digest(signer, bytes(digest))
        if kind == "vouchers changed":  # reordered, one dropped, or one added after signing
            packed = (pack_vouchers(items[::-1]) if len(items) > 1 and data.draw(st.booleans())
                      else pack_vouchers(items[:-1]) if len(items) > 1 else packed + packed)
        request = Relay(payee, token, packed, max_fee, deadline, fee, signature)
        if kind != "ok":
            expected = {"fee above cap": "FeeTooHigh", "fee above payout": "FeeTooHigh", "expired": "RelayExpired",
                        "channel twice": "NothingToClaim"}.get(kind, "InvalidSignature")
            self._relay_refused(request, expected)
            seen(f"a bad relay request reverted: {kind}")
            return
        paid_before = (self._balance(payee, token), self._balance(self.relayer, token))
        receipt = self.send(self.relayer, self.escrow.contract.functions.claimRelayed(*request.args()))
        relayed = self.escrow.contract.events.Relayed().process_receipt(receipt.web3_receipt, errors=DISCARD)
        assert [(e.args.payee, e.args.relayer, e.args.total, e.args.fee) for e in relayed] == [
            (payee, self.relayer, total, fee)]  # invariant 10: the event is the payout
        gas = receipt.fee if token == ETH else 0
        assert self._balance(payee, token) - paid_before[0] == total - fee
        assert self._balance(self.relayer, token) - paid_before[1] == fee - gas
        assert [(e.channel_id, e.claimed) for e in self.escrow.claimed_in(receipt)] == [
            (c.key.id, v.amount) for c, (_, v) in zip(chosen, items, strict=True)]
        for c, (_, v) in zip(chosen, items, strict=True):
            c.submitted_in_time = max(c.submitted_in_time, v.amount)
            self._paid(c, v.amount - c.claimed)
        self.relayed.append(request)
        seen("a relayed claim paid out")
        if data.draw(st.booleans()):
            self._replay(request)

    @precondition(lambda self: self.relayed)
    @rule(data=st.data())
    def replay_relayed(self, data):
        self._replay(data.draw(st.sampled_from(self.relayed)))

    def _replay(self, request: Relay) -> None:
        self._relay_refused(request, None)  # usable once: every voucher in it was redeemed in full
        seen("a replayed relay request reverted")

    def _relay_refused(self, request: Relay, expected: str | None) -> None:
        before, balance = self.state(), self._balance(request.payee, request.token)
        with pytest.raises(MicropayError) as info:
            self.escrow.unsafe_send(self.relayer, self.escrow.contract.functions.claimRelayed(*request.args()))
        name = revert_name(info.value)
        if expected is not None:
            assert name == expected, (expected, info.value)
        else:
            assert name in ("NothingToClaim", "ChannelFinal", "ChannelExpired", "RelayExpired"), info.value
        assert self.state() == before and self._balance(request.payee, request.token) == balance  # invariant 8
