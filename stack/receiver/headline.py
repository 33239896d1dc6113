"""The first line of a chat or pager notification, `[FIRING:2] LLMHighErrorRatio warning`: Alertmanager renders it
from templates/notifications.tmpl (`llmobs.headline`), and the receiver files the notification under it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

HEADLINE = re.compile(r"^\[(FIRING|RESOLVED):(\d{1,6})\] (\S+)")
EXAMPLE = "[FIRING:2] LLMHighErrorRatio warning"


@dataclass(frozen=True)
class Headline:
    status: Literal["firing", "resolved"]
    alert_count: int
    alertname: str


def parse(text: str) -> Headline:
    """The headline at the start of `text`; ValueError saying what is expected if there is none."""
    match = HEADLINE.match(text)
    if match is None:
        raise ValueError(f"must start with the headline of stack/alertmanager/templates/notifications.tmpl, "
                         f"[FIRING:<alerts>] or [RESOLVED:<alerts>] and the alert name, e.g. {EXAMPLE!r}")
    status = "firing" if match.group(1) == "FIRING" else "resolved"
    return Headline(status, int(match.group(2)), match.group(3))
