"""The PagerDuty event (Events API v2) Alertmanager's `pagerduty_configs` posts (the `pager` channel): Alertmanager
rendered its summary, severity and links from stack/alertmanager/templates/notifications.tmpl, and its dedup key is
a hash of the alert group's key, so every event of one incident carries the same one."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stack.receiver import headline
from stack.receiver.message import Filing, Link, Message
from stack.receiver.truncate import truncate_text, truncate_values


def _detail(name: str, value: str) -> str:
    return f"{name}:\n{value}" if "\n" in value else f"{name}: {value}"


class PagerDutyLink(BaseModel):
    href: str
    text: str = ""


class PagerDutyImage(BaseModel):
    src: str
    href: str = ""
    alt: str = ""


class PagerDutyPayload(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    summary: str
    source: str = Field(min_length=1)
    severity: Literal["critical", "error", "warning", "info"]
    timestamp: str | None = None
    component: str = ""
    group: str = ""
    class_: str = Field("", alias="class")
    custom_details: dict[str, str] = Field(default_factory=dict)

    @field_validator("summary")
    @classmethod
    def _headline(cls, summary: str) -> str:
        headline.parse(summary)
        return summary


class PagerDutyEvent(BaseModel):
    routing_key: str = Field(min_length=1)
    event_action: Literal["trigger", "resolve"]
    dedup_key: str = Field(min_length=1, max_length=255)
    payload: PagerDutyPayload
    client: str = ""
    client_url: str = ""
    links: list[PagerDutyLink] = Field(default_factory=list, max_length=100)
    images: list[PagerDutyImage] = Field(default_factory=list, max_length=100)

    def filing(self) -> Filing:
        first = headline.parse(self.payload.summary)
        return Filing(status="firing" if self.event_action == "trigger" else "resolved",
                      alertnames=[first.alertname], alert_count=first.alert_count)

    def message(self) -> Message:
        """The summary as title; the custom details as text, as PagerDuty lists them under the incident."""
        details = [_detail(name, value.strip()) for name, value in self.payload.custom_details.items() if value.strip()]
        return Message(title=self.payload.summary, text="\n".join(details) or None, severity=self.payload.severity,
                       dedup_key=self.dedup_key,
                       links=[Link(text=link.text or link.href, url=link.href) for link in self.links])

    def bounded(self, limit_bytes: int) -> PagerDutyEvent:
        """As stored: the summary and every custom detail cut to `limit_bytes`."""
        payload = self.payload.model_copy(update={
            "summary": truncate_text(self.payload.summary, limit_bytes),
            "custom_details": truncate_values(self.payload.custom_details, limit_bytes)})
        return self.model_copy(update={"payload": payload})
