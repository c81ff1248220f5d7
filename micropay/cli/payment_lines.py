"""Taking in payment lines for the freelancer: each judged on its own, each reported.

A payment names its chain and escrow, so nothing needs configuring: the node must be on the
payment's chain, and the code at the payment's escrow must be the genuine micropay escrow
(:meth:`Escrow.at`). Receiving signs nothing, so the key file is never decrypted: the payee is
this account's address. One bad or old line never stops the lines after it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from micropay.channel import ChannelRef, checked_address
from micropay.cli.context import Session
from micropay.cli.output import hex_id, quoted, safe, when
from micropay.cli.plans import take_document
from micropay.documents import DOCUMENT_PREFIXES
from micropay.errors import (
    ChannelError,
    ChannelExpired,
    DomainMismatch,
    InsufficientDeposit,
    InvalidVoucher,
    LedgerGap,
    LedgerMismatch,
    MicropayValueError,
    PlanError,
    StaleVoucher,
    UnknownEscrow,
)
from micropay.payee import Payee
from micropay.payment import Payment, parse_payment
from micropay.receiving import Received

Outcome = Literal["new", "held", "older", "rejected", "document"]
#: What a line can be rejected for (anything else, such as an unreachable node, stops the run).
LINE_ERRORS = (InvalidVoucher, LedgerMismatch, ChannelError, UnknownEscrow, MicropayValueError, PlanError)


@dataclass(frozen=True)
class Line:
    """What became of one payment line."""

    number: int
    outcome: Outcome
    text: str  # one sentence for people
    received: Received | None = None
    channel: bytes | None = None
    escrow: tuple[int, str] | None = None  # the payment's chain id and escrow, once it parsed

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"line": self.number, "outcome": self.outcome, "message": self.text,
                                "channel": None if self.channel is None else hex_id(self.channel)}
        if self.escrow is not None:
            data |= {"chain": self.escrow[0], "escrow": self.escrow[1]}
        if self.received is not None:
            data |= {"payer": self.received.payer, "added": str(self.received.added),
                     "cumulative": str(self.received.cumulative), "tasks": [t.task_id for t in self.received.tasks],
                     "duplicate": self.received.duplicate}
        return data


class PaymentLines:
    """Receives payments for this session's account, on whichever escrow each payment names."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.payees: dict[str, Payee] = {}
        self.lines: list[Line] = []

    def take(self, number: int, text: str) -> Line:
        """Judge and store one payment line (or a plan or feedback document pasted among them);
        never raises for what is wrong with the line itself."""
        if text.lstrip()[:4].lower() in DOCUMENT_PREFIXES:
            try:
                line = Line(number, "document", take_document(self.session, text.strip()))
            except LINE_ERRORS as exc:
                line = Line(number, "rejected", f"rejected: {exc}")
            self.lines.append(line)
            return line
        payment: Payment | None = None
        payee: Payee | None = None
        try:
            payment = parse_payment(text.strip())
            payee = self._payee_for(payment)
            received = payee.receive(payment)
        except StaleVoucher:
            assert payment is not None and payee is not None  # only receiving judges a payment stale
            line = Line(number, "older", self._older(payment, payee), channel=payment.channel_id)
        except LINE_ERRORS as exc:
            line = Line(number, "rejected", "rejected: " + self._reason(exc, payment, payee),
                        channel=None if payment is None else payment.channel_id)
        else:
            line = Line(number, "held" if received.duplicate else "new", self._new(received, payee), received,
                        received.channel_id)
        if payment is not None:
            line = replace(line, escrow=(payment.voucher.chain_id, payment.voucher.escrow))
        self.lines.append(line)
        return line

    @property
    def rejected(self) -> int:
        return sum(line.outcome == "rejected" for line in self.lines)

    def summary(self) -> str:
        """What became of the lines, in one line: starting with "error: " when one was rejected."""
        counts = {outcome: sum(line.outcome == outcome for line in self.lines)
                  for outcome in ("new", "held", "older", "rejected", "document")}
        others = f"{counts['new']} new, {counts['held']} already held, {counts['older']} older than held"
        if counts["document"]:
            others += f", {counts['document']} plan or feedback document(s)"
        if not counts["rejected"]:
            return f"{len(self.lines)} payment(s): {others}"
        return f"error: {counts['rejected']} of {len(self.lines)} payment(s) rejected (see above); {others}"

    # -- the payee of a payment ------------------------------------------------------------------

    def _payee_for(self, payment: Payment) -> Payee:
        voucher, session = payment.voucher, self.session
        if voucher.chain_id != session.chain:
            raise DomainMismatch(f"this payment is for chain {voucher.chain_id}, but the node at {session.rpc} is on "
                                 f"chain {session.chain}: receive it through a chain-{voucher.chain_id} node (--rpc)")
        if session.escrow_address and checked_address(session.escrow_address, "--escrow") != voucher.escrow:
            raise DomainMismatch(f"this payment is for escrow {voucher.escrow}, not the --escrow you gave "
                                 f"({session.escrow_address})")
        if voucher.escrow not in self.payees:
            self.payees[voucher.escrow] = Payee(session.escrow_at(voucher.escrow), session.address, session.store)
        return self.payees[voucher.escrow]

    # -- sentences -------------------------------------------------------------------------------

    def _token(self, payee: Payee, channel_id: bytes) -> str:
        return self.session.store.channel(_ref(payee, channel_id)).key.token

    def _new(self, received: Received, payee: Payee) -> str:
        token, show = self._token(payee, received.channel_id), self.session.show
        so_far = f"{show(received.cumulative, token)} so far on channel {hex_id(received.channel_id, 10)}"
        if received.duplicate:
            return f"already held: the payment from {received.payer}; {so_far}"
        tasks = ", ".join(quoted(t.task_id) for t in received.tasks)
        terms = f"; {received.terms.describe()}" if received.terms and received.terms.kind != "none" else ""
        return f"+{show(received.added, token)} from {received.payer} for {tasks}; {so_far}{terms}"

    def _older(self, payment: Payment, payee: Payee) -> str:
        ref = _ref(payee, payment.channel_id)
        token = self.session.store.channel(ref).key.token
        best = self.session.store.best_voucher(ref)
        held = self.session.show(best[0].amount, token) if best else "more"
        return (f"older than held: this payment is for {self.session.show(payment.amount, token)} in all, "
                f"{held} is held on channel {hex_id(payment.channel_id, 10)}; ignored")

    def _reason(self, exc: Exception, payment: Payment | None, payee: Payee | None) -> str:
        """Why a line was rejected, in the token's units and in dates, with what to do."""
        if payment is None:
            return safe(str(exc))
        channel = hex_id(payment.channel_id, 10)
        if isinstance(exc, LedgerGap):
            resend = f"`micropay resend {hex_id(payment.channel_id)} --since {exc.have}`"
            what = ("this is a bare voucher, which does not say which tasks it pays" if payment.is_bare else
                    "the payments before this one did not arrive")
            return (f"{what} (you hold {exc.have} task(s) of channel {channel}): ask the client to run {resend} "
                    "and send you what it prints")
        if isinstance(exc, (InsufficientDeposit, ChannelExpired)) and payee is not None:
            try:
                state = payee.escrow.channel(payee.escrow.key(payment.channel_id))
            except ChannelError:
                return safe(str(exc))
            token = state.key.token
            if isinstance(exc, InsufficientDeposit):
                return (f"this payment promises {self.session.show(payment.amount, token)} but channel {channel} "
                        f"holds a deposit of {self.session.show(state.deposit, token)}: ask the client to top up "
                        f"at least {self.session.show(exc.shortfall, token)}")
            if state.expiry < state.observed_at:
                return f"channel {channel} ended {when(state.expiry)}: nothing more can be paid or claimed on it"
            return (f"channel {channel} ends {when(state.expiry)}, too soon to accept payments safely: ask the "
                    f"client to extend it (`micropay extend {channel} --days N`), or settle what you hold now")
        return safe(str(exc))


def _ref(payee: Payee, channel_id: bytes) -> ChannelRef:
    """The channel ``channel_id`` on ``payee``'s chain and escrow (an id alone may be on several)."""
    return ChannelRef(payee.escrow.chain_id, payee.escrow.address, channel_id)
