"""Monthly budgets per department (stack/gateway/budget.py): the catalog refuses a department without one, the ledger
rebuilds the month from the attribution store and rolls over at the UTC month start, the projection, the two policies
at 100 %, the classroom knob; and, through an in-process gateway, the 402, the downgrade and spend counted once."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from stack import catalog as catalog_module
from stack.catalog import CatalogError, MonthlyBudgetSettings, monthly_budgets
from stack.gateway.budget import DOWNGRADED, REFUSED, DepartmentBudgets, OverBudget, month_bounds
from stack.gateway.faults import FaultState
from stack.gateway.store import AttributionStore, CallRecord
from tests import inprocess

DEPARTMENTS = ("engineering", "finance")
SETTINGS = MonthlyBudgetSettings(monthly_usd={"engineering": 400.0, "finance": 60.0, "other": 25.0}, policy="refuse")
CHEAPEST = "sim-fast"


def at(*moment: int) -> float:
    return datetime(*moment, tzinfo=timezone.utc).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ledger(clock: Clock, policy: str = "refuse", prespent: dict[str, float] | None = None,
           actions: list[tuple[str, str]] | None = None) -> DepartmentBudgets:
    return DepartmentBudgets(dataclasses.replace(SETTINGS, policy=policy), CHEAPEST, clock,
                             prespent=lambda: prespent or {},
                             on_action=None if actions is None else lambda d, a: actions.append((d, a)))


def row(request_id: str, department: str, cost_usd: float, ts: float) -> CallRecord:
    return CallRecord(request_id=request_id, step="chat", ts=ts, user_id="u-1", department=department,
                      application="chatbot", model="sim-balanced", input_tokens=10, output_tokens=10,
                      cost_usd=cost_usd, duration_seconds=0.1, status="success", error_type=None, synthetic=False)


# ---------------------------------------------------------------- the catalog

def test_the_catalog_gives_every_department_and_other_a_monthly_budget() -> None:
    catalog = catalog_module.load()
    assert set(catalog.monthly_budgets.monthly_usd) == {*catalog.departments, "other"}
    assert all(usd > 0 for usd in catalog.monthly_budgets.monthly_usd.values())
    assert catalog.cheapest_model == "sim-fast"


@pytest.mark.parametrize(("budgets", "named"), [
    ({"monthly_usd": {"engineering": 400, "other": 25}, "policy": "refuse"}, "budgets.monthly_usd.finance"),
    ({"monthly_usd": {"engineering": 400, "finance": 60}, "policy": "refuse"}, "budgets.monthly_usd.other"),
    ({"monthly_usd": {"engineering": 400, "finance": 60, "other": 25, "hr": 10}, "policy": "refuse"},
     "budgets.monthly_usd.hr"),
    ({"monthly_usd": {"engineering": 400, "finance": 0, "other": 25}, "policy": "refuse"},
     "budgets.monthly_usd.finance"),
    ({"monthly_usd": {"engineering": "lots", "finance": 60, "other": 25}, "policy": "refuse"},
     "budgets.monthly_usd.engineering"),
    ({"monthly_usd": {"engineering": 400, "finance": 60, "other": 25}, "policy": "warn"}, "budgets.policy"),
    (None, "budgets.monthly_usd"),
])
def test_the_loader_refuses_a_missing_or_wrong_budget_naming_the_field(budgets: object, named: str) -> None:
    with pytest.raises(CatalogError, match=named.replace(".", r"\.")):
        monthly_budgets(budgets, DEPARTMENTS)


# ---------------------------------------------------------------- the ledger

def test_month_bounds_are_utc_calendar_months_across_a_year_end() -> None:
    assert month_bounds(at(2025, 12, 31, 23, 59, 59)) == (at(2025, 12, 1), at(2026, 1, 1))
    assert month_bounds(at(2024, 2, 29, 12)) == (at(2024, 2, 1), at(2024, 3, 1))


def test_rebuild_sums_this_months_rows_and_folds_unlisted_departments_into_other(tmp_path: Path) -> None:
    store = AttributionStore(tmp_path / "attribution.db")
    for record in (row("a", "engineering", 3.0, at(2025, 6, 1, 0, 0, 1)), row("b", "engineering", 2.0, at(2025, 6, 9)),
                   row("c", "acme-labs", 1.5, at(2025, 6, 9)), row("d", "other", 0.5, at(2025, 6, 10)),
                   row("e", "engineering", 100.0, at(2025, 5, 31, 23, 59, 59)),  # last month: not this month's spend
                   row("f", "finance", 0.0, at(2025, 6, 10))):  # a cache hit
        store.add(record)
    budgets = ledger(Clock(at(2025, 6, 10, 12)))
    budgets.rebuild(store)
    assert budgets.status("engineering").spent_usd == pytest.approx(5.0)
    assert budgets.status("acme-labs").budget == "other" and budgets.status("other").spent_usd == pytest.approx(2.0)
    assert budgets.status("finance").spent_usd == 0.0 and budgets.status("finance").remaining_usd == 60.0


def test_the_month_rolls_over_at_utc_month_start() -> None:
    clock = Clock(at(2025, 1, 31, 23, 59, 59))
    budgets = ledger(clock)
    budgets.record("finance", 59.0)
    assert budgets.status("finance").spent_usd == 59.0 and budgets.status("finance").month == "2025-01"
    clock.now = at(2025, 2, 1)
    status = budgets.status("finance")
    assert (status.spent_usd, status.month, status.resets_at) == (0.0, "2025-02", "2025-03-01")
    budgets.record("finance", 1.0)
    assert budgets.status("finance").spent_usd == 1.0


def test_the_projection_is_the_month_to_date_pace_carried_to_month_end() -> None:
    clock = Clock(at(2025, 6, 11))  # 10 of June's 30 days gone
    budgets = ledger(clock)
    budgets.record("engineering", 100.0)
    assert budgets.status("engineering").projected_usd == pytest.approx(300.0)
    clock.now = at(2025, 6, 1, 0, 0, 30)  # 30 s into the month: the elapsed time counts as an hour
    fresh = ledger(clock)
    fresh.record("engineering", 1.0)
    assert fresh.status("engineering").projected_usd == pytest.approx(30 * 24)


def test_costs_are_recorded_as_given_and_nothing_for_a_free_call() -> None:
    budgets = ledger(Clock(at(2025, 6, 11)))
    for cost in (0.25, 0.0, 0.5):
        budgets.record("engineering", cost)
    assert budgets.status("engineering").spent_usd == 0.75


# ---------------------------------------------------------------- the policy at 100 %

def test_refuse_answers_402_naming_the_department_budget_and_spend_once_it_is_spent() -> None:
    actions: list[tuple[str, str]] = []
    budgets = ledger(Clock(at(2025, 6, 11)), actions=actions)
    budgets.record("finance", 59.99)
    assert budgets.admit("finance", "sim-reasoning", "r-1").allowed
    budgets.record("finance", 0.01)
    with pytest.raises(OverBudget) as refused:
        budgets.admit("finance", "sim-reasoning", "r-2")
    error = refused.value.error
    assert (error["status"], error["department"], error["monthly_budget_usd"], error["request_id"]) == (
        402, "finance", 60.0, "r-2")
    assert error["month_to_date_usd"] == pytest.approx(60.0)
    assert "'finance'" in error["message"] and "60.00 USD of 60.00 USD" in error["message"]
    assert "budgets.monthly_usd.finance" in error["message"] and "2025-07-01" in error["message"]
    assert actions == [("finance", REFUSED)]
    assert budgets.admit("engineering", "sim-reasoning", "r-3").allowed  # other departments are not affected


def test_downgrade_serves_the_cheapest_model_and_says_which() -> None:
    actions: list[tuple[str, str]] = []
    budgets = ledger(Clock(at(2025, 6, 11)), policy="downgrade", actions=actions)
    budgets.record("finance", 75.0)
    decision = budgets.admit("finance", "sim-reasoning", "r-1")
    assert (decision.allowed, decision.model, decision.requested_model, decision.action) == (
        True, CHEAPEST, "sim-reasoning", DOWNGRADED)
    assert decision.headers() == {"X-Budget-Action": "downgraded", "X-Requested-Model": "sim-reasoning",
                                  "X-Served-Model": CHEAPEST}
    unchanged = budgets.admit("finance", CHEAPEST, "r-2")  # nothing cheaper to serve it with
    assert (unchanged.model, unchanged.action, unchanged.headers()) == (CHEAPEST, None, {})
    assert actions == [("finance", DOWNGRADED)]


def test_an_unlisted_department_spends_the_shared_other_budget() -> None:
    budgets = ledger(Clock(at(2025, 6, 11)))
    budgets.record("acme-labs", 20.0)
    budgets.record("skunkworks", 5.0)
    with pytest.raises(OverBudget) as refused:
        budgets.admit("typo-dept", "sim-fast", "r-1")
    assert refused.value.error["budget"] == "other" and "shared 'other' budget" in refused.value.error["message"]


def test_pre_spent_knob_money_counts_for_the_policy_and_the_gauges() -> None:
    prespent = {"finance": 54.0}
    budgets = ledger(Clock(at(2025, 6, 11)), prespent=prespent)
    budgets.record("finance", 1.0)
    assert budgets.status("finance").spent_usd == 55.0 and budgets.admit("finance", "sim-fast", "r-1").allowed
    prespent["finance"] = 60.0
    with pytest.raises(OverBudget):
        budgets.admit("finance", "sim-fast", "r-2")
    prespent.clear()  # the knob healed: only booked calls remain
    assert budgets.status("finance").spent_usd == 1.0


def test_the_budget_knob_heals_by_itself_or_when_set_to_nothing() -> None:
    clock = Clock(1000.0)
    knobs = FaultState(["sim-fast"], clock)
    knobs.set_budget_spent({"engineering": 390.0}, seconds=60)
    assert knobs.budget_spent_usd() == {"engineering": 390.0} and knobs.describe()["active"] == {
        "budget_spent_usd": {"engineering": 390.0}}
    clock.now += 61
    assert knobs.budget_spent_usd() == {} and knobs.describe()["healthy"]
    knobs.set_budget_spent({"engineering": 390.0}, seconds=60)
    knobs.set_budget_spent({}, seconds=60)
    assert knobs.budget_spent_usd() == {}


# ---------------------------------------------------------------- through the gateway

BODY = {"model": "sim-reasoning", "messages": [{"role": "user", "content": "Summarise our cloud bill."}],
        "attribution": {"user_id": "u-7", "department": "finance", "application": "chatbot"}}


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[inprocess.Stack]:
    with inprocess.stack(tmp_path, monkeypatch) as services:
        yield services


def _metric(stack: inprocess.Stack, sample: str) -> float:
    line = next(line for line in stack.gateway.get("/metrics").text.splitlines() if line.startswith(sample + " "))
    return float(line.split()[-1])


def _store_spend(stack: inprocess.Stack, department: str) -> float:
    return stack.gateway.app.state.gateway.store.spend_by_department(0.0).get(department, 0.0)


def test_a_department_over_budget_gets_a_402_naming_its_budget(stack: inprocess.Stack) -> None:
    assert stack.gateway.post("/v1/chat/completions", json=BODY).status_code == 200
    knob = stack.gateway.post("/faults", json={"budget_spent_usd": {"finance": 60}, "duration_seconds": 60})
    assert knob.status_code == 200, knob.text
    before = stack.side_effects()

    for path, body in (("/v1/chat/completions", BODY), ("/v1/chat/completions", {**BODY, "stream": True}),
                       ("/v1/agent/workflow", {"question": "why?", "model": "sim-reasoning",
                                               "attribution": BODY["attribution"]})):
        refused = stack.gateway.post(path, json=body)
        assert refused.status_code == 402, refused.text
        error = refused.json()["error"]
        assert error["department"] == "finance" and error["monthly_budget_usd"] == 60.0
        assert error["month_to_date_usd"] > 60 and "60.00 USD" in error["message"]
        assert error["request_id"] == refused.headers["x-request-id"]
    assert stack.side_effects() == before  # no provider call, no row, no cost
    assert _metric(stack, 'llm_budget_policy_actions_total{action="refused",department="finance"}') == 3
    other = {**BODY, "attribution": {**BODY["attribution"], "department": "research"}}
    assert stack.gateway.post("/v1/chat/completions", json=other).status_code == 200

    assert stack.gateway.delete("/faults/budget_spent_usd").status_code == 200
    assert stack.gateway.post("/v1/chat/completions", json=BODY).status_code == 200


def test_the_knob_refuses_a_department_without_a_budget(stack: inprocess.Stack) -> None:
    response = stack.gateway.post("/faults", json={"budget_spent_usd": {"hr": 10}})
    assert response.status_code == 422 and "budget_spent_usd" in response.json()["error"]["fields"]
    assert "hr" in response.json()["error"]["message"]


@pytest.fixture
def downgrading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[inprocess.Stack]:
    catalog = catalog_module.load()
    policy = dataclasses.replace(catalog.monthly_budgets, policy="downgrade")
    monkeypatch.setattr(catalog_module, "load", lambda: dataclasses.replace(catalog, monthly_budgets=policy))
    with inprocess.stack(tmp_path, monkeypatch) as services:
        yield services


def test_a_department_over_budget_is_served_by_the_cheapest_model_and_told_so(downgrading: inprocess.Stack) -> None:
    stack = downgrading
    stack.gateway.post("/faults", json={"budget_spent_usd": {"finance": 75}})
    answer = stack.gateway.post("/v1/chat/completions", json=BODY)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == "sim-fast" and answer.headers["x-served-model"] == "sim-fast"
    assert answer.headers["x-requested-model"] == "sim-reasoning"
    assert body["gateway"]["budget"]["served_model"] == "sim-fast" and "finance" in body["gateway"]["budget"]["message"]
    streamed = stack.gateway.post("/v1/chat/completions", json={**BODY, "stream": True})
    assert streamed.status_code == 200 and streamed.headers["x-served-model"] == "sim-fast"
    assert '"model": "sim-fast"' in streamed.text or '"model":"sim-fast"' in streamed.text
    workflow = stack.gateway.post("/v1/agent/workflow", json={"question": "why?", "model": "sim-reasoning",
                                                             "attribution": BODY["attribution"]}).json()
    assert [step["model"] for step in workflow["steps"]] == ["sim-fast"] * 3
    assert _metric(stack, 'llm_budget_policy_actions_total{action="downgraded",department="finance"}') == 3
    with sqlite3.connect(stack.data / "gateway" / "attribution.db") as db:
        models = {m for (m,) in db.execute("SELECT DISTINCT model FROM llm_calls WHERE department = 'finance'")}
    assert models == {"sim-fast"}  # booked, and billed, as the model that served


def test_a_call_the_store_refuses_spends_nothing(stack: inprocess.Stack) -> None:
    assert stack.gateway.post("/v1/chat/completions", json=BODY).status_code == 200
    spent = _metric(stack, 'llm_budget_spent_usd{department="finance"}')
    stack.gateway.app.state.gateway.store._db.execute("PRAGMA query_only=ON")  # the row cannot be written
    assert stack.gateway.post("/v1/chat/completions", json=BODY).status_code == 503
    assert _metric(stack, 'llm_budget_spent_usd{department="finance"}') == spent


def test_spend_is_counted_once_whatever_the_kind_of_call_and_survives_a_restart(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cached = {**BODY, "seed": 11}
    with inprocess.stack(tmp_path, monkeypatch) as stack:
        for body in (BODY, {**BODY, "stream": True}, cached, cached):  # the second `cached` is a hit: cost 0
            assert stack.gateway.post("/v1/chat/completions", json=body).status_code == 200
        stack.gateway.post("/v1/agent/workflow", json={"question": "why?", "attribution": BODY["attribution"]})
        assert stack.cache_hits() == 1 and stack.rows() == 7
        booked = _store_spend(stack, "finance")
        assert booked > 0
        assert _metric(stack, 'llm_budget_spent_usd{department="finance"}') == pytest.approx(booked, rel=1e-12)
        assert stack.billed()[2] == pytest.approx(booked, rel=1e-12)  # llm_cost_usd_total: the same money
        remaining = _metric(stack, 'llm_budget_remaining_usd{department="finance"}')
        assert remaining == pytest.approx(60.0 - booked, rel=1e-12)
    with inprocess.stack(tmp_path, monkeypatch) as restarted:  # rebuilt from the store's rows of this month
        assert _metric(restarted, 'llm_budget_spent_usd{department="finance"}') == pytest.approx(booked, rel=1e-12)
        assert _metric(restarted, 'llm_budget_spent_usd{department="research"}') == 0
