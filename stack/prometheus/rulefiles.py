"""The rule files of one profile as data (file name under rules/ -> its content): what `python -m stack.generate`
writes and what the promtool unit tests (alert_cases.py) load. A leaf: it imports the rule definitions only."""

from __future__ import annotations

from stack.profiles import Profile
from stack.prometheus.alerts import alert_groups
from stack.prometheus.rules import AlertRule, RecordingRule, RuleGroup, recording_rules


def rule_data(rule: RecordingRule | AlertRule) -> dict:
    """One rule as Prometheus reads it from a rules file."""
    if isinstance(rule, RecordingRule):
        return {"record": rule.record, "expr": rule.expr}
    data: dict = {"alert": rule.alert, "expr": rule.expr}
    if rule.for_ is not None:
        data["for"] = str(rule.for_)
    data["labels"] = rule.labels
    data["annotations"] = rule.annotations
    return data


def group_data(group: RuleGroup) -> dict:
    """A rules file holding one group."""
    return {"groups": [{"name": group.name, "rules": [rule_data(r) for r in group.rules]}]}


def rule_files(profile: Profile) -> dict[str, dict]:
    """File name (under rules/) → content."""
    recording = recording_rules(profile)
    llm, stack_alerts = alert_groups(profile)
    return {
        "recording.yml": group_data(recording),
        "llm-alerts.yml": group_data(llm),
        "stack-alerts.yml": group_data(stack_alerts),
    }
