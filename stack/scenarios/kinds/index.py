"""Every kind of failure scenario by the name stack/scenarios/registry.yaml gives it (`kind:`)."""

from __future__ import annotations

from types import ModuleType

from stack.scenarios.kinds import (alert_storm, budget_burn, cardinality, missing_metrics, prompt_change,
                                   provider_fault, quota_drain)

KINDS: dict[str, ModuleType] = {
    "provider_fault": provider_fault,
    "cardinality": cardinality,
    "missing_metrics": missing_metrics,
    "alert_storm": alert_storm,
    "prompt_change": prompt_change,
    "budget_burn": budget_burn,
    "quota_drain": quota_drain,
}
