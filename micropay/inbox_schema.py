"""The inbox's wire schema, for its OpenAPI document: the request bodies and answers of each endpoint.

Documentation only: :mod:`micropay.inbox` parses bodies bounded, by hand, and writes its answers
directly; these models say what those are.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ErrorAnswer(BaseModel):
    """Every error: a code and one sentence, plus ``resendFrom`` (ledger_gap), ``acknowledgment``
    (stale_voucher), ``retryAfter`` seconds (rate_limited, with a Retry-After header)."""

    error: str = Field(examples=["ledger_gap"])
    message: str
    resendFrom: int | None = None
    acknowledgment: dict[str, object] | None = None
    retryAfter: float | None = None


class PaymentPost(BaseModel):
    payment: str = Field(description="the payment's text: mpp1…, mpp2… (or a bare mpv1… voucher)")


class TaskPaid(BaseModel):
    taskId: str
    amount: str = Field(description="base units, decimal")
    note: str


class PaymentHeld(BaseModel):
    """The payment is durably stored; ``acknowledgment`` is the payee's EIP-712 signature saying so."""

    held: Literal[True]
    duplicate: bool
    channelId: str
    cumulativeAmount: str
    added: str
    tasks: list[TaskPaid]
    acknowledgment: dict[str, object]


class DocumentPost(BaseModel):
    document: str | dict[str, object] = Field(description="mpl1…/mpf1… text, or the document's JSON")


class DocumentStored(BaseModel):
    stored: Literal[True]
    kind: Literal["plan", "feedback"]
    hash: str | None = Field(None, description="plan: the version's hash")
    inForce: bool | None = Field(None, description="plan: signed by both sides")
    taskId: str | None = Field(None, description="feedback: the task")
    status: str | None = Field(None, description="feedback: delivered, changes requested or approved")


class ProgressAnswer(BaseModel):
    progress: dict[str, object]
    documents: list[str] = Field(description="every plan version and feedback of the channel's plan, as text")


def errors(*statuses: int) -> dict[int | str, dict[str, object]]:
    return {status: {"model": ErrorAnswer} for status in statuses}


def body_schema(model: type[BaseModel]) -> dict[str, object]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}
