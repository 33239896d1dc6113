"""The labs, and where grading reads and writes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from stack.paths import REPO_ROOT

SOLUTIONS_DIR = REPO_ROOT / "solutions"
LABS_DIR = REPO_ROOT / "labs"
# LLMOBS_BUILD_DIR moves grading output (tests grade into temp folders so runs never clobber each other).
BUILD_DIR = Path(os.environ.get("LLMOBS_BUILD_DIR", REPO_ROOT / "build")).resolve()
GRADING_DIR = BUILD_DIR / "grading"
GRADES_JSON = BUILD_DIR / "grades.json"   # a copy of the latest run's (graders/runs.py)
GRADES_CSV = BUILD_DIR / "grades.csv"     # a copy of the latest class run's
NBGRADER_CONFIG = Path(__file__).with_name("nbgrader_config.py")


@dataclass(frozen=True)
class Lab:
    id: str          # folder name under solutions/ and labs/, and nbgrader's assignment id
    short: str       # what `make grade LAB=...` accepts
    title: str
    # its notebook drives the live stack (traffic through the gateway, provider faults) while it is graded, so a
    # class run grades it on one student at a time (graders/classrun.py)
    live_notebook: bool = False

    @property
    def source(self) -> Path:
        return SOLUTIONS_DIR / self.id


LABS = (
    Lab("v1_logging_cost", "v1", "V1 - structured logging and cost tracking"),
    Lab("v2_prometheus", "v2", "V2 - Prometheus metrics, PromQL and dashboards", live_notebook=True),
    Lab("v3_cost_alerting", "v3", "V3 - cost attribution, alert rules and Alertmanager routing"),
    Lab("v4_tracing", "v4", "V4 - tracing, exemplars and cost optimization", live_notebook=True),
)


def existing_labs() -> list[Lab]:
    """The labs whose source notebooks exist (labs are added issue by issue)."""
    return [lab for lab in LABS if lab.source.is_dir()]


class UnknownLab(ValueError):
    pass


def select(names: str | None) -> list[Lab]:
    """Labs by short name or folder name in any case (`v1`, `V1`, `v1_logging_cost`); several separated by commas
    (`v1,V2`); all when empty."""
    labs = existing_labs()
    if not names:
        return labs
    chosen = []
    for name in (part.strip() for part in names.split(",") if part.strip()):
        match = next((lab for lab in labs if name.lower() in (lab.short.lower(), lab.id.lower())), None)
        if match is None:
            known = ", ".join(f"{lab.short} ({lab.id})" for lab in labs)
            raise UnknownLab(f"no lab called {name!r}; choose one of: {known}")
        if match not in chosen:
            chosen.append(match)
    return chosen
