"""The plan: the tasks and prices a freelancer and a client agree on, signed by both.

A :class:`Plan` names its parties, chain, escrow and token, and lists :class:`PlanTask` s, each
with an id, a title, a price in base units, an optional due date and optional acceptance
criteria. It is EIP-712 typed data under the escrow's own domain (``MicropayEscrow``, version
"2", chain id, escrow address), so a wallet can show and sign it::

    Plan(string title,address payer,address payee,address token,Task[] tasks,uint32 version,
         bytes32 amends,address proposer,uint64 proposedAt,string inbox)
    Task(string id,string title,uint256 price,uint64 due,string criteria)

:attr:`Plan.hash` is the EIP-712 digest both sides sign: it binds the chain and the escrow, and
the first version's hash is what ``open`` puts in the channel's ``terms``. An amendment is a new
version whose ``amends`` is the hash of the version before it. A plan is *in force* once both
sides have signed it (:class:`SignedPlan`); ``inbox`` is where the freelancer takes payments over
HTTP (empty for none).

Text forms: a :class:`SignedPlan` travels as ``mpl1…`` (canonical JSON in the checksummed
envelope payments use) or as its JSON document (:meth:`SignedPlan.to_json`); both are bounded
before they are parsed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from eth_account.signers.local import LocalAccount

from micropay._utils.crypto import keccak, unsafe_sign_digest
from micropay.documents import (
    MAX_DOCUMENT_BYTES,
    SignatureCheck,
    canonical,
    checked_int,
    decimal,
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
from micropay.ledger import MAX_TASK_ID_BYTES
from micropay.types import MAX_AMOUNT
from micropay.voucher import MAX_CHAIN_ID

Role = Literal["payer", "payee"]

ZERO_HASH = bytes(32)
TEXT_PREFIX = "mpl1"
MAX_TASKS = 256
MAX_TITLE_BYTES = 512
MAX_CRITERIA_BYTES = 2048
MAX_INBOX_BYTES = 512
MAX_DUE = 2**64 - 1
#: The longest canonical JSON of a plan: its document, with two of the longest signatures and
#: indented as :meth:`SignedPlan.to_json` writes it, still fits in what :func:`read_document`
#: reads. (Every field within its limit is not enough: JSON escapes a control character in six.)
MAX_PLAN_JSON = MAX_DOCUMENT_BYTES - 64 * 1024

TASK_TYPE = "Task(string id,string title,uint256 price,uint64 due,string criteria)"
PLAN_TYPE = ("Plan(string title,address payer,address payee,address token,Task[] tasks,uint32 version,"
             "bytes32 amends,address proposer,uint64 proposedAt,string inbox)")
TASK_TYPEHASH = keccak(TASK_TYPE.encode())
PLAN_TYPEHASH = keccak((PLAN_TYPE + TASK_TYPE).encode())
TASK_FIELDS = [{"name": "id", "type": "string"}, {"name": "title", "type": "string"},
               {"name": "price", "type": "uint256"}, {"name": "due", "type": "uint64"},
               {"name": "criteria", "type": "string"}]
PLAN_FIELDS = [{"name": "title", "type": "string"}, {"name": "payer", "type": "address"},
               {"name": "payee", "type": "address"}, {"name": "token", "type": "address"},
               {"name": "tasks", "type": "Task[]"}, {"name": "version", "type": "uint32"},
               {"name": "amends", "type": "bytes32"}, {"name": "proposer", "type": "address"},
               {"name": "proposedAt", "type": "uint64"}, {"name": "inbox", "type": "string"}]


@dataclass(frozen=True)
class PlanTask:
    """One task of a plan: its ``price`` in base units; ``due`` a unix time (0: none)."""

    id: str
    title: str
    price: int
    due: int = 0
    criteria: str = ""

    def __post_init__(self) -> None:
        utf8(self.id, "a task id", MAX_TASK_ID_BYTES, required=True)
        utf8(self.title, f"task {self.id!r}'s title", MAX_TITLE_BYTES, required=True)
        checked_int(self.price, f"task {self.id!r}'s price", 1, MAX_AMOUNT)
        checked_int(self.due, f"task {self.id!r}'s due date", 0, MAX_DUE)
        utf8(self.criteria, f"task {self.id!r}'s criteria", MAX_CRITERIA_BYTES)

    def hash(self) -> bytes:
        """EIP-712 hashStruct of the task."""
        return keccak(TASK_TYPEHASH + keccak(self.id.encode()) + keccak(self.title.encode())
                      + self.price.to_bytes(32, "big") + self.due.to_bytes(32, "big")
                      + keccak(self.criteria.encode()))

    def to_dict(self) -> dict[str, object]:
        """The task as JSON (the price as a decimal string)."""
        return {"id": self.id, "title": self.title, "price": str(self.price), "due": self.due,
                "criteria": self.criteria}

    @classmethod
    def from_dict(cls, data: object) -> PlanTask:
        """The task in :meth:`to_dict` JSON. Raises :class:`InvalidPlan` for anything malformed."""
        d = fields(data, {"id", "title", "price", "due", "criteria"}, "a task")
        return cls(d["id"], d["title"], decimal(d["price"], "a task's price"),  # type: ignore[arg-type]
                   checked_int(d["due"], "a task's due date", 0, MAX_DUE), d["criteria"])  # type: ignore[arg-type]


@dataclass(frozen=True)
class Plan:
    """One version of a plan. Raises :class:`InvalidPlan` if a field is malformed, task ids repeat,
    the proposer is neither party, or the total exceeds what an escrow channel can hold."""

    title: str
    payer: str
    payee: str
    chain_id: int
    escrow: str
    token: str
    tasks: tuple[PlanTask, ...]
    proposer: str
    proposed_at: int
    version: int = 1
    amends: bytes = ZERO_HASH
    inbox: str = ""

    def __post_init__(self) -> None:
        utf8(self.title, "the plan's title", MAX_TITLE_BYTES, required=True)
        for name in ("payer", "payee", "escrow", "token", "proposer"):
            object.__setattr__(self, name, plan_address(getattr(self, name), f"the plan's {name}"))
        if self.payer == self.payee:
            raise InvalidPlan("a plan's payer and payee must be two accounts")
        if self.proposer not in (self.payer, self.payee):
            raise InvalidPlan("a plan is proposed by its payer or its payee")
        checked_int(self.chain_id, "the plan's chain id", 1, MAX_CHAIN_ID)
        checked_int(self.proposed_at, "the plan's proposal time", 0, MAX_DUE)
        checked_int(self.version, "the plan's version", 1, 2**32 - 1)
        if not isinstance(self.tasks, tuple) or not all(isinstance(t, PlanTask) for t in self.tasks):
            raise InvalidPlan("a plan's tasks must be a tuple of PlanTask")
        if not 0 < len(self.tasks) <= MAX_TASKS:
            raise InvalidPlan(f"a plan has 1 to {MAX_TASKS} tasks, got {len(self.tasks)}")
        ids = [t.id for t in self.tasks]
        if len(set(ids)) != len(ids):
            raise InvalidPlan(f"task ids repeat: {sorted({i for i in ids if ids.count(i) > 1})}")
        if self.total > MAX_AMOUNT:
            raise InvalidPlan(f"the plan's total {self.total} is above what a channel can hold ({MAX_AMOUNT})")
        if not isinstance(self.amends, bytes) or len(self.amends) != 32:
            raise InvalidPlan("amends must be a 32-byte hash")
        if (self.version == 1) != (self.amends == ZERO_HASH):
            raise InvalidPlan("version 1 amends nothing; every later version amends the one before it")
        utf8(self.inbox, "the plan's inbox URL", MAX_INBOX_BYTES)
        size = len(canonical(self.to_dict()))
        if size > MAX_PLAN_JSON:
            raise InvalidPlan(f"the plan's JSON is {size:,} bytes, above the limit of {MAX_PLAN_JSON:,}: it could not "
                              "travel; shorten its titles and criteria")

    @property
    def total(self) -> int:
        """The sum of the tasks' prices."""
        return sum(t.price for t in self.tasks)

    def task(self, task_id: str) -> PlanTask | None:
        """The task with this id, or None."""
        return next((t for t in self.tasks if t.id == task_id), None)

    def role_of(self, address: str) -> Role | None:
        """Which side ``address`` is on: "payer", "payee" or None."""
        return "payer" if address == self.payer else "payee" if address == self.payee else None

    def party(self, role: Role) -> str:
        """The address of the ``role`` side."""
        return self.payer if role == "payer" else self.payee

    def struct_hash(self) -> bytes:
        """EIP-712 hashStruct of the plan."""
        def address(value: str) -> bytes:
            return bytes.fromhex(value[2:]).rjust(32, b"\x00")

        tasks = keccak(b"".join(t.hash() for t in self.tasks))
        return keccak(PLAN_TYPEHASH + keccak(self.title.encode()) + address(self.payer) + address(self.payee)
                      + address(self.token) + tasks + self.version.to_bytes(32, "big") + self.amends
                      + address(self.proposer) + self.proposed_at.to_bytes(32, "big") + keccak(self.inbox.encode()))

    @cached_property
    def hash(self) -> bytes:
        """The EIP-712 digest both sides sign: what a channel's ``terms`` holds for version 1."""
        return escrow_digest(self.chain_id, self.escrow, self.struct_hash())

    def typed_data(self) -> dict[str, object]:
        """The plan as EIP-712 typed data, as ``eth_signTypedData_v4`` and eth-account take it."""
        message = {"title": self.title, "payer": self.payer, "payee": self.payee, "token": self.token,
                   "tasks": [{"id": t.id, "title": t.title, "price": t.price, "due": t.due, "criteria": t.criteria}
                             for t in self.tasks],
                   "version": self.version, "amends": self.amends, "proposer": self.proposer,
                   "proposedAt": self.proposed_at, "inbox": self.inbox}
        types = {"Plan": PLAN_FIELDS, "Task": TASK_FIELDS}
        return escrow_typed_data(self.chain_id, self.escrow, "Plan", types, message)

    def to_dict(self) -> dict[str, object]:
        """The plan as JSON: amounts as decimal strings, hashes as 0x-hex."""
        return {"title": self.title, "payer": self.payer, "payee": self.payee, "chainId": self.chain_id,
                "escrow": self.escrow, "token": self.token, "tasks": [t.to_dict() for t in self.tasks],
                "version": self.version, "amends": "0x" + self.amends.hex(), "proposer": self.proposer,
                "proposedAt": self.proposed_at, "inbox": self.inbox}

    @classmethod
    def from_dict(cls, data: object) -> Plan:
        """The plan in :meth:`to_dict` JSON. Raises :class:`InvalidPlan` for anything malformed."""
        d = fields(data, {"title", "payer", "payee", "chainId", "escrow", "token", "tasks", "version", "amends",
                          "proposer", "proposedAt", "inbox"}, "a plan")
        tasks = d["tasks"]
        if not isinstance(tasks, list) or len(tasks) > MAX_TASKS:
            raise InvalidPlan(f"a plan's tasks must be a list of at most {MAX_TASKS}")
        return cls(d["title"], d["payer"], d["payee"], d["chainId"], d["escrow"], d["token"],  # type: ignore[arg-type]
                   tuple(PlanTask.from_dict(t) for t in tasks), d["proposer"], d["proposedAt"],  # type: ignore[arg-type]
                   d["version"], hex_bytes(d["amends"], 32, "amends"), d["inbox"])  # type: ignore[arg-type]


