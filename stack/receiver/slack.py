"""The Slack message Alertmanager's `slack_configs` posts (the `chat` channel): one attachment whose title, text,
fields and buttons Alertmanager rendered from stack/alertmanager/templates/notifications.tmpl."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from stack.receiver import headline
from stack.receiver.message import Filing, Link, Message
from stack.receiver.truncate import truncate_text

SEVERITY_FIELD = "Severity"


class SlackField(BaseModel):
    title: str
    value: str
    short: bool = False


class SlackAction(BaseModel):
    type: str
    text: str
    url: str = ""
    style: str = ""
    name: str = ""
    value: str = ""


class SlackAttachment(BaseModel):
    title: str
    title_link: str = ""
    pretext: str = ""
    text: str = ""
    fallback: str = ""
    callback_id: str = ""
    fields: list[SlackField] = Field(default_factory=list, max_length=100)
    actions: list[SlackAction] = Field(default_factory=list, max_length=100)
    footer: str = ""
    color: str = ""
    mrkdwn_in: list[str] = Field(default_factory=list, max_length=10)

    @field_validator("title")
    @classmethod
    def _headline(cls, title: str) -> str:
        headline.parse(title)
        return title


class SlackMessage(BaseModel):
    channel: str = ""
    username: str = ""
    icon_emoji: str = ""
    icon_url: str = ""
    link_names: bool = False
    text: str = ""
    attachments: list[SlackAttachment] = Field(min_length=1, max_length=100)

    def filing(self) -> Filing:
        first = headline.parse(self.attachments[0].title)
        return Filing(status=first.status, alertnames=[first.alertname], alert_count=first.alert_count,
                      receiver=self.channel.lstrip("#") or None)

    def message(self) -> Message:
        attachment = self.attachments[0]
        severity = next((f.value for f in attachment.fields if f.title == SEVERITY_FIELD), None)
        return Message(title=attachment.title, text=attachment.text, severity=severity,
                       links=[Link(text=a.text, url=a.url) for a in attachment.actions if a.url])

    def bounded(self, limit_bytes: int) -> SlackMessage:
        """As stored: every text of every attachment cut to `limit_bytes`."""
        def cut(attachment: SlackAttachment) -> SlackAttachment:
            texts = {name: truncate_text(getattr(attachment, name), limit_bytes)
                     for name in ("title", "pretext", "text", "fallback", "footer")}
            fields = [f.model_copy(update={"value": truncate_text(f.value, limit_bytes)}) for f in attachment.fields]
            return attachment.model_copy(update={**texts, "fields": fields})

        return self.model_copy(update={"text": truncate_text(self.text, limit_bytes),
                                       "attachments": [cut(a) for a in self.attachments]})
