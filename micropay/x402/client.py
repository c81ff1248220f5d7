"""The payer's side of the ``micropay-channel`` scheme: an x402 ``SchemeNetworkClient``.

``x402Client().register("eip155:*", MicropayChannelScheme(payer, caps))`` makes any x402 client
pay ``micropay-channel`` routes from ``payer``'s channels: for each call it signs the next
cumulative voucher on the payer's channel to the route's ``payTo`` (one receipt: the call's method
and path as the task id, the request's hash as the deliverable), opening a channel first when
none fits, within the :class:`SpendingCaps` the user set. What it signed lives in the payer's
store, as every voucher does; what the payee has charged comes back with each paid answer (and
with a corrective 402), so after a crash or a lost answer it pays on from the payee's word:

- a voucher that already covers the charged total plus the price is sent again (a call that
  failed, or whose answer was lost, is not paid twice);
- otherwise it signs exactly the difference: never more than the route's price, never above the
  caps, never twice for one cumulative amount (the payer's store refuses that).
"""

from __future__ import annotations

import contextvars
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from x402 import PaymentRequirements
from x402.schemas.hooks import PaymentResponseContext, RecoveredResponseResult

from micropay.channel import Duration, to_seconds
from micropay.errors import MicropayValueError
from micropay.ledger import EMPTY_ROOT
from micropay.payer import Payer
from micropay.payment import Payment
from micropay.records import ChannelRecord
from micropay.x402.scheme import SCHEME, X402_TERMS, ChannelTerms, ChargeState, chain_of, payload_of

#: Seconds of expiry a channel keeps beyond the payee's margin before a new one is opened.
EXPIRY_SLACK = 3600


@dataclass(frozen=True)
class Call:
    """The request a payment is for: its receipt's task id and deliverable (the request's hash)."""

    task: str
    deliverable: bytes = EMPTY_ROOT
    method: str = ""


#: The call under way in this task (set by :class:`~micropay.x402.transport.PayingTransport`).
CURRENT_CALL: contextvars.ContextVar[Call | None] = contextvars.ContextVar("micropay_x402_call", default=None)


class SpendingCapReached(MicropayValueError):
    """A payment would go above the caps the user set (per call, or in all to one payee)."""