@dataclass(frozen=True)
class SignedPlan:
    """A plan with the signatures it has so far: in force once both sides signed.

    Signatures are 65-byte ECDSA signatures of :attr:`Plan.hash` (or, for a contract wallet
    payer, its EIP-1271 signature); empty for a side that has not signed."""

    plan: Plan
    payer_signature: bytes = b""
    payee_signature: bytes = b""

    def __post_init__(self) -> None:
        if not isinstance(self.plan, Plan):
            raise InvalidPlan("a signed plan's plan must be a Plan")
        for role in ("payer", "payee"):
            signature = getattr(self, f"{role}_signature")
            if not isinstance(signature, bytes) or len(signature) > 4096:
                raise InvalidPlan(f"the {role}'s signature must be at most 4096 bytes")

    @property
    def hash(self) -> bytes:
        """The plan's hash (its EIP-712 digest)."""
        return self.plan.hash

    @property
    def in_force(self) -> bool:
        """Whether both sides have signed (checked by :meth:`verify`)."""
        return bool(self.payer_signature and self.payee_signature)

    def signature(self, role: Role) -> bytes:
        """The ``role`` side's signature (empty if it has not signed)."""
        return self.payer_signature if role == "payer" else self.payee_signature

    def signed_by(self, account: LocalAccount) -> SignedPlan:
        """This plan with ``account``'s signature added. Raises :class:`InvalidPlan` if ``account``
        is neither party."""
        role = self.plan.role_of(account.address)
        if role is None:
            raise InvalidPlan(f"{account.address} is neither the plan's payer nor its payee: it cannot sign it")
        signature = unsafe_sign_digest(account, self.plan.hash)  # a digest built here, from the plan
        if role == "payer":
            return SignedPlan(self.plan, signature, self.payee_signature)
        return SignedPlan(self.plan, self.payer_signature, signature)

    def merged(self, other: SignedPlan) -> SignedPlan:
        """This plan with the signatures ``other`` (the same plan) adds. Raises
        :class:`InvalidPlan` if ``other`` is another plan."""
        if other.plan != self.plan:
            raise InvalidPlan("these are two different plans")
        return SignedPlan(self.plan, self.payer_signature or other.payer_signature,
                          self.payee_signature or other.payee_signature)

    def verify(self, is_signed_by: SignatureCheck | None = None) -> None:
        """Check every signature present: each recovers to its side's address, or (for a payer
        that is a contract wallet) ``is_signed_by`` accepts it. Raises :class:`InvalidPlan` naming
        the first that does not, or if no side has signed."""
        if not (self.payer_signature or self.payee_signature):
            raise InvalidPlan("the plan carries no signature")
        digest = self.plan.hash
        roles: tuple[Role, ...] = ("payer", "payee")
        for role in roles:
            signature = self.signature(role)
            if signature and not is_valid_signature(self.plan.party(role), digest, signature, is_signed_by):
                raise InvalidPlan(f"the plan's {role} signature is not by its {role} "
                                  f"{self.plan.party(role)}: {_TAMPERED}")

    def to_dict(self) -> dict[str, object]:
        """The JSON document: the plan and its signatures (0x-hex, empty string for none)."""
        return {"micropay": "plan", "plan": self.plan.to_dict(),
                "signatures": {"payer": signature_hex(self.payer_signature),
                               "payee": signature_hex(self.payee_signature)}}

    def to_json(self) -> str:
        """:meth:`to_dict` as indented JSON, for a file."""
        return pretty(self.to_dict())

    def encode(self) -> str:
        """``mpl1…``: the canonical JSON (sorted keys, no spaces, UTF-8) in the checksummed envelope."""
        return wrap(self.to_dict())

    @classmethod
    def from_dict(cls, data: object) -> SignedPlan:
        """The plan in :meth:`to_dict` JSON. Raises :class:`InvalidPlan` for anything malformed
        (signatures are not checked: :meth:`verify` does that)."""
        d = fields(data, {"micropay", "plan", "signatures"}, "a signed plan")
        if d["micropay"] != "plan":
            raise InvalidPlan(f"this micropay document is a {d['micropay']!r:.40}, not a plan")
        signatures = fields(d["signatures"], {"payer", "payee"}, "a plan's signatures")
        return cls(Plan.from_dict(d["plan"]), signature_bytes(signatures["payer"]),
                   signature_bytes(signatures["payee"]))


_TAMPERED = "the plan was changed after it was signed, or someone else signed it"


def parse_plan(value: object) -> SignedPlan:
    """A :class:`SignedPlan` from itself, its ``mpl1…`` text or its JSON document. Raises
    :class:`InvalidPlan` for anything else (signatures are not checked)."""
    return parse_document(value, SignedPlan, SignedPlan.from_dict, "a plan")
