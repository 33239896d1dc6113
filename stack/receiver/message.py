"""What the receiver keeps of any notification, whatever its format: how it files it (`Filing`) and what it shows of
it on its page and in /api/notifications (`Message`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Filing(BaseModel):
    status: Literal["firing", "resolved"]
    alertnames: list[str]
    alert_count: int
    receiver: str | None = None  # the Alertmanager receiver, when the format says; else the channel


class Link(BaseModel):
    text: str
    url: str


class Message(BaseModel):
    title: str | None = None  # chat and pager: the rendered headline; a plain webhook has none
    text: str | None = None
    severity: str | None = None
    links: list[Link] = []  # every format carries at least the runbook's
    dedup_key: str | None = None  # pager only: the same for every event of one alert group
