"""micropay: pay a freelancer per task with off-chain vouchers, settle on-chain once."""

from micropay.errors import (
    DomainMismatch,
    InvalidSignature,
    InvalidVoucher,
    LedgerMismatch,
    MicropayError,
    MicropayValueError,
)
from micropay.escrow import ETH, ChannelKey, ChannelState, ChannelStatus, Escrow, load_artifact, matches_artifact
from micropay.ledger import Ledger, TaskReceipt, verify_ledger
from micropay.payee import Payee, Received, Settlement, Unclaimed
from micropay.payer import Payer
from micropay.payment import Payment
from micropay.store import VoucherStore
from micropay.voucher import Voucher, sign_voucher

__all__ = [
    "ETH",
    "ChannelKey",
    "ChannelState",
    "ChannelStatus",
    "Escrow",
    "Payee",
    "Payer",
    "Payment",
    "Received",
    "Settlement",
    "Unclaimed",
    "VoucherStore",
    "DomainMismatch",
    "InvalidSignature",
    "InvalidVoucher",
    "Ledger",
    "LedgerMismatch",
    "MicropayError",
    "MicropayValueError",
    "TaskReceipt",
    "Voucher",
    "load_artifact",
    "matches_artifact",
    "sign_voucher",
    "verify_ledger",
]
__version__ = "0.1.0"
