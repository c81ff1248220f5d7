"""The ``micropay-channel`` x402 scheme: its name, what its payment requirements carry, its payload.

A call is paid with a micropay payment (``mpp1…``: a cumulative EIP-712 voucher on a channel of
the escrow named in the requirements, with the receipts the payee does not hold yet), in the
payload ``{"payment": "mpp1…"}``. The requirements' ``extra`` names the escrow and the payee's
minimum expiry margin and challenge window (:class:`ChannelTerms`); a paid answer's
``PAYMENT-RESPONSE`` and a corrective 402 carry what the payee holds and has charged on the
channel (:class:`ChargeState`), so a client that lost an answer or restarted pays on from there.

The rule a payee applies: a call priced ``p`` on a channel that has been charged ``c`` is paid by a
voucher that covers ``c + p`` (a new one, or the one it holds: a call that failed after the client
signed for it is not charged, and the next call re-sends that voucher). The client signs at most
the price more per call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from micropay._utils.crypto import keccak
from micropay.channel import ETH
from micropay.errors import InvalidVoucher, MicropayValueError
from micropay.ledger import MAX_TASK_ID_BYTES
from micropay.payment import Payment, parse_payment

SCHEME = "micropay-channel"
#: The asset of an ETH channel, in payment requirements (the escrow's own name for ETH).
ETH_ASSET = ETH
#: The longest payment text a payload may carry (a voucher and up to about a hundred receipts).
MAX_PAYMENT_CHARS = 96 * 1024
#: Prefix of every reason this scheme refuses with, in a 402's ``error``.
REASON_PREFIX = "micropay_"
#: The ``terms`` of a channel opened for paid calls: only such channels pay calls, and calls are
#: all they pay (a client's task payments never turn into credit for calls, nor the reverse).
X402_TERMS = keccak(b"micropay-channel: a channel that pays API calls")


def network_of(chain_id: int) -> str:
    """The CAIP-2 id of an EVM chain: ``eip155:<chain id>``."""
    return f"eip155:{chain_id}"


def chain_of(network: str) -> int:
    """The chain id of a CAIP-2 ``eip155:<id>`` network. Raises :class:`MicropayValueError` for another."""
    prefix, _, number = network.partition(":")
    if prefix != "eip155" or not number.isascii() or not number.isdigit() or len(number) > 20:
        raise MicropayValueError(f"not an EVM network id (eip155:<chain id>): {network[:40]!r}")
    return int(number)


def task_of(method: str, path: str) -> str:
    """The task id of a call: its method and path (cut to what a receipt holds)."""
    text = f"{method.upper()} {path}"
    data = text.encode()[:MAX_TASK_ID_BYTES]
    return data.decode("utf-8", errors="ignore")


def request_hash(method: str, target: str, body: bytes) -> bytes:
    """What a call's receipt names as its deliverable: keccak256 of its method, path and query, and body."""
    return keccak(method.upper().encode() + b" " + target.encode() + b"\n" + keccak(body))


def _int(extra: Mapping[str, object], name: str) -> int:
    value = extra.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise MicropayValueError(f"payment requirements' extra.{name} is not a number")
    try:
        number = int(value)
    except ValueError:
        raise MicropayValueError(f"payment requirements' extra.{name} is not a number") from None
    if not 0 <= number < 2**256:
        raise MicropayValueError(f"payment requirements' extra.{name} is out of range")
    return number


@dataclass(frozen=True)
class ChannelTerms:
    """What a payee asks of the channel that pays it: on ``escrow``, expiring no sooner than
    ``min_expiry_margin`` seconds from now, with a challenge window of at least ``min_window``."""

    escrow: str
    min_expiry_margin: int
    min_window: int

    def to_extra(self) -> dict[str, object]:
        return {"escrow": self.escrow, "minExpiryMargin": self.min_expiry_margin, "minWindow": self.min_window}

    @classmethod
    def from_extra(cls, extra: Mapping[str, object]) -> ChannelTerms:
        """Raises :class:`MicropayValueError` for requirements that do not name them."""
        escrow = extra.get("escrow")
        if not isinstance(escrow, str) or len(escrow) != 42 or not escrow.startswith("0x"):
            raise MicropayValueError("payment requirements' extra.escrow is not an address")
        return cls(escrow, _int(extra, "minExpiryMargin"), _int(extra, "minWindow"))


@dataclass(frozen=True)
class ChargeState:
    """A channel as the payee has it: ``charged`` in all (base units), the cumulative amount of
    the voucher it ``held``, and how many ``receipts`` that voucher's ledger has."""

    channel_id: bytes
    charged: int
    held: int
    receipts: int

    def to_extra(self) -> dict[str, object]:
        return {"channel": "0x" + self.channel_id.hex(), "charged": str(self.charged), "held": str(self.held),
                "receipts": self.receipts}

    @classmethod
    def from_extra(cls, extra: Mapping[str, object]) -> ChargeState | None:
        """The state in ``extra``, or None if it carries none (or garbage)."""
        channel = extra.get("channel")
        if not isinstance(channel, str) or len(channel) != 66 or not channel.startswith("0x"):
            return None
        try:
            state = cls(bytes.fromhex(channel[2:]), _int(extra, "charged"), _int(extra, "held"),
                        _int(extra, "receipts"))
        except (ValueError, MicropayValueError):
            return None
        return state if state.charged <= state.held or state.held == 0 else None


def payload_of(payment: Payment) -> dict[str, object]:
    """The scheme's payload for ``payment``."""
    return {"payment": payment.encode()}


def payment_of(payload: Mapping[str, object]) -> Payment:
    """The payment in a payload. Raises :class:`InvalidVoucher` for anything else (bounded first)."""
    text = payload.get("payment")
    if not isinstance(text, str):
        raise InvalidVoucher('a micropay-channel payload is {"payment": "mpp1…"}')
    return parse_payment(text, max_chars=MAX_PAYMENT_CHARS)
