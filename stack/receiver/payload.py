"""The Alertmanager webhook payload (version 4), validated so a malformed post gets a 422 naming the field."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from stack.receiver.message import Filing, Link, Message
from stack.receiver.truncate import truncate_values


class Alert(BaseModel):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: str
    endsAt: str | None = None
    generatorURL: str | None = None
    fingerprint: str | None = None


class Notification(BaseModel):
    version: str = "4"
    groupKey: str = ""
    truncatedAlerts: int = 0
    status: Literal["firing", "resolved"]
    receiver: str
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[Alert] = Field(min_length=1)

    def filing(self) -> Filing:
        return Filing(status=self.status, alertnames=sorted({a.labels.get("alertname", "") for a in self.alerts}),
                      alert_count=len(self.alerts), receiver=self.receiver)

    def message(self) -> Message:
        """Nothing rendered (the webhook carries data, not text): the severity and each alert's runbook."""
        runbooks = dict.fromkeys(a.annotations["runbook_url"] for a in self.alerts if a.annotations.get("runbook_url"))
        return Message(severity=self.commonLabels.get("severity"),
                       links=[Link(text="Runbook", url=url) for url in runbooks])

    def bounded(self, limit_bytes: int) -> Notification:
        """As stored: every annotation value (common and per alert) cut to `limit_bytes`."""
        alerts = [a.model_copy(update={"annotations": truncate_values(a.annotations, limit_bytes)})
                  for a in self.alerts]
        return self.model_copy(update={"alerts": alerts,
                                       "commonAnnotations": truncate_values(self.commonAnnotations, limit_bytes)})
