"""HTTP surface of the alert receiver: the hooks Alertmanager posts to (hooks.py: /hook/<channel> for its webhook,
/hook/<channel>/slack and /hook/<channel>/pagerduty for the rendered chat and pager notifications), /api/notifications,
the page, runbooks.

It only receives and shows. The runner serves it with the instructor console's routes added (stack/console), on
the same port; `python -m stack.receiver` serves the receiver alone."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse
from prometheus_client import CollectorRegistry, Counter

from stack import catalog
from stack.paths import DOCS_DIR, run_dir
from stack.receiver.formats import Received
from stack.receiver.hooks import Format, hook_path
from stack.receiver.pagerduty import PagerDutyEvent
from stack.receiver.payload import Notification
from stack.receiver.runbooks import Runbooks
from stack.receiver.slack import SlackMessage
from stack.receiver.store import NotificationStore
from stack.web import add_metrics_route, install_error_handlers, problem

CHANNEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
CHANNEL_HINTS = {
    "pager": "stands in for PagerDuty: critical alerts that wake someone up",
    "chat": "stands in for a Slack channel: warnings to look at in working hours",
    "watchdog": "dead man's switch: a steady heartbeat proves the alerting pipeline works",
}
PAGE = (Path(__file__).parent / "page.html").read_text()


def create_app(data_dir: Path | None = None, runbooks_dir: Path | None = None) -> FastAPI:
    data_dir = data_dir or Path(os.environ.get("RECEIVER_DATA_DIR", run_dir() / "receiver"))
    runbooks = Runbooks(runbooks_dir or Path(os.environ.get("RECEIVER_RUNBOOKS_DIR", DOCS_DIR / "runbooks")))
    store = NotificationStore(data_dir / "notifications.db")
    limits = catalog.load()
    registry = CollectorRegistry()
    received = Counter("alert_receiver_notifications", "Notifications received from Alertmanager.",
                       ["channel", "status"], registry=registry)
    for channel in CHANNEL_HINTS:
        for status in ("firing", "resolved"):
            received.labels(channel, status)

    app = FastAPI(title="Alert receiver", version="1.0")
    install_error_handlers(app, "receiver")
    add_metrics_route(app, registry)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    def keep(channel: str, kind: Format, notification: Received) -> int:
        if not CHANNEL_NAME.match(channel):
            raise HTTPException(404, problem(404, f"channel {channel!r} is not a valid name: use lower-case "
                                                     "letters, digits, '-' or '_' (at most 40), e.g. /hook/pager"))
        notification_id = store.add(channel, kind, notification.bounded(limits.max_annotation_bytes))
        received.labels(channel, notification.filing().status).inc()
        return notification_id

    @app.post(hook_path("{channel}", "webhook"))
    async def hook(channel: str, notification: Notification) -> dict:
        stored = keep(channel, "webhook", notification)
        return {"stored": stored, "channel": channel, "alerts": len(notification.alerts)}

    @app.post(hook_path("{channel}", "slack"))
    async def slack_hook(channel: str, message: SlackMessage) -> dict:
        # answered as Slack's API answers (`"ok": true`), for an Alertmanager that reads the body
        return {"ok": True, "stored": keep(channel, "slack", message), "channel": channel}

    @app.post(hook_path("{channel}", "pagerduty"), status_code=202)
    async def pagerduty_hook(channel: str, event: PagerDutyEvent) -> dict:
        stored = keep(channel, "pagerduty", event)
        return {"status": "success", "message": "Event processed", "dedup_key": event.dedup_key,
                "stored": stored, "channel": channel}

    @app.get("/api/notifications")
    async def notifications(
        channel: str | None = None,
        status: str | None = Query(None, pattern="^(firing|resolved)$"),
        alertname: str | None = None,
        limit: int = Query(200, ge=1, le=5000),
        before: int | None = Query(None, ge=1, description="only notifications with a smaller id (next_before)"),
    ) -> dict:
        page = store.list(channel=channel, status=status, alertname=alertname, limit=limit, before_id=before,
                          max_bytes=limits.notifications_page_bytes)
        return {"count": len(page.items), "notifications": page.items, "next_before": page.next_before,
                "page_bytes_limit": limits.notifications_page_bytes}

    @app.delete("/api/notifications")
    async def clear() -> dict:
        return {"deleted": store.clear()}

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return PAGE.replace("__CHANNEL_HINTS__", json.dumps(CHANNEL_HINTS))

    @app.get("/runbooks", response_class=HTMLResponse)
    async def runbook_index() -> str:
        return runbooks.index()

    @app.get("/runbooks/{name}", response_class=HTMLResponse)
    async def runbook(name: str) -> str:
        page_html = runbooks.page(name.removesuffix(".md"))  # links between the markdown pages end in .md
        if page_html is None:
            known = ", ".join(runbooks.names()) or "none"
            raise HTTPException(404, problem(404, f"no runbook named {name!r}; available: {known}"))
        return page_html

    return app