@dataclass(frozen=True)
class SpendingCaps:
    """What the scheme may spend: ``deposit`` base units in each channel it opens, ``max_spend``
    signed in all to any one payee (counted from the store, across its channels), and at most
    ``max_price`` per call (None: the route's price, which is never exceeded anyway). New channels
    run ``expires_in`` with a challenge ``window`` (at least the payee's minimum)."""

    deposit: int
    max_spend: int
    max_price: int | None = None
    expires_in: Duration = timedelta(days=30)
    window: Duration = timedelta(days=1)

    def __post_init__(self) -> None:
        for name in ("deposit", "max_spend"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise MicropayValueError(f"SpendingCaps.{name} must be a positive integer of base units")


class MicropayChannelScheme:
    """Pays ``micropay-channel`` requirements from ``payer``'s channels, within ``caps``."""

    scheme = SCHEME

    def __init__(self, payer: Payer, caps: SpendingCaps) -> None:
        self.payer, self.caps = payer, caps
        self._lock = threading.Lock()
        self._payee_word: dict[bytes, ChargeState] = {}  # channel uid: what the payee said last
        self.scheme_hooks = SimpleNamespace(on_payment_response=self._on_payment_response)

    # -- SchemeNetworkClient --------------------------------------------------------------------------

    def create_payment_payload(self, requirements: PaymentRequirements) -> dict[str, Any]:
        """The payload paying one call of ``requirements``: see the module docstring. Raises
        :class:`MicropayValueError` (another escrow or chain, a price above the caps),
        :class:`SpendingCapReached`, or what opening a channel or :meth:`Payer.pay` raises."""
        with self._lock:
            return payload_of(self.pay(requirements))

    def pay(self, requirements: PaymentRequirements) -> Payment:
        """The payment for one call of ``requirements`` (signed and stored first, when a new voucher is needed)."""
        terms = ChannelTerms.from_extra(requirements.extra)
        escrow = self.payer.escrow
        if chain_of(requirements.network) != escrow.chain_id or terms.escrow.lower() != escrow.address.lower():
            raise MicropayValueError(f"the route is paid on escrow {terms.escrow} of {requirements.network}; this "
                                     f"payer uses {escrow.address} on eip155:{escrow.chain_id}")
        price = int(requirements.amount)
        if price <= 0 or (self.caps.max_price is not None and price > self.caps.max_price):
            raise SpendingCapReached(f"the route's price {price} is above the cap of {self.caps.max_price} per call")
        record = self._channel(requirements.pay_to, requirements.asset, terms, price)
        ref = record.ref
        correction = ChargeState.from_extra(requirements.extra)
        if correction is not None and correction.channel_id == record.id:
            self._payee_word[ref.uid] = correction  # a corrective 402: the payee's word replaces ours
        best = self.payer.store.best_voucher(ref)
        signed, count = (best[0].amount, best[1]) if best else (0, 0)
        word = self._payee_word.get(ref.uid)
        if word is None and best is not None:
            # Not a word from the payee since this process started: send what was signed last, with
            # its last receipt, and let the payee say what it holds (a 402 with its state) before
            # anything more is signed: no voucher is ever signed on a guess.
            return Payment.of(best[0], tuple(e.receipt for e in self.payer.store.ledger(ref, start=count - 1)),
                              count - 1)
        word = word or ChargeState(record.id, 0, 0, 0)
        if signed >= word.charged + price:
            voucher = best[0] if best else None
        else:
            increment = word.charged + price - signed
            self._check_spend(requirements.pay_to, requirements.asset, increment)
            call = CURRENT_CALL.get() or Call(f"x402 {requirements.pay_to[:10]}")
            voucher = self.payer.pay(ref, increment, call.task, deliverable=call.deliverable, deliver=False).voucher
            count += 1
        if voucher is None:
            raise MicropayValueError("nothing signed on this channel yet")  # unreachable: price > 0
        start = min(word.receipts, count)
        receipts = tuple(entry.receipt for entry in self.payer.store.ledger(ref, start=start))
        return Payment.of(voucher, receipts, start)

    # -- what the payee said ---------------------------------------------------------------------------

    def payee_said(self, extra: dict[str, Any] | None) -> None:
        """Take the channel state a paid answer's ``PAYMENT-RESPONSE`` carries."""
        state = ChargeState.from_extra(extra or {})
        if state is None:
            return
        with self._lock:
            for record in self.payer.store.channels_with_id(state.channel_id):
                if record.role == "payer":
                    self._payee_word[record.ref.uid] = state

    def _on_payment_response(self, context: PaymentResponseContext) -> RecoveredResponseResult | None:
        """A paid answer: take the payee's state. A corrective 402 (its state in our requirement's
        extra): take it, and have x402's transport pay once more from it."""
        settled = context.settle_response
        if settled is not None and settled.success:
            self.payee_said(settled.extra)
            return None
        required = context.payment_required
        for requirements in getattr(required, "accepts", None) or ():
            if requirements.scheme == SCHEME and ChargeState.from_extra(requirements.extra) is not None:
                self.payee_said(requirements.extra)
                return RecoveredResponseResult()
        return None

    # -- channels --------------------------------------------------------------------------------------

    def _channel(self, pay_to: str, token: str, terms: ChannelTerms, price: int) -> ChannelRecord:
        """An open channel to ``pay_to`` in ``token`` that meets ``terms`` and has room for
        ``price``; opened (with the caps' deposit) when there is none."""
        now = time.time()
        fits = []
        for record in self._to(pay_to, token):
            if record.closed:
                continue
            if record.key.voucher_signer != self.payer.signer_address or record.window < terms.min_window:
                continue
            if record.terms != X402_TERMS:  # a channel for planned work: its deposit is not for calls
                continue
            if record.expiry - now < terms.min_expiry_margin + EXPIRY_SLACK:
                continue
            best = self.payer.store.best_voucher(record.ref)
            if record.deposit - (best[0].amount if best else 0) >= price:
                fits.append(record)
        if fits:
            return max(fits, key=lambda r: r.expiry)
        if self.caps.deposit < price:
            raise SpendingCapReached(f"a channel of {self.caps.deposit} (the caps' deposit) cannot pay {price}")
        self._check_spend(pay_to, token, self.caps.deposit, opening=True)
        window = max(to_seconds(self.caps.window), terms.min_window)
        return self.payer.open_channel(pay_to, self.caps.deposit, token, self.caps.expires_in,
                                       window=timedelta(seconds=window), terms=X402_TERMS)

    def _to(self, pay_to: str, token: str) -> list[ChannelRecord]:
        """This payer's channels on its escrow to ``pay_to`` in ``token`` (for calls or not, open or not)."""
        escrow = self.payer.escrow
        return [r for r in self.payer.store.channels("payer")
                if (r.chain_id, r.escrow) == (escrow.chain_id, escrow.address)
                and r.key.payee.lower() == pay_to.lower() and r.key.token.lower() == token.lower()]

    def _check_spend(self, pay_to: str, token: str, more: int, *, opening: bool = False) -> None:
        """Raises :class:`SpendingCapReached` if ``more`` would take what is signed (or, when
        ``opening``, deposited) to ``pay_to`` above the cap."""
        mine = self._to(pay_to, token)
        if opening:
            spent = sum(r.deposit for r in mine if not r.closed)
        else:
            spent = sum(best[0].amount for r in mine if (best := self.payer.store.best_voucher(r.ref)) is not None)
        if spent + more > self.caps.max_spend:
            what = "deposited" if opening else "signed"
            raise SpendingCapReached(f"{spent + more} {what} to {pay_to} would pass the cap of {self.caps.max_spend}")

