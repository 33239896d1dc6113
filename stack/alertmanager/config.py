"""alertmanager.yml: routing by severity, grouping, inhibition, a route for the Watchdog; every receiver is a
webhook into the alert receiver (stack/receiver), which stands in for PagerDuty (`pager`) and Slack (`chat`)."""

from __future__ import annotations

from stack import topology
from stack.profiles import Profile

RECEIVERS = ("pager", "chat", "watchdog", "null")
GROUP_BY = ["alertname", "severity"]
# A critical mutes the warning of the same alert about the same thing: the same model (LLMHighErrorRatio) or the same
# department (LLMDepartmentBudget at 100 % mutes its 90 %). Alertmanager counts a label both alerts lack as equal, so
# without `department` here one department's critical would mute every other department's warning.
INHIBIT_EQUAL = ["alertname", "model", "department"]


def webhook_url(receiver: str) -> str:
    return f"{topology.load()['receiver'].url}/hook/{receiver}"


def _receiver(name: str) -> dict:
    if name == "null":
        return {"name": name}
    return {"name": name, "webhook_configs": [{"url": webhook_url(name), "send_resolved": True}]}


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
        "receivers": [_receiver(name) for name in RECEIVERS],
    }
