"""What a plan lets a payer pay for a task: its price, and the deliverable its receipt names
(:meth:`micropay.payer.Payer.pay_task`; whether it is paid already is
:func:`micropay.planbook.paid_tasks`, checked under the project's lock)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from micropay.errors import TaskRefused
from micropay.ledger import EMPTY_ROOT
from micropay.plan import Plan

if TYPE_CHECKING:
    from micropay.store import VoucherStore


def latest_delivery(store: VoucherStore, root: bytes, task_id: str) -> bytes:
    """The deliverable hash of the latest "delivered" feedback on a task (zero if none)."""
    delivered = [s.signed.feedback for s in store.feedback(root)
                 if s.signed.feedback.task_id == task_id and s.signed.feedback.status == "delivered"]
    return delivered[-1].deliverable if delivered else EMPTY_ROOT


def task_price(plan: Plan, task_id: str, *, unplanned: bool, amount: int | None) -> int:
    """What paying ``task_id`` under ``plan`` costs: its price, or ``amount`` for a payment marked
    ``unplanned``. Raises :class:`TaskRefused` for an unknown task or another price unless
    ``unplanned``, and for an unplanned task without an amount."""
    task = plan.task(task_id)
    if task is None:
        if not unplanned:
            known = ", ".join(t.id for t in plan.tasks)
            raise TaskRefused(f"the plan has no task {task_id!r} (its tasks: {known}); pay it as unplanned, with "
                              "an amount, to pay it anyway")
        if amount is None:
            raise TaskRefused(f"task {task_id!r} is not in the plan: an unplanned payment needs an amount")
        return amount
    price = task.price if amount is None else amount
    if price != task.price and not unplanned:
        raise TaskRefused(f"task {task_id!r} is priced {task.price} in the plan, not {price}: pay it as unplanned "
                          "to pay another price")
    return price
