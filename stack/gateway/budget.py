"""Monthly budgets per department: what each has spent this month, what is left, where the month will end, and what
the gateway does once a department has spent its budget (stack/catalog.yaml `budgets`).

    request ──► DepartmentBudgets.admit(department, model)       (chat.py and the workflow route, before the cache)
                  spent < budget                    ─► BudgetDecision(allowed, model unchanged)
                  spent >= budget, policy refuse    ─► OverBudget: HTTP 402 naming the department, its budget, its
                                                       month-to-date spend and what to do
                  spent >= budget, policy downgrade ─► BudgetDecision(allowed, model = the catalog's cheapest model)

Month to date: the calendar month in UTC. At start-up the ledger is rebuilt from the attribution store's rows of the
current month (`SELECT department, SUM(cost_usd) FROM llm_calls WHERE ts >= <month start> GROUP BY department`);
then CallRecorder.book adds each booked call's cost once, right after its row is written (a cache hit costs 0 and
adds nothing), so the ledger always equals what a rebuild would find. At 00:00 UTC on the 1st every department starts
again from 0. Departments not in the catalog's labels.department spend the shared `other` budget, so a misspelt
department cannot escape its budget.

Projection of month-end spend, linear at the month-to-date pace:

    projected_usd = spent_usd × month_seconds / max(elapsed_seconds, MIN_PROJECTION_SECONDS)

(spent divided by the elapsed fraction of the month; the first hour counts as an hour, so a call at 00:00:01 on the
1st does not project a month-end spend of millions).

While the gateway's fault knob `budget_spent_usd` is on (stack/faults.py; classroom scenarios), its amounts count as
spent this month on top of the booked calls: the gauges, the alerts and the policy all see them, the store does not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from stack.catalog import OTHER, MonthlyBudgetSettings
from stack.gateway.logs import get_logger
from stack.gateway.store import AttributionStore

REFUSED, DOWNGRADED = "refused", "downgraded"
ACTIONS = (REFUSED, DOWNGRADED)  # what the policy did to a request (llm_budget_policy_actions_total{action})
EXHAUSTED = "monthly_budget_exhausted"  # the reason of every decision the policy acts on
MIN_PROJECTION_SECONDS = 3600
Clock = Callable[[], float]  # epoch seconds, like the attribution store's `ts`


def month_bounds(now: float) -> tuple[float, float]:
    """The start of the UTC calendar month holding `now`, and the start of the next one (epoch seconds)."""
    moment = datetime.fromtimestamp(now, timezone.utc)
    start = datetime(moment.year, moment.month, 1, tzinfo=timezone.utc)
    following = datetime(moment.year + moment.month // 12, moment.month % 12 + 1, 1, tzinfo=timezone.utc)
    return start.timestamp(), following.timestamp()


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class BudgetStatus:
    """One budget now. `spent_usd` is month to date, pre-spent knob money included; `remaining_usd` is negative when
    the department is over its budget."""

    budget: str  # the budget's key in the catalog: the department, or `other`
    monthly_usd: float
    spent_usd: float
    remaining_usd: float
    projected_usd: float
    month: str      # e.g. 2025-06
    resets_at: str  # e.g. 2025-07-01: the day the next month's budget starts, 00:00 UTC

    @property
    def exhausted(self) -> bool:
        return self.spent_usd >= self.monthly_usd


@dataclass(frozen=True)
class BudgetDecision:
    """What the call path does with one request. `model` serves it; `reason` and `message` say why the policy acted
    (None when the department is within its budget); `requested_model` is set when `model` replaced it."""

    allowed: bool
    model: str
    reason: str | None = None
    message: str | None = None
    requested_model: str | None = None

    @property
    def action(self) -> str | None:
        if not self.allowed:
            return REFUSED
        return DOWNGRADED if self.requested_model else None

    def headers(self) -> dict[str, str]:
        """Response headers of a downgraded answer: the model asked for and the model that answered."""
        if self.action != DOWNGRADED:
            return {}
        return {"X-Budget-Action": DOWNGRADED, "X-Requested-Model": str(self.requested_model),
                "X-Served-Model": self.model}

    def report(self) -> dict[str, object]:
        """What a downgraded JSON answer adds to its `gateway` object."""
        if self.action != DOWNGRADED:
            return {}
        return {"budget": {"action": DOWNGRADED, "requested_model": self.requested_model, "served_model": self.model,
                           "message": self.message}}


class OverBudget(Exception):
    """The department has spent its monthly budget and the policy is `refuse`: the route answers HTTP 402 with
    `error`."""

    status = 402

    def __init__(self, decision: BudgetDecision, department: str, budget: BudgetStatus, request_id: str) -> None:
        super().__init__(decision.message)
        self.request_id = request_id
        self.error = {"status": self.status, "message": decision.message, "reason": decision.reason,
                      "department": department, "budget": budget.budget,
                      "monthly_budget_usd": budget.monthly_usd, "month_to_date_usd": round(budget.spent_usd, 6),
                      "month": budget.month, "resets_at": budget.resets_at, "policy": "refuse",
                      "request_id": request_id}


def _nothing_prespent() -> Mapping[str, float]:
    return {}


class DepartmentBudgets:
    """Month-to-date spend per budget and the policy at 100 %. Thread-safe; `clock` gives epoch seconds (tests move
    it), `prespent` the fault knob's amounts, `on_action(department, action)` counts what the policy did."""

    def __init__(self, settings: MonthlyBudgetSettings, cheapest_model: str, clock: Clock = time.time,
                 prespent: Callable[[], Mapping[str, float]] = _nothing_prespent,
                 on_action: Callable[[str, str], None] | None = None) -> None:
        self.settings, self.cheapest_model = settings, cheapest_model
        self.clock, self.prespent, self.on_action = clock, prespent, on_action
        self._lock = threading.Lock()
        self._spent: dict[str, float] = {}
        self._start_month(clock())
        self.log = get_logger()

    @property
    def budgets(self) -> tuple[str, ...]:
        """Every budget's key: the catalog's departments and `other`."""
        return tuple(self.settings.monthly_usd)

    # ------------------------------------------------------------------ the ledger
    def rebuild(self, store: AttributionStore) -> None:
        """Month-to-date spend from the store's rows of the current month (at start-up)."""
        with self._lock:
            self._start_month(self.clock())
            rows = store.spend_by_department(self._month[0])
            for department, usd in rows.items():
                key = self.settings.budget_key(department)
                self._spent[key] = self._spent.get(key, 0.0) + usd

    def record(self, department: str, cost_usd: float) -> None:
        """A booked call's cost (CallRecorder.book, once per row written)."""
        if cost_usd <= 0:
            return
        key = self.settings.budget_key(department)
        with self._lock:
            self._roll(self.clock())
            self._spent[key] = self._spent.get(key, 0.0) + cost_usd

    def _roll(self, now: float) -> None:
        """A new month starts every budget from 0 (call with the lock held)."""
        if not self._month[0] <= now < self._month[1]:
            self._start_month(now)

    def _start_month(self, now: float) -> None:
        self._month = month_bounds(now)
        self._month_names = (_day(self._month[0])[:7], _day(self._month[1]))  # e.g. ("2025-06", "2025-07-01")
        self._spent = {}

    def status(self, department: str) -> BudgetStatus:
        key = self.settings.budget_key(department)
        extra = self.prespent().get(key, 0.0)
        with self._lock:
            now = self.clock()
            self._roll(now)
            (start, end), (month, resets_at) = self._month, self._month_names
            spent = self._spent.get(key, 0.0) + extra
        monthly = self.settings.monthly_usd[key]
        projected = spent * (end - start) / max(now - start, MIN_PROJECTION_SECONDS)
        return BudgetStatus(budget=key, monthly_usd=monthly, spent_usd=spent, remaining_usd=monthly - spent,
                            projected_usd=projected, month=month, resets_at=resets_at)

    # ------------------------------------------------------------------ the policy
    def decide(self, department: str, model: str) -> BudgetDecision:
        """What to do with a request of `department` for `model`, from the spend booked so far (a call under way
        is not counted until it is booked, so concurrent calls can end a little over the budget)."""
        return self._decide(department, model, self.status(department))

    def admit(self, department: str, model: str, request_id: str) -> BudgetDecision:
        """The call path's budget stage: the decision, counted and logged when the policy acts; OverBudget when it
        refuses."""
        status = self.status(department)
        decision = self._decide(department, model, status)
        if decision.action is None:
            return decision
        if self.on_action is not None:
            self.on_action(department, decision.action)
        self.log.warning("budget_policy", request_id=request_id, department=department, budget=status.budget,
                         action=decision.action, policy=self.settings.policy, requested_model=model,
                         model=decision.model, monthly_budget_usd=status.monthly_usd,
                         month_to_date_usd=round(status.spent_usd, 6), month=status.month)
        if not decision.allowed:
            raise OverBudget(decision, department, status, request_id)
        return decision

    def _decide(self, department: str, model: str, status: BudgetStatus) -> BudgetDecision:
        if not status.exhausted:
            return BudgetDecision(allowed=True, model=model)
        if self.settings.policy == "downgrade":
            if model == self.cheapest_model:
                return BudgetDecision(allowed=True, model=model)  # nothing cheaper to serve it with
            return BudgetDecision(allowed=True, model=self.cheapest_model, reason=EXHAUSTED,
                                  message=self._message(department, status, f"until then {self.cheapest_model}, "
                                                        f"the cheapest model, answers in place of {model}"),
                                  requested_model=model)
        return BudgetDecision(allowed=False, model=model, reason=EXHAUSTED, message=self._message(
            department, status, "until then its calls are refused (HTTP 402). To go on sooner, ask the budget's owner "
            f"to raise budgets.monthly_usd.{status.budget} in stack/catalog.yaml (the gateway reads it when it starts)"))

    @staticmethod
    def _message(department: str, status: BudgetStatus, consequence: str) -> str:
        shared = "" if status.budget == department else (
            f" (department {department!r} is not in the catalog's labels.department, so it spends the shared "
            f"{OTHER!r} budget)")
        return (f"department {department!r} has spent its monthly budget: {status.spent_usd:.2f} USD of "
                f"{status.monthly_usd:.2f} USD in {status.month} (UTC){shared}. The budget starts again on "
                f"{status.resets_at} 00:00 UTC; {consequence}.")
