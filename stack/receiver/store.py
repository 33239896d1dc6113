"""Every notification the receiver got, in SQLite, newest first when listed."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from stack.private_files import create_private
from stack.receiver.formats import Received, load
from stack.receiver.hooks import Format

SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at REAL NOT NULL,
    channel     TEXT NOT NULL,
    receiver    TEXT NOT NULL,
    status      TEXT NOT NULL,
    alertnames  TEXT NOT NULL,
    alert_count INTEGER NOT NULL,
    payload     TEXT NOT NULL,
    format      TEXT NOT NULL DEFAULT 'webhook'
);
CREATE INDEX IF NOT EXISTS notifications_by_channel ON notifications (channel, id);
"""


@dataclass(frozen=True)
class Page:
    items: list[dict]
    next_before: int | None  # pass as `before` for the next page; None when this page holds the oldest


class NotificationStore:
    def __init__(self, path: Path) -> None:
        create_private(path)  # raw user ids / alert contents: readable by the stack's user only
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        if "format" not in {row[1] for row in self._db.execute("PRAGMA table_info(notifications)")}:
            # a store from before the chat and pager formats: everything in it came as a webhook
            self._db.execute("ALTER TABLE notifications ADD COLUMN format TEXT NOT NULL DEFAULT 'webhook'")

    def add(self, channel: str, kind: Format, notification: Received) -> int:
        filing = notification.filing()
        cursor = self._db.execute(
            "INSERT INTO notifications (received_at, channel, receiver, status, alertnames, alert_count, payload,"
            " format) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (time.time(), channel, filing.receiver or channel, filing.status, ",".join(filing.alertnames),
             filing.alert_count, notification.model_dump_json(by_alias=True), kind),
        )
        return int(cursor.lastrowid or 0)

    def list(self, channel: str | None = None, status: str | None = None, alertname: str | None = None,
             limit: int = 200, before_id: int | None = None, max_bytes: int | None = None) -> Page:
        """Newest first, at most `limit` notifications older than `before_id`, and no more than `max_bytes` of
        payload and what is shown of it (at least one notification, however large: texts are bounded when stored)."""
        query = ("SELECT id, received_at, channel, receiver, status, alertnames, alert_count, payload, format"
                 " FROM notifications")
        clauses: list[str] = []
        params: list[object] = []
        if before_id is not None:
            clauses.append("id < ?")
            params.append(before_id)
        for column, value in (("channel", channel), ("status", status)):
            if value:
                clauses.append(f"{column} = ?")
                params.append(value)
        if alertname:
            clauses.append("(',' || alertnames || ',') LIKE ?")
            params.append(f"%,{alertname},%")
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        query += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        items: list[dict] = []
        size = 0
        full = False
        for r in self._db.execute(query, params):
            payload = json.loads(r[7])
            message = load(r[8], payload).message().model_dump(mode="json")
            size += len(r[7]) + len(json.dumps(message))
            if items and max_bytes is not None and size > max_bytes:
                full = True
                break
            items.append({"id": r[0], "received_at": r[1], "channel": r[2], "receiver": r[3], "status": r[4],
                          "alertnames": r[5].split(",") if r[5] else [], "alert_count": r[6], "format": r[8],
                          "message": message, "payload": payload})
        more = full or len(items) == limit
        return Page(items, next_before=items[-1]["id"] if more and items else None)

    def channels(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT DISTINCT channel FROM notifications ORDER BY channel")]

    def clear(self) -> int:
        return int(self._db.execute("DELETE FROM notifications").rowcount)
