"""alertmanager.yml: routing by severity, grouping, inhibition, a route for the Watchdog. Every receiver posts into the
alert receiver (stack/receiver): `pager` as a PagerDuty event, `chat` as a Slack message, both rendered by
Alertmanager from templates/*.tmpl; the Watchdog's heartbeat as Alertmanager's plain webhook."""

from __future__ import annotations

from pathlib import Path

from stack import topology
from stack.profiles import Profile
from stack.receiver.hooks import Format, hook_path

RECEIVERS: dict[str, Format | None] = {"pager": "pagerduty", "chat": "slack", "watchdog": "webhook", "null": None}
GROUP_BY = ["alertname", "severity"]
# A critical mutes the warning of the same alert about the same thing: the same model (LLMHighErrorRatio) or the same
# department (LLMDepartmentBudget at 100 % mutes its 90 %). Alertmanager counts a label both alerts lack as equal, so
# without `department` here one department's critical would mute every other department's warning.
INHIBIT_EQUAL = ["alertname", "model", "department"]
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
# Relative to <profile>/alertmanager.yml: Alertmanager resolves it from the config file's folder, so the same file
# works in the repository, in the runner's shifted copy and mounted into the container.
TEMPLATE_FILES = f"../{TEMPLATES_DIR.name}/*.tmpl"
# PagerDuty refuses an event without a routing key; the receiver stores it and checks nothing else.
PAGERDUTY_ROUTING_KEY = "llmobs-lab"


def hook_url(receiver: str, kind: Format) -> str:
    return topology.load()["receiver"].url + hook_path(receiver, kind)


def _template(name: str) -> str:
    return '{{ template "%s" . }}' % name


def _integration(name: str, kind: Format) -> dict:
    if kind == "slack":
        return {"slack_configs": [{
            "api_url": hook_url(name, kind),
            "send_resolved": True,
            "channel": f"#{name}",
            "title": _template("llmobs.headline"),
            "title_link": _template("llmobs.runbook_url"),
            "text": _template("llmobs.chat.text"),
            "fallback": _template("llmobs.summary"),
            "color": _template("llmobs.chat.color"),
            "fields": [{"title": "Severity", "value": _template("llmobs.severity"), "short": True}],
            "actions": [{"type": "button", "text": "Runbook", "url": _template("llmobs.runbook_url")},
                        {"type": "button", "text": "Silence", "url": _template("llmobs.silence_url")}],
        }]}
    if kind == "pagerduty":
        return {"pagerduty_configs": [{
            "url": hook_url(name, kind),
            "routing_key": PAGERDUTY_ROUTING_KEY,
            "send_resolved": True,
            "severity": _template("llmobs.pager.severity"),
            "class": "{{ .CommonLabels.alertname }}",
            "description": _template("llmobs.summary"),
            "links": [{"href": _template("llmobs.runbook_url"), "text": "Runbook"},
                      {"href": _template("llmobs.silence_url"), "text": "Silence"}],
            # in place of Alertmanager's default firing/resolved details (every label and annotation of every alert)
            "details": {"firing": '{{ template "llmobs.alert_lines" .Alerts.Firing }}',
                        "resolved": '{{ template "llmobs.alert_lines" .Alerts.Resolved }}',
                        "silence": _template("llmobs.amtool_silence")},
        }]}
    return {"webhook_configs": [{"url": hook_url(name, kind), "send_resolved": True}]}


def _receiver(name: str, kind: Format | None) -> dict:
    return {"name": name, **(_integration(name, kind) if kind else {})}


def alertmanager_config(profile: Profile) -> dict:
    timing = profile.alertmanager
    return {
        "route": {
            "receiver": "chat",
            "group_by": GROUP_BY,
            "group_wait": str(timing.group_wait),
            "group_interval": str(timing.group_interval),
            "repeat_interval": str(timing.repeat_interval),
            "routes": [
                {
                    "receiver": "watchdog",
                    "matchers": ['alertname="Watchdog"'],
                    "group_interval": str(timing.watchdog_group_interval),
                    "repeat_interval": str(timing.watchdog_repeat_interval),
                },
                {"receiver": "null", "matchers": ['severity="info"']},
                {"receiver": "pager", "matchers": ['severity="critical"']},
                {"receiver": "chat", "matchers": ['severity="warning"']},
            ],
        },
        "inhibit_rules": [
            {
                "source_matchers": ['severity="critical"'],
                "target_matchers": ['severity="warning"'],
                "equal": INHIBIT_EQUAL,
            }
        ],
        "templates": [TEMPLATE_FILES],
        "receivers": [_receiver(name, kind) for name, kind in RECEIVERS.items()],
    }


def standalone_config(profile: Profile) -> dict:
    """The same config for an Alertmanager whose file lives elsewhere (a grader's temporary one): the templates by
    their absolute path."""
    return {**alertmanager_config(profile), "templates": [str(TEMPLATES_DIR / "*.tmpl")]}
