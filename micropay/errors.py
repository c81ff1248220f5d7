"""Every failure micropay raises publicly is a subclass of :class:`MicropayError`.

Where callers expect a built-in, the class inherits it too (``except ValueError`` keeps
working), the way web3.py does it.
"""

from __future__ import annotations


class MicropayError(Exception):
    """Root of every micropay error. ``revert`` is the contract's custom error when a revert
    caused it (see :func:`error_for_revert`), else None. An error that carries figures a caller
    acts on takes them as keywords, each kept as the attribute its class declares."""

    revert: ContractRevert | None = None

    def __init__(self, message: str = "", **details: object) -> None:
        super().__init__(message)
        for name, value in details.items():
            setattr(self, name, value)


class MicropayValueError(MicropayError, ValueError):
    """An argument or input is malformed or out of range."""


class ArtifactError(MicropayError):
    """The shipped contract artifact is missing or unreadable (a broken installation)."""


class ContractRevert(MicropayError):
    """The escrow contract reverted. ``name`` is the Solidity custom error, ``args`` its values."""

    def __init__(self, name: str, args: dict[str, object] | None = None, message: str | None = None) -> None:
        self.name = name
        self.args_by_name = dict(args or {})
        detail = ", ".join(f"{key}={value!r}" for key, value in self.args_by_name.items())
        super().__init__(message or f"escrow reverted with {name}({detail})")


class InvalidVoucher(MicropayValueError):
    """A voucher is malformed, corrupt, or does not verify."""


class InvalidSignature(InvalidVoucher):
    """A voucher's signature is malformed, malleable, or not the expected payer's."""


class DomainMismatch(InvalidVoucher):
    """A voucher is for another chain or another escrow than the caller expects."""


class LedgerMismatch(MicropayValueError):
    """A list of task receipts does not match a voucher's amount or ledger root."""


class ChannelError(MicropayError):
    """A channel operation is not possible in the channel's current state."""


class UnknownChannel(ChannelError, LookupError):
    """No such channel on this escrow (or not in this store)."""


class ChannelFinal(ChannelError):
    """The channel was closed or reclaimed; nothing can change it any more."""


class ChannelExpired(ChannelError):
    """The channel is past its expiry (or too close to it to accept a payment safely)."""


class ChannelNotExpired(ChannelError):
    """The channel has not expired yet, so the payer cannot reclaim."""


class WindowTooShort(ChannelError):
    """The channel's challenge window is shorter than this payee's minimum: after a close request,
    an outage longer than the window (an L2 sequencer's, the payee's own) lets the payer reclaim
    first. ``window`` and ``minimum`` are in seconds."""

    window: int
    minimum: int


class NotParticipant(ChannelError, PermissionError):
    """This account is not the channel's payer (or payee) as the operation requires."""


class InsufficientDeposit(ChannelError, MicropayValueError):
    """A payment would exceed the channel's deposit. ``shortfall`` is how much to top up."""

    shortfall: int


class NothingToClaim(ChannelError):
    """The voucher adds nothing over what was already claimed."""


class StaleVoucher(InvalidVoucher):
    """A voucher for less than the best one already stored."""


class Underpaid(InvalidVoucher):
    """A paid call's voucher does not cover what the payee has charged on the channel plus the call's price."""


class LedgerGap(InvalidVoucher):
    """A payment's task receipts do not connect to the ledger already stored. ``have`` is how many
    receipts the payee holds: ask the payer to resend the latest payment from that index."""

    have: int


class TransactionError(MicropayError):
    """A transaction could not be sent, was not mined in time, or failed on chain."""


class TransactionPending(TransactionError):
    """A transaction was handed to the node but its outcome is not known yet (the connection
    failed, or it was not mined in time): it may still be mined. Look again before sending it
    again. ``tx_hash`` is its hash."""

    tx_hash: bytes


class InsufficientFunds(TransactionError):
    """The account lacks the ETH (or tokens) a transaction needs."""


class UnknownEscrow(MicropayError):
    """No micropay escrow (matching the shipped artifact) at this address on this chain."""


class StoreError(MicropayError):
    """The voucher store is unreadable, from a newer micropay, or was changed underneath us."""


