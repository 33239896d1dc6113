"""Every notification format the receiver takes, by the name its hook path uses (hooks.py)."""

from __future__ import annotations

from stack.receiver.hooks import Format
from stack.receiver.pagerduty import PagerDutyEvent
from stack.receiver.payload import Notification
from stack.receiver.slack import SlackMessage

Received = Notification | SlackMessage | PagerDutyEvent
MODELS: dict[Format, type[Received]] = {"webhook": Notification, "slack": SlackMessage, "pagerduty": PagerDutyEvent}


def load(kind: Format, payload: dict) -> Received:
    """A stored notification back as its model (it was validated when it came in)."""
    return MODELS[kind].model_validate(payload)
