"""Progress: where the work under a plan stands, as either side's store sees it.

:func:`progress` joins a channel's plan (every version), the feedback on it, the channel's
ledger and its claimed total into a typed :class:`Progress`: each task's state and who it waits
for, what was paid against what was planned, what the deposit still covers, overdue tasks, and
the history of amendments. Nothing here signs or sends anything.

A task is *planned*, *delivered*, *changes requested* or *approved* (its latest feedback), then
*paid* (a receipt names it) and *settled* (the claimed total on chain covers its receipt). Any
difference from the plan is shown, never hidden: a task paid below or above its price, paid
twice, or a payment for a task the plan does not list.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal, cast

from micropay.errors import PlanNotInForce
from micropay.plan import Plan, Role
from micropay.planbook import PlanBook, PlanHistory
from micropay.records import ChannelRecord
from micropay.store import VoucherStore

TaskState = Literal["planned", "delivered", "changes requested", "approved", "paid", "settled"]
#: Who a task in each state waits for (None: nobody).
WAITING_FOR: dict[TaskState, Role | None] = {
    "planned": "payee", "delivered": "payer", "changes requested": "payee", "approved": "payer",
    "paid": None, "settled": None,
}
Deviation = Literal["", "unplanned", "below price", "above price", "paid twice"]


@dataclass(frozen=True)
class TaskProgress:
    """One task (or one unplanned payment). ``price`` is None for an unplanned one; ``version``
    the plan version that set its price; ``paid_at`` when its first receipt was stored."""

    task_id: str
    title: str
    price: int | None
    paid: int
    state: TaskState
    waiting_for: Role | None
    due: int
    overdue: bool
    deviation: Deviation
    version: int | None
    paid_at: float | None
    deliverable: str
    note: str


@dataclass(frozen=True)
class Change:
    """One difference an amendment made: ``kind`` is added, removed, re-priced, re-dated or changed."""

    kind: str
    task_id: str
    price_before: int | None
    price_after: int | None
    due_before: int | None
    due_after: int | None


@dataclass(frozen=True)
class Amendment:
    """One version of the plan: who proposed it and when, whether it is in force, what it changed."""

    version: int
    hash: str
    proposed_by: Role
    proposed_at: int
    in_force: bool
    total_before: int
    total_after: int
    changes: tuple[Change, ...]


@dataclass(frozen=True)
class Coverage:
    """What the deposit still covers: ``covers_next`` unpaid tasks in plan order; ``top_up`` is
    what it lacks to cover every unpaid task (0 if it covers them)."""

    deposit: int
    spent: int
    remaining: int
    unpaid: int
    covers_next: int
    top_up: int

    def describe(self, show: Callable[[int], str]) -> str:
        """"the deposit covers the next 2 tasks; top up 0.01 ETH to cover the plan"."""
        if not self.unpaid:
            return "every planned task is paid"
        tasks = "task" if self.covers_next == 1 else "tasks"
        covers = f"the deposit covers the next {self.covers_next} {tasks}" if self.covers_next else \
            "the deposit covers no further task"
        if self.top_up:
            return f"{covers}; top up {show(self.top_up)} to cover the plan"
        return f"{covers}: the whole plan"


@dataclass(frozen=True)
class Progress:
    """A channel's plan and where its work stands, from ``role``'s store."""

    channel: str
    chain_id: int
    escrow: str
    role: Role
    plan: str
    title: str
    version: int
    token: str
    tasks: tuple[TaskProgress, ...]
    planned_total: int
    paid_total: int
    paid_planned: int
    settled_total: int
    coverage: Coverage
    overdue: tuple[str, ...]
    waiting_for_payee: tuple[str, ...]
    waiting_for_payer: tuple[str, ...]
    amendments: tuple[Amendment, ...]

    @property
    def share(self) -> float:
        """Paid on planned tasks (each up to its price) as a share of the planned total, 0 to 1."""
        return self.paid_planned / self.planned_total if self.planned_total else 0.0

    def summary(self, show: Callable[[int], str]) -> str:
        """One sentence: tasks paid, paid against planned, what the deposit covers (``show``
        formats an amount of the plan's token)."""
        planned = [t for t in self.tasks if t.price is not None]
        paid = sum(1 for t in planned if t.paid)
        return (f"{paid} of {len(planned)} tasks paid: {show(self.paid_planned)} of {show(self.planned_total)} "
                f"planned ({self.share:.0%}); {self.coverage.describe(show)}")

    def to_dict(self) -> dict[str, object]:
        """JSON: every amount a decimal string (base units), times unix seconds."""
        def amounts(value: object) -> object:
            if isinstance(value, dict):
                return {k: amounts(v) if k not in _NOT_AMOUNTS else v for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [amounts(v) for v in value]
            return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

        data = cast("dict[str, object]", amounts(asdict(self)))  # a dict stays a dict
        data["share"] = round(self.share, 6)
        return data


_NOT_AMOUNTS = {"chain_id", "version", "due", "proposed_at", "covers_next", "paid_at"}


def progress(store: VoucherStore, record: ChannelRecord, address: str, *, now: float | None = None) -> Progress:
    """The progress of ``record``'s plan as ``address`` (its payer or payee) holds it. Raises
    :class:`UnknownPlan` (no plan for the channel), :class:`PlanMismatch` or :class:`PlanNotInForce`."""
    now = time.time() if now is None else now
    history = PlanBook(store, address).for_channel(record)
    current = history.in_force
    if current is None:
        other = "client" if record.role == "payee" else "freelancer"
        raise PlanNotInForce(f"the channel's plan is not signed by both sides in this store yet: ask the {other} for "
                             "the accepted plan and receive it (`micropay plan receive`)")
    plan = current.signed.plan
    ledger = store.ledger(record.ref)
    times = store.voucher_times(record.ref)
    feedback = [s.signed.feedback for s in store.feedback(history.root)]
    paid: dict[str, list[tuple[int, int, int]]] = {}  # task id -> (index, amount, running total)
    for index, entry in enumerate(ledger):
        paid.setdefault(entry.receipt.task_id, []).append((index, entry.receipt.amount, entry.total))

    def paid_at(task_id: str) -> float | None:
        if task_id not in paid:
            return None
        first = paid[task_id][0][0]
        return next((at for count, at in times if count > first), None)

    tasks = []
    ids = [t.id for t in plan.tasks] + [i for i in paid if plan.task(i) is None]
    for task_id in ids:
        task = plan.task(task_id)
        receipts = paid.get(task_id, [])
        amount = sum(a for _, a, _ in receipts)
        notes = [f for f in feedback if f.task_id == task_id]
        state: TaskState = (("settled" if all(t <= record.claimed for _, _, t in receipts) else "paid") if receipts
                            else notes[-1].status if notes else "planned")
        delivered = [f for f in notes if f.status == "delivered"]
        deviation: Deviation = ("unplanned" if task is None else "" if not receipts
                                else "paid twice" if len(receipts) > 1
                                else "below price" if amount < task.price else "above price" if amount > task.price
                                else "")
        due = task.due if task else 0
        tasks.append(TaskProgress(
            task_id, task.title if task else "(not in the plan)", task.price if task else None, amount, state,
            WAITING_FOR[state], due, bool(due) and due < now and state in ("planned", "changes requested"),
            deviation, _price_version(history, task_id) if task else None, paid_at(task_id),
            "0x" + delivered[-1].deliverable.hex() if delivered else "", notes[-1].note if notes else ""))
    spent = ledger[-1].total if ledger else 0
    unpaid = [t.price for t in tasks if t.price is not None and not t.paid]
    return Progress(
        "0x" + record.id.hex(), record.chain_id, record.escrow, record.role, "0x" + history.root.hex(), plan.title,
        plan.version, plan.token, tuple(tasks), plan.total, spent,
        sum(min(t.paid, t.price) for t in tasks if t.price is not None), min(record.claimed, spent),
        _coverage(record.deposit, spent, unpaid), tuple(t.task_id for t in tasks if t.overdue),
        tuple(t.task_id for t in tasks if t.waiting_for == "payee"),
        tuple(t.task_id for t in tasks if t.waiting_for == "payer"), _amendments(history))


def _coverage(deposit: int, spent: int, unpaid: list[int]) -> Coverage:
    remaining, covered, running = max(0, deposit - spent), 0, 0
    for price in unpaid:
        if running + price > remaining:
            break
        running += price
        covered += 1
    return Coverage(deposit, spent, remaining, sum(unpaid), covered, max(0, sum(unpaid) - remaining))


def _price_version(history: PlanHistory, task_id: str) -> int | None:
    """The plan version that set the task's current price: the first of the newest run of
    versions in force that list it at that price."""
    agreed = [v.signed.plan for v in history.agreed()]
    current = agreed[-1].task(task_id)
    version = None
    for plan in reversed(agreed):
        task = plan.task(task_id)
        if task is None or current is None or task.price != current.price:
            break
        version = plan.version
    return version


def _amendments(history: PlanHistory) -> tuple[Amendment, ...]:
    out, by_hash = [], {v.signed.plan.hash: v.signed.plan for v in history.versions}
    for stored in history.versions:
        plan = stored.signed.plan
        before = by_hash.get(plan.amends)
        out.append(Amendment(plan.version, "0x" + plan.hash.hex(), plan.role_of(plan.proposer) or "payee",
                             plan.proposed_at, stored.signed.in_force, before.total if before else 0, plan.total,
                             changes(before, plan) if before else ()))
    return tuple(out)


def changes(before: Plan, after: Plan) -> tuple[Change, ...]:
    """What ``after`` changed in ``before``'s tasks, in the order they appear."""
    out = []
    for task in after.tasks:
        old = before.task(task.id)
        if old is None:
            out.append(Change("added", task.id, None, task.price, None, task.due))
        elif old.price != task.price:
            out.append(Change("re-priced", task.id, old.price, task.price, old.due, task.due))
        elif old.due != task.due:
            out.append(Change("re-dated", task.id, old.price, task.price, old.due, task.due))
        elif old != task:
            out.append(Change("changed", task.id, old.price, task.price, old.due, task.due))
    out += [Change("removed", t.id, t.price, None, t.due, None) for t in before.tasks if after.task(t.id) is None]
    return tuple(out)