class KeystoreError(MicropayError):
    """A key file is missing, malformed, or the password does not open it."""


class NodeError(MicropayError, ConnectionError):
    """The Ethereum node cannot be reached, or is on another chain than expected."""


#: The escrow's (and OpenZeppelin ERC-20's) custom errors, and the micropay error each means.
REVERT_ERRORS: dict[str, type[MicropayError]] = {
    "ChannelNotFound": UnknownChannel,
    "ChannelFinal": ChannelFinal,
    "ChannelExpired": ChannelExpired,
    "ChannelNotExpired": ChannelNotExpired,
    "NothingToClaim": NothingToClaim,
    "NothingToWithdraw": NothingToClaim,
    "InvalidSignature": InvalidSignature,
    "InvalidEncoding": InvalidVoucher,
    "InvalidPayee": MicropayValueError,
    "InvalidSigner": MicropayValueError,
    "InvalidToken": MicropayValueError,
    "InvalidValue": MicropayValueError,
    "InvalidRecipient": MicropayValueError,
    "ChannelExists": MicropayValueError,
    "InvalidAmount": MicropayValueError,
    "InvalidExpiry": MicropayValueError,
    "InvalidWindow": MicropayValueError,
    "AmountTooLarge": MicropayValueError,
    "ERC20InsufficientBalance": InsufficientFunds,
    "ERC20InsufficientAllowance": InsufficientFunds,
}


def error_for_revert(revert: ContractRevert) -> MicropayError:
    """The micropay error an escrow (or ERC-20) custom error means; the revert itself is kept
    as its ``revert`` attribute. An unknown revert is returned as it is."""
    error_class = REVERT_ERRORS.get(revert.name)
    if error_class is None:
        return revert
    error = error_class(str(revert))
    error.revert = revert
    return error


class InvalidRelayRequest(InvalidVoucher):
    """A relay request (a payee's signed permission for anyone to submit its claim for a fee) is
    malformed, corrupt, expired, for another chain or escrow, or cannot be paid as asked (a fee
    above its limit or its payout, a voucher above its deposit)."""


REVERT_ERRORS.update({
    "RelayExpired": InvalidRelayRequest,
    "FeeTooHigh": InvalidRelayRequest,
    "NotFullyFunded": InvalidRelayRequest,
})


class PlanError(MicropayError):
    """Something about an agreed plan (tasks and prices both sides signed) is not as it must be."""


class InvalidPlan(PlanError, MicropayValueError):
    """A plan, an amendment or a piece of feedback is malformed, tampered with, or not signed by
    the party it must be signed by."""


class PlanMismatch(InvalidPlan):
    """A plan is for another chain, escrow, token, payer, payee or channel than the one at hand."""


class UnknownPlan(PlanError, LookupError):
    """No such plan (or no plan for this channel) in this store."""


class PlanNotInForce(PlanError):
    """The plan (or amendment) lacks one side's signature: it binds nobody yet."""


class TaskRefused(PlanError, MicropayValueError):
    """A payment under a plan was refused: an unknown task, a task already paid, or another price
    than the plan's (pay it as unplanned to do it anyway)."""


class AmendmentRefused(PlanError, MicropayValueError):
    """An amendment breaks the rules: it does not follow the version in force, or it re-prices,
    re-dates, changes or removes a task that was already paid."""


class InboxError(MicropayError):
    """Something went wrong between a client and a freelancer's inbox (``micropay serve``)."""


class InvalidAcknowledgment(InboxError, MicropayValueError):
    """An inbox's acknowledgment is malformed, for another payment, or not signed by the channel's payee."""


class Unauthorized(InboxError, PermissionError):
    """A signed request to an inbox is missing, malformed, outside its time window, replayed, or
    signed by someone who is neither the channel's payer nor its payee."""


class RequestRejected(InboxError):
    """An inbox refused a request for its form, not its content: too large, too deep, too slow, or
    too many (``status`` is the HTTP status; ``retry_after`` seconds for a rate limit)."""

    status: int
    retry_after: float | None


class DeliveryFailed(InboxError, ConnectionError):
    """A payment or document could not be delivered to an inbox (unreachable, timed out, or an
    answer that is not an inbox's); a payment stays queued in the payer's store."""
