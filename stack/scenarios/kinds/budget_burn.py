"""A department burns through its month's budget in minutes: its month-to-date spend steps up through the shares of
its budget the alerts watch (80 % info, 90 % warning to chat, 100 % critical to the pager), and past 100 % the
gateway's budget policy acts on its requests (402, or a downgrade to the cheapest model).

The spend is the gateway knob `budget_spent_usd` (money counted as already spent this month; real calls add to it),
so the steps are exact and quick in any profile; the traffic is that department's, so the policy shows.

params: department (one with a monthly budget), shares (the month-to-date spend at each step as a share of the
budget, increasing, at most 2), step_seconds (5..300: time between steps), traffic (optional, its department must be
the scenario's).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stack import catalog
from stack.scenarios.kinds.base import Context, check_keys, heal_faults, set_faults, validate_traffic

KNOB = "budget_spent_usd"
MAX_SHARE = 2.0
STEP_SECONDS = (5, 300)


def validate(params: Mapping[str, Any]) -> None:
    check_keys(params, {"department", "shares", "step_seconds", "traffic"}, {"department", "shares", "step_seconds"})
    budgets = catalog.load().monthly_budgets.monthly_usd
    if params["department"] not in budgets:
        raise ValueError(f"department {params['department']!r} has no monthly budget; departments: "
                         f"{', '.join(budgets)}")
    shares = params["shares"]
    if (not isinstance(shares, list) or not shares or any(isinstance(s, bool) or not isinstance(s, (int, float))
                                                          for s in shares)
            or any(not 0 < s <= MAX_SHARE for s in shares) or sorted(shares) != shares):
        raise ValueError(f"shares must be an increasing list of shares of the budget in (0, {MAX_SHARE:g}], "
                         "e.g. [0.85, 0.95, 1.05]")
    seconds = params["step_seconds"]
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or \
            not STEP_SECONDS[0] <= seconds <= STEP_SECONDS[1]:
        raise ValueError(f"step_seconds must be {STEP_SECONDS[0]} to {STEP_SECONDS[1]} seconds")
    validate_traffic(params)
    others = [e["department"] for e in params.get("traffic", []) if e.get("department") != params["department"]]
    if others:
        raise ValueError(f"traffic: every entry's department must be {params['department']!r}, not {others}")


def _spent(ctx: Context, step: int) -> float:
    budget = catalog.load().monthly_budgets.monthly_usd[ctx.params["department"]]
    return round(ctx.params["shares"][step] * budget, 2)


def start(ctx: Context) -> None:
    ctx.state["step"] = -1
    ctx.start_traffic()
    tick(ctx)


def tick(ctx: Context) -> None:
    due = min(int((time.time() - ctx.started_at) // ctx.params["step_seconds"]), len(ctx.params["shares"]) - 1)
    while ctx.state["step"] < due:
        ctx.state["step"] += 1
        step = ctx.state["step"]
        department = ctx.params["department"]
        set_faults({KNOB: {department: _spent(ctx, step)}}, ctx.knob_seconds)
        ctx.note(f"{department} has now spent {ctx.params['shares'][step]:.0%} of its monthly budget "
                 f"({_spent(ctx, step):g} USD)")


def heal(ctx: Context) -> None:
    heal_faults([KNOB])
    ctx.note("the pre-spent money is gone: the department's month-to-date spend is its real calls' again")


def reset(run: Path) -> None:
    heal_faults([KNOB], strict=False)
