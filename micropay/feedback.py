"""Feedback at each stage of a plan: the freelancer says a task is delivered, the client asks for
changes or approves it. Each is signed by the side that gives it and kept by both.

EIP-712 typed data under the escrow's domain, like the plan itself::

    Feedback(bytes32 plan,string taskId,string status,bytes32 deliverable,string note,uint64 at)

``plan`` is the plan's first version's hash (the channel's ``terms``): feedback belongs to the
project, whichever version is in force. ``status`` is one of :data:`STATUSES`; "delivered" is
signed by the payee (``deliverable`` optionally the hash of what was delivered), the others by
the payer. Text form ``mpf1…``; JSON ``{"micropay": "feedback", …}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from eth_account.signers.local import LocalAccount

from micropay._utils.crypto import keccak, unsafe_sign_digest
from micropay.documents import (
    SignatureCheck,
    checked_int,
    escrow_digest,
    escrow_typed_data,
    fields,
    hex_bytes,
    is_valid_signature,
    parse_document,
    plan_address,
    pretty,
    signature_bytes,
    signature_hex,
    utf8,
    wrap,
)
from micropay.errors import InvalidPlan
from micropay.ledger import MAX_NOTE_BYTES, MAX_TASK_ID_BYTES
from micropay.plan import MAX_DUE, Plan, Role
from micropay.voucher import MAX_CHAIN_ID

Status = Literal["delivered", "changes requested", "approved"]
STATUSES: tuple[Status, ...] = ("delivered", "changes requested", "approved")
#: Who gives each kind of feedback.
GIVEN_BY: dict[Status, Role] = {"delivered": "payee", "changes requested": "payer", "approved": "payer"}
TEXT_PREFIX = "mpf1"
#: The longest ``mpf1`` text read: the longest feedback (a note of control characters JSON
#: escapes in six, a contract wallet's signature of :data:`MAX_SIGNATURE_BYTES`) fits.
MAX_TEXT = 64 * 1024
MAX_SIGNATURE_BYTES = 4096

FEEDBACK_TYPE = "Feedback(bytes32 plan,string taskId,string status,bytes32 deliverable,string note,uint64 at)"
FEEDBACK_TYPEHASH = keccak(FEEDBACK_TYPE.encode())
FEEDBACK_FIELDS = [{"name": "plan", "type": "bytes32"}, {"name": "taskId", "type": "string"},
                   {"name": "status", "type": "string"}, {"name": "deliverable", "type": "bytes32"},
                   {"name": "note", "type": "string"}, {"name": "at", "type": "uint64"}]


@dataclass(frozen=True)
class Feedback:
    """One stage of one task. Raises :class:`InvalidPlan` if a field is malformed."""

    chain_id: int
    escrow: str
    plan: bytes
    task_id: str
    status: Status
    at: int
    deliverable: bytes = bytes(32)
    note: str = ""

    def __post_init__(self) -> None:
        checked_int(self.chain_id, "the feedback's chain id", 1, MAX_CHAIN_ID)
        object.__setattr__(self, "escrow", plan_address(self.escrow, "the feedback's escrow"))
        for name in ("plan", "deliverable"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != 32:
                raise InvalidPlan(f"the feedback's {name} must be a 32-byte hash")
        utf8(self.task_id, "the feedback's task id", MAX_TASK_ID_BYTES, required=True)
        if self.status not in STATUSES:
            raise InvalidPlan(f"feedback status must be one of {', '.join(STATUSES)}, got {self.status!r:.40}")
        checked_int(self.at, "the feedback's time", 0, MAX_DUE)
        utf8(self.note, "the feedback's note", MAX_NOTE_BYTES)

    @property
    def given_by(self) -> Role:
        """The side that signs this kind of feedback."""
        return GIVEN_BY[self.status]

    @property
    def hash(self) -> bytes:
        """The EIP-712 digest its author signs."""
        struct = keccak(FEEDBACK_TYPEHASH + self.plan + keccak(self.task_id.encode()) + keccak(self.status.encode())
                        + self.deliverable + keccak(self.note.encode()) + self.at.to_bytes(32, "big"))
        return escrow_digest(self.chain_id, self.escrow, struct)

    def typed_data(self) -> dict[str, object]:
        """The feedback as EIP-712 typed data, as wallets and eth-account take it."""
        return escrow_typed_data(self.chain_id, self.escrow, "Feedback", {"Feedback": FEEDBACK_FIELDS}, {
            "plan": self.plan, "taskId": self.task_id, "status": self.status, "deliverable": self.deliverable,
            "note": self.note, "at": self.at})

    def to_dict(self) -> dict[str, object]:
        """The feedback as JSON."""
        return {"chainId": self.chain_id, "escrow": self.escrow, "plan": "0x" + self.plan.hex(),
                "taskId": self.task_id, "status": self.status, "deliverable": "0x" + self.deliverable.hex(),
                "note": self.note, "at": self.at}

    @classmethod
    def from_dict(cls, data: object) -> Feedback:
        """The feedback in :meth:`to_dict` JSON. Raises :class:`InvalidPlan` for anything malformed."""
        d = fields(data, {"chainId", "escrow", "plan", "taskId", "status", "deliverable", "note", "at"}, "feedback")
        return cls(d["chainId"], d["escrow"], hex_bytes(d["plan"], 32, "the feedback's plan"),  # type: ignore[arg-type]
                   d["taskId"], d["status"], d["at"],  # type: ignore[arg-type]
                   hex_bytes(d["deliverable"], 32, "the feedback's deliverable"), d["note"])  # type: ignore[arg-type]


@dataclass(frozen=True)
class SignedFeedback:
    """Feedback with its author's signature."""

    feedback: Feedback
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.feedback, Feedback):
            raise InvalidPlan("signed feedback's feedback must be a Feedback")
        if not isinstance(self.signature, bytes) or not 0 < len(self.signature) <= MAX_SIGNATURE_BYTES:
            raise InvalidPlan(f"a feedback signature is 1 to {MAX_SIGNATURE_BYTES} bytes")

    @classmethod
    def sign(cls, feedback: Feedback, account: LocalAccount) -> SignedFeedback:
        """``feedback`` signed by ``account`` (the caller checks it is the right side)."""
        return cls(feedback, unsafe_sign_digest(account, feedback.hash))  # a digest built here

    @property
    def hash(self) -> bytes:
        """The feedback's digest: what identifies it in a store."""
        return self.feedback.hash

    def verify(self, plan: Plan, is_signed_by: SignatureCheck | None = None) -> None:
        """Check that the side that gives this kind of feedback on ``plan`` signed it. Raises
        :class:`InvalidPlan` if not, or if it is about another plan, chain or escrow."""
        f = self.feedback
        if (f.chain_id, f.escrow) != (plan.chain_id, plan.escrow):
            raise InvalidPlan("the feedback is for another chain or escrow than its plan")
        author = plan.party(f.given_by)
        if not is_valid_signature(author, f.hash, self.signature, is_signed_by):
            raise InvalidPlan(f"{f.status!r} feedback must be signed by the plan's {f.given_by} {author}: it was "
                              "changed after it was signed, or someone else signed it")

    def to_dict(self) -> dict[str, object]:
        """The JSON document."""
        return {"micropay": "feedback", "feedback": self.feedback.to_dict(), "signature": signature_hex(self.signature)}

    def to_json(self) -> str:
        """:meth:`to_dict` as indented JSON, for a file."""
        return pretty(self.to_dict())

    def encode(self) -> str:
        """``mpf1…``: the canonical JSON in the checksummed envelope."""
        return wrap(self.to_dict())

    @classmethod
    def from_dict(cls, data: object) -> SignedFeedback:
        """The document in :meth:`to_dict` JSON. Raises :class:`InvalidPlan` for anything malformed."""
        d = fields(data, {"micropay", "feedback", "signature"}, "signed feedback")
        if d["micropay"] != "feedback":
            raise InvalidPlan(f"this micropay document is a {d['micropay']!r:.40}, not feedback")
        signature = signature_bytes(d["signature"])
        if not signature:
            raise InvalidPlan("the feedback carries no signature")
        return cls(Feedback.from_dict(d["feedback"]), signature)


def parse_feedback(value: object) -> SignedFeedback:
    """:class:`SignedFeedback` from itself, its ``mpf1…`` text or its JSON document. Raises
    :class:`InvalidPlan` for anything else (the signature is checked by :meth:`SignedFeedback.verify`)."""
    return parse_document(value, SignedFeedback, SignedFeedback.from_dict, "feedback", max_chars=MAX_TEXT)
