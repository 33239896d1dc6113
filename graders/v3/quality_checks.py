"""Lab V3, exercise 12: the alert-quality checks. The notebook's replay cell scores student_rules.yml on the labelled
timelines (graders/v3/quality.py); these checks read that score: every incident caught by its deadline (recall),
and no false alarm on any timeline (precision)."""

from __future__ import annotations

from graders.labcheck import expect
from graders.v3.quality import Quality

NOT_REPLAYED = "the replay cell above did not run"
RUN_THE_REPLAY = "run it (it needs student_rules.yml)"


def check_recall(quality: Quality | None) -> None:
    """Every incident caught by its deadline."""
    expect(quality is not None, NOT_REPLAYED, RUN_THE_REPLAY)
    missed = {t.key: quality.time_to_detect.get(t.key) for t in quality.missed}
    expect(not missed, f"recall {quality.recall:.2f}: missed " + "; ".join(
        f"{key} ({'never alerted' if ttd is None else f'alerted only after {ttd:g}s'})" for key, ttd in missed.items()),
        "the table above shows which alerts fired on each timeline; fix the rule of the incident's kind in Part B")


def check_precision(quality: Quality | None) -> None:
    """No false alarm anywhere, and enough incidents caught that silence is not the reason."""
    expect(quality is not None, NOT_REPLAYED, RUN_THE_REPLAY)
    expect(quality.recall >= 0.5, f"only {quality.recall:.0%} of the incidents were caught: quiet is not the same as "
           "precise", "finish the rules of Part B first")
    alarms = sorted({(e.timeline, e.describe(), e.first) for e in quality.false_alarms})
    expect(not alarms, f"precision {quality.precision:.2f}: {len(alarms)} false alarms, first "
           + ", ".join(f"{what} at {at:g}s in {where}" for where, what, at in alarms[:2]),
           "a false alarm is an alert on a harmless timeline, or an alert an incident should not raise")
