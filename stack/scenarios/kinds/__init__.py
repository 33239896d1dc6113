"""One module per kind of scenario. Each provides:

    validate(params)   raise ValueError naming the problem (called when the registry loads)
    start(ctx)         break things and start the scenario's own traffic (idempotent: safe to apply twice)
    tick(ctx)          called about once a second while the scenario runs (may do nothing)
    heal(ctx)          undo what start did (idempotent)
    reset(run)         the safety net of `make heal`: undo this kind's breakage without a context (idempotent)
"""

from __future__ import annotations

from types import ModuleType

from stack.scenarios.kinds import alert_storm, cardinality, missing_metrics, provider_fault

KINDS: dict[str, ModuleType] = {
    "provider_fault": provider_fault,
    "cardinality": cardinality,
    "missing_metrics": missing_metrics,
    "alert_storm": alert_storm,
}
