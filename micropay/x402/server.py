"""The payee's side of the ``micropay-channel`` scheme: an x402 ``SchemeNetworkServer`` with hooks.

Its ``before_verify`` hook checks the voucher before the handler runs (signature, channel, payee,
token, deposit, the expiry margin and the challenge window, and that it covers the charged total
plus the price; never a chain transaction); its ``before_settle`` hook, after the handler
succeeded, stores the voucher durably through the same path as :meth:`Payee.receive` (the group
commit included) and charges the price in the same transaction. Only then does the paying
middleware send the handler's answer. Nothing goes to a facilitator: the freelancer settles later,
with ``micropay settle`` or ``watch``, for every channel in one transaction.

A refusal is a 402 whose ``error`` is ``micropay_<code>`` (the inbox's codes: ``channel_expired``,
``window_too_short``, ``insufficient_deposit``, ``underpaid``, …), and whose requirements' ``extra``
says why in words (``reason``) and, for a known channel, what the payee holds and charged
(:class:`~micropay.x402.scheme.ChargeState`), so a client that is behind pays on from there.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

from x402 import (
    AbortResult,
    AssetAmount,
    Network,
    PaymentRequirements,
    Price,
    SettleContext,
    SettleResponse,
    SkipSettleResult,
    SkipVerifyResult,
    SupportedKind,
    VerifyContext,
    VerifyResponse,
)
from x402.interfaces import PaymentFlowConfig, SchemePaymentRequiredContext

from micropay.channel import ETH, ChannelRef
from micropay.errors import (
    DomainMismatch,
    LedgerGap,
    MicropayError,
    MicropayValueError,
    NotParticipant,
    StaleVoucher,
    Underpaid,
)
from micropay.group_commit import GroupCommit
from micropay.inbox_limits import ERROR_CODES
from micropay.payee import Payee
from micropay.payment import Payment
from micropay.receiving import CheckedPayment, Received
from micropay.store_transaction import StoreTransaction
from micropay.units import parse_amount
from micropay.x402.scheme import (
    REASON_PREFIX,
    SCHEME,
    X402_TERMS,
    ChannelTerms,
    ChargeState,
    network_of,
    payment_of,
)

#: Refusals remembered until their 402 is written (the SDK drops an abort's message), and payments
#: decoded at verify until their settle: bounded.
_MAX_PENDING_REASONS = 1024


def reason_code(exc: BaseException) -> str:
    """The 402 ``error`` of a refusal: ``micropay_`` and the inbox's code for it."""
    for kind, code, _ in ERROR_CODES:
        if isinstance(exc, kind):
            return REASON_PREFIX + code
    return REASON_PREFIX + "refused"


