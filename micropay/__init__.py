"""micropay: pay a freelancer per task with off-chain vouchers, settle on-chain once.

The flow, and the module of each step: both sides sign a :class:`Plan` (:mod:`micropay.plan`,
kept by :mod:`micropay.planbook`); a client's :class:`Payer` (:mod:`micropay.payer`) signs a
:class:`Voucher` (:mod:`micropay.voucher`) over the task :class:`Ledger` (:mod:`micropay.ledger`)
and sends it as a :class:`Payment` (:mod:`micropay.payment`); the freelancer's :class:`Payee`
(:mod:`micropay.payee`) receives it into a :class:`VoucherStore` (:mod:`micropay.store`) and
settles through the :class:`Escrow` proxy (:mod:`micropay.escrow`), the one door to the chain.
"""

from importlib.metadata import PackageNotFoundError, version

from micropay.acknowledgment import Acknowledgment, sign_acknowledgment
from micropay.artifact import load_artifact, matches_artifact
from micropay.channel import ETH, ChannelKey, ChannelState, ChannelStatus
from micropay.errors import (
    AmendmentRefused,
    ArtifactError,
    ChannelError,
    ChannelExpired,
    ChannelFinal,
    ChannelNotExpired,
    ContractRevert,
    DeliveryFailed,
    DomainMismatch,
    InboxError,
    InsufficientDeposit,
    InsufficientFunds,
    InvalidAcknowledgment,
    InvalidPlan,
    InvalidRelayRequest,
    InvalidSignature,
    InvalidVoucher,
    KeystoreError,
    LedgerGap,
    LedgerMismatch,
    MicropayError,
    MicropayValueError,
    NodeError,
    NothingToClaim,
    NotParticipant,
    PlanError,
    PlanMismatch,
    PlanNotInForce,
    RequestRejected,
    StaleVoucher,
    StoreError,
    TaskRefused,
    TransactionError,
    TransactionPending,
    Unauthorized,
    UnknownChannel,
    UnknownEscrow,
    UnknownPlan,
    WindowTooShort,
)
from micropay.escrow import Escrow
from micropay.feedback import Feedback, SignedFeedback, parse_feedback
from micropay.group_commit import GroupCommit
from micropay.inbox_client import InboxClient
from micropay.ledger import InvalidReceipt, Ledger, LedgerEntry, TaskReceipt, verify_ledger
from micropay.notifications import Event, Notifier
from micropay.outbox import DeliveryResult, Outbox
from micropay.overview import ChannelView, overview
from micropay.payee import Payee
from micropay.payer import Payer
from micropay.payment import Payment, parse_payment
from micropay.plan import Plan, PlanTask, SignedPlan, parse_plan
from micropay.plan_source import read_source
from micropay.planbook import PlanBook, PlanHistory, TermsCheck
from micropay.progress import Progress, TaskProgress
from micropay.receiving import Received
from micropay.records import ChannelRecord, SettlementRecord
from micropay.relay import RelayedVoucher, Relayer, RelayQuote, RelayRequest, sign_relay_request
from micropay.settling import Settlement, SettlementPlan, Unclaimed
from micropay.statement import Statement, build_statement
from micropay.store import VoucherStore
from micropay.sync import SyncReport
from micropay.transactions import Receipt, TxOptions
from micropay.voucher import DigestSigner, Voucher, sign_voucher

try:
    __version__ = version("micropay")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "ETH",
    "Acknowledgment",
    "AmendmentRefused",
    "ArtifactError",
    "ChannelError",
    "ChannelExpired",
    "ChannelFinal",
    "ChannelKey",
    "ChannelNotExpired",
    "ChannelRecord",
    "ChannelState",
    "ChannelStatus",
    "ChannelView",
    "ContractRevert",
    "DeliveryFailed",
    "DeliveryResult",
    "DigestSigner",
    "DomainMismatch",
    "Escrow",
    "Event",
    "Feedback",
    "GroupCommit",
    "InboxClient",
    "InboxError",
    "InsufficientDeposit",
    "InsufficientFunds",
    "InvalidAcknowledgment",
    "InvalidPlan",
    "InvalidReceipt",
    "InvalidRelayRequest",
    "InvalidSignature",
    "InvalidVoucher",
    "KeystoreError",
    "Ledger",
    "LedgerEntry",
    "LedgerGap",
    "LedgerMismatch",
    "MicropayError",
    "MicropayValueError",
    "NodeError",
    "NotParticipant",
    "NothingToClaim",
    "Notifier",
    "Outbox",
    "Payee",
    "Payer",
    "Payment",
    "Plan",
    "PlanBook",
    "PlanError",
    "PlanHistory",
    "PlanMismatch",
    "PlanNotInForce",
    "PlanTask",
    "Progress",
    "Receipt",
    "Received",
    "RelayQuote",
    "RelayRequest",
    "RelayedVoucher",
    "Relayer",
    "RequestRejected",
    "Settlement",
    "SettlementPlan",
    "SettlementRecord",
    "SignedFeedback",
    "SignedPlan",
    "StaleVoucher",
    "Statement",
    "StoreError",
    "SyncReport",
    "TaskProgress",
    "TaskReceipt",
    "TaskRefused",
    "TermsCheck",
    "TransactionError",
    "TransactionPending",
    "TxOptions",
    "Unauthorized",
    "Unclaimed",
    "UnknownChannel",
    "UnknownEscrow",
    "UnknownPlan",
    "Voucher",
    "VoucherStore",
    "WindowTooShort",
    "__version__",
    "build_statement",
    "load_artifact",
    "matches_artifact",
    "overview",
    "parse_feedback",
    "parse_payment",
    "parse_plan",
    "read_source",
    "sign_acknowledgment",
    "sign_relay_request",
    "sign_voucher",
    "verify_ledger",
]
