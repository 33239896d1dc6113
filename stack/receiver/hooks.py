"""Where Alertmanager posts to the receiver: one path per channel and notification format.

`/hook/<channel>` takes Alertmanager's own webhook JSON; `/hook/<channel>/slack` a Slack message and
`/hook/<channel>/pagerduty` a PagerDuty event, both rendered by Alertmanager from its templates. The generated
alertmanager.yml (stack/alertmanager/config.py) and the receiver's routes (app.py) both build paths here."""

from __future__ import annotations

from typing import Literal

Format = Literal["webhook", "slack", "pagerduty"]
FORMATS: tuple[Format, ...] = ("webhook", "slack", "pagerduty")


def hook_path(channel: str, kind: Format) -> str:
    return f"/hook/{channel}" if kind == "webhook" else f"/hook/{channel}/{kind}"