class MicropayChannelServer:
    """The ``micropay-channel`` scheme for ``payee``'s resource server, priced in ``token`` (ETH
    by default). ``group``: the group commit to store through (an inbox's, to share its commits;
    by default one of its own)."""

    scheme = SCHEME
    default_asset_transfer_method = "default"
    payment_flows: Mapping[str, PaymentFlowConfig] = {
        "default": {"supported": ("authorization",), "default": "authorization"}}

    def __init__(self, payee: Payee, *, token: str = ETH, group: GroupCommit | None = None) -> None:
        self.payee, self.token = payee, token
        self.receiver = payee.receiver
        self.group = group if group is not None else GroupCommit(self.receiver)
        self.network = network_of(payee.escrow.chain_id)
        self.terms = ChannelTerms(payee.escrow.address, self.receiver.safety_margin, self.receiver.min_window)
        self._units: tuple[int, str] | None = None
        self._reasons: OrderedDict[int, tuple[str, ChannelRef | None]] = OrderedDict()
        self._decoded: OrderedDict[int, tuple[object, Payment]] = OrderedDict()  # verified, not settled yet

    # -- SchemeNetworkServer -------------------------------------------------------------------------

    def parse_price(self, price: Price, network: Network) -> AssetAmount:
        """A route's price: an ``AssetAmount`` in base units of this scheme's token, or an amount
        in its units ("0.001", "0.001 USDC"; "5 units": base units). Raises
        :class:`MicropayValueError` for anything else."""
        if isinstance(price, AssetAmount):
            if price.asset.lower() != self.token.lower():
                raise MicropayValueError(f"a price in {price.asset}, but this scheme is priced in {self.token}")
            return price
        if isinstance(price, dict):
            return self.parse_price(AssetAmount.model_validate(price), network)
        if self._units is None:
            self._units = self.payee.escrow.token_units(self.token)
        text = str(price).strip().removeprefix("$")
        if not any(c.isalpha() for c in text):  # a bare number is in the token's units, as x402's money is
            text = f"{text} {self._units[1]}"
        amount = parse_amount(text, *self._units)
        if amount <= 0:
            raise MicropayValueError(f"a route's price must be above zero, not {price!r}")
        return AssetAmount(amount=str(amount), asset=self.token)

    def enhance_payment_requirements(self, requirements: PaymentRequirements, supported_kind: SupportedKind,
                                     extensions: list[str]) -> PaymentRequirements:
        """The requirements with the escrow and the payee's minimum expiry margin and window in ``extra``."""
        requirements.extra = {**requirements.extra, **self.terms.to_extra()}
        return requirements

    # -- hooks ----------------------------------------------------------------------------------------

    async def before_verify(self, context: VerifyContext) -> AbortResult | SkipVerifyResult:
        """Check the voucher without storing it (no chain transaction; a chain read only for a
        channel seen for the first time or gone stale). Skips the facilitator."""
        payload, requirements = context.payment_payload, context.requirements
        try:
            if not isinstance(requirements, PaymentRequirements):
                raise DomainMismatch("micropay-channel is an x402 version 2 scheme")
            payment = self._payment(payload.payload, requirements)
            self._decoded[id(payload)] = (payload.payload.get("payment"), payment)  # for its settle
            while len(self._decoded) > _MAX_PENDING_REASONS:
                self._decoded.popitem(last=False)
            checked = self.receiver.check(payment, offline=True)
            if checked is None:
                checked = await self.group.on_chain(self.receiver.check, payment)
            self._covers(checked, int(requirements.amount))
        except MicropayError as exc:
            return self._refuse(id(payload), exc, self._ref(payload.payload))
        return SkipVerifyResult(VerifyResponse(is_valid=True, payer=checked.record.key.payer))

    async def before_settle(self, context: SettleContext) -> AbortResult | SkipSettleResult:
        """The handler succeeded: store the voucher durably and charge the price, in one
        transaction (shared with other payments by the group commit). Skips the facilitator."""
        payload, requirements = context.payment_payload, context.requirements
        if not isinstance(requirements, PaymentRequirements):
            return self._refuse(id(payload), DomainMismatch("micropay-channel is an x402 version 2 scheme"), None)
        price = int(requirements.amount)
        after: list[ChargeState] = []

        def charge(tx: StoreTransaction, received: Received) -> None:
            ref = ChannelRef(self.payee.escrow.chain_id, self.payee.escrow.address, received.channel_id)
            charged, calls = tx.charged(ref)
            tip = tx.tip(ref)
            best = tip.best if tip is not None else None  # the payment just stored, or the one it repeats
            held, receipts = (best.amount, best.receipt_count) if best is not None else (0, 0)
            if held < charged + price:
                raise Underpaid(f"the voucher covers {held}, short of {charged} charged plus the price {price}")
            tx.set_charged(ref, charged + price, calls + 1)
            after.append(ChargeState(received.channel_id, charged + price, held, receipts))

        try:
            text, payment = self._decoded.pop(id(payload), (None, None))
            if payment is None or text != payload.payload.get("payment"):  # not this request's (ids are reused)
                payment = self._payment(payload.payload, requirements)
            received = await self.group.receive_async(payment, then=charge)
        except MicropayError as exc:
            return self._refuse(id(payload), exc, self._ref(payload.payload))
        (state,) = after
        return SkipSettleResult(SettleResponse(success=True, transaction="", network=requirements.network,
                                               payer=received.payer, amount=str(price), extra=state.to_extra()))

    def enrich_payment_required_response(self, context: SchemePaymentRequiredContext
                                         ) -> list[PaymentRequirements] | None:
        """A refusal's 402: why, in words, and what the payee holds and charged on the channel."""
        if context.payment_payload is None or not (context.error or "").startswith(REASON_PREFIX):
            return None
        found = self._reasons.pop(id(context.payment_payload), None)
        if found is None:
            return None
        reason, ref = found
        extra: dict[str, object] = {"reason": reason}
        if ref is not None:
            state = self.state(ref)
            if state is not None:
                extra.update(state.to_extra())
        for requirements in context.requirements:
            if requirements.scheme == SCHEME:
                requirements.extra = {**requirements.extra, **{k: v for k, v in extra.items()
                                                               if k not in requirements.extra}}
        return context.requirements

    # -- what the payee holds -------------------------------------------------------------------------

    def state(self, ref: ChannelRef) -> ChargeState | None:
        """What the payee holds and has charged on a channel (None: no voucher on it yet)."""
        tip = self.payee.store.tip(ref)
        if tip is None or tip.best is None:
            return None
        charged, _ = self.payee.store.charged(ref)
        return ChargeState(ref.channel_id, charged, tip.best.amount, tip.best.receipt_count)

    def _payment(self, payload: Mapping[str, object], requirements: PaymentRequirements) -> Payment:
        """The payload's payment, for this payee, network, escrow and token. Raises what refuses it."""
        if requirements.network != self.network or requirements.pay_to.lower() != self.payee.address.lower():
            raise DomainMismatch(f"this server is paid on {self.network} to {self.payee.address}")
        payment = payment_of(payload)
        voucher = payment.voucher
        if (voucher.chain_id, voucher.escrow) != (self.payee.escrow.chain_id, self.payee.escrow.address):
            raise DomainMismatch(f"the voucher is for escrow {voucher.escrow} on chain {voucher.chain_id}, "
                                 f"not {self.payee.escrow.address} on chain {self.payee.escrow.chain_id}")
        return payment

    def _covers(self, checked: CheckedPayment, price: int) -> None:
        """The channel pays this payee in the route's token, may take the voucher, and the voucher
        covers what is charged plus ``price``."""
        record, voucher = checked.record, checked.payment.voucher
        if record.key.token.lower() != self.token.lower():
            raise NotParticipant(f"the channel pays in {record.key.token}, this route in {self.token}")
        if checked.state.terms != X402_TERMS:
            raise NotParticipant("the channel was not opened for paid calls: open one with the micropay-channel "
                                 "scheme's terms (a paying client does)")
        self.receiver.judge(checked.state, voucher.amount)
        state = self.state(record.ref)
        if state is not None and voucher.amount < state.held:
            raise StaleVoucher(f"the voucher is for {voucher.amount}, below the {state.held} already held")
        have = state.receipts if state is not None else 0
        first = checked.payment.first_index
        if voucher.amount > (state.held if state is not None else 0) and (first is None or first > have):
            raise LedgerGap(f"this payee holds {have} receipts; resend the payment from index {have}", have=have)
        charged = state.charged if state is not None else 0
        if voucher.amount < charged + price:
            raise Underpaid(f"the voucher covers {voucher.amount}, short of {charged} charged plus the price {price}")

    def _ref(self, payload: Mapping[str, object]) -> ChannelRef | None:
        try:
            voucher = payment_of(payload).voucher
        except MicropayError:
            return None
        return ChannelRef(voucher.chain_id, voucher.escrow, voucher.channel_id)

    def _refuse(self, key: int, exc: MicropayError, ref: ChannelRef | None) -> AbortResult:
        """An abort with this scheme's reason code; the words and the channel wait for the 402."""
        self._reasons[key] = (str(exc)[:300], ref)
        while len(self._reasons) > _MAX_PENDING_REASONS:
            self._reasons.popitem(last=False)
        return AbortResult(reason=reason_code(exc), message=str(exc)[:300])
