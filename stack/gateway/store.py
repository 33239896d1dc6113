"""The attribution store: one SQLite row per provider call, for chargeback and cost analysis."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from stack.private_files import create_private

SCHEMA = """
CREATE TABLE IF NOT EXISTS llm_calls (
    request_id       TEXT    NOT NULL,
    step             TEXT    NOT NULL,
    ts               REAL    NOT NULL,
    user_id          TEXT    NOT NULL,
    department       TEXT    NOT NULL,
    application      TEXT    NOT NULL,
    model            TEXT    NOT NULL,
    input_tokens     INTEGER NOT NULL,
    output_tokens    INTEGER NOT NULL,
    cost_usd         REAL    NOT NULL,
    duration_seconds REAL    NOT NULL,
    status           TEXT    NOT NULL,
    error_type       TEXT,
    synthetic        INTEGER NOT NULL,
    cached_input_tokens INTEGER NOT NULL DEFAULT 0,
    streamed         INTEGER NOT NULL DEFAULT 0,
    time_to_first_token_seconds REAL,
    finish_reason    TEXT,
    cache_hit        INTEGER NOT NULL DEFAULT 0,
    saved_cost_usd   REAL    NOT NULL DEFAULT 0,
    requested_model  TEXT,
    PRIMARY KEY (request_id, step)
);
CREATE INDEX IF NOT EXISTS llm_calls_by_time ON llm_calls (ts);
CREATE INDEX IF NOT EXISTS llm_calls_by_department ON llm_calls (department, ts);
CREATE INDEX IF NOT EXISTS llm_calls_by_application ON llm_calls (application, ts);
CREATE INDEX IF NOT EXISTS llm_calls_by_user ON llm_calls (user_id, ts);
"""


# Answer quality, joinable with llm_calls on request_id: the evaluators' scores of each answered call, and the
# caller's rating of the request's answer (one per request).
QUALITY_SCHEMA = """
CREATE TABLE IF NOT EXISTS llm_evaluations (
    request_id TEXT NOT NULL,
    step       TEXT NOT NULL,
    evaluator  TEXT NOT NULL,
    score      REAL NOT NULL,
    label      TEXT NOT NULL,
    ts         REAL NOT NULL,
    PRIMARY KEY (request_id, step, evaluator)
);
CREATE TABLE IF NOT EXISTS llm_feedback (
    request_id TEXT PRIMARY KEY,
    rating     TEXT NOT NULL,
    comment    TEXT,
    ts         REAL NOT NULL
);
"""


@dataclass(frozen=True)
class CallRecord:
    request_id: str
    step: str
    ts: float
    user_id: str
    department: str
    application: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    duration_seconds: float
    status: str
    error_type: str | None
    synthetic: bool
    cached_input_tokens: int = 0  # of input_tokens, billed at the cached-input price
    streamed: bool = False
    time_to_first_token_seconds: float | None = None  # streamed calls that produced a first chunk
    finish_reason: str | None = None  # stop, length, or cancelled (the client hung up mid-stream); None on error
    cache_hit: bool = False  # answered from the gateway's response cache: tokens and cost_usd 0
    saved_cost_usd: float = 0.0  # on a cache hit, what the provider call would have cost
    requested_model: str | None = None  # the model asked for, when `model` (the one called) is a fallback of it


# Columns added since the first release, with their definitions: an older store gains them when the gateway opens it.
_ADDED_COLUMNS = {
    "cached_input_tokens": "INTEGER NOT NULL DEFAULT 0",
    "streamed": "INTEGER NOT NULL DEFAULT 0",
    "time_to_first_token_seconds": "REAL",
    "finish_reason": "TEXT",
    "cache_hit": "INTEGER NOT NULL DEFAULT 0",
    "saved_cost_usd": "REAL NOT NULL DEFAULT 0",
    "requested_model": "TEXT",
}

_COLUMNS = [f.name for f in fields(CallRecord)]
_INSERT = f"INSERT INTO llm_calls ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"


class StoreUnavailable(Exception):
    """The attribution store refused a row (read-only, locked, disk full): the call cannot be booked."""

    def __init__(self, path: Path, error: sqlite3.Error) -> None:
        super().__init__(f"attribution store {path} refused the row ({type(error).__name__}: {error})")
        self.path = path


class FeedbackExists(Exception):
    """The request already has its rating."""


class AttributionStore:
    def __init__(self, path: Path) -> None:
        create_private(path)  # raw user ids / alert contents: readable by the stack's user only
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)
        self._db.executescript(QUALITY_SCHEMA)
        present = {row[1] for row in self._db.execute("PRAGMA table_info(llm_calls)")}
        for column, definition in _ADDED_COLUMNS.items():
            if column not in present:
                self._db.execute(f"ALTER TABLE llm_calls ADD COLUMN {column} {definition}")

    def add(self, record: CallRecord) -> None:
        try:
            self._db.execute(_INSERT, astuple(record))
        except sqlite3.Error as error:
            raise StoreUnavailable(self.path, error) from error

    def add_evaluations(self, request_id: str, step: str, scores: list[tuple[str, float, str]]) -> None:
        """(evaluator, score, label) of one answered call. StoreUnavailable when refused."""
        now = time.time()
        try:
            self._db.executemany("INSERT OR REPLACE INTO llm_evaluations VALUES (?, ?, ?, ?, ?, ?)",
                                 [(request_id, step, name, score, label, now) for name, score, label in scores])
        except sqlite3.Error as error:
            raise StoreUnavailable(self.path, error) from error

    def served_model(self, request_id: str) -> str | None:
        """The model that answered the request (its successful call's; the last step's for a workflow), or None when
        the store holds no answered call with that id."""
        row = self._db.execute("SELECT model FROM llm_calls WHERE request_id = ? AND status = 'success' "
                               "ORDER BY ts DESC LIMIT 1", (request_id,)).fetchone()
        return None if row is None else str(row[0])

    def add_feedback(self, request_id: str, rating: str, comment: str | None) -> None:
        """FeedbackExists when the request already has a rating; StoreUnavailable when refused."""
        try:
            self._db.execute("INSERT INTO llm_feedback VALUES (?, ?, ?, ?)", (request_id, rating, comment, time.time()))
        except sqlite3.IntegrityError as error:
            raise FeedbackExists(request_id) from error
        except sqlite3.Error as error:
            raise StoreUnavailable(self.path, error) from error

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0])

    def spend_by_department(self, since_ts: float) -> dict[str, float]:
        """USD booked per department (as the caller named it) in rows from `since_ts` (epoch seconds) on."""
        rows = self._db.execute("SELECT department, SUM(cost_usd) FROM llm_calls WHERE ts >= ? GROUP BY department",
                                (since_ts,))
        return {department: float(total) for department, total in rows}

    def writable(self) -> bool:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("ROLLBACK")
            return True
        except sqlite3.Error:
            return False

    def health(self, busy_timeout_ms: int = 500) -> tuple[bool, int]:
        """(writable, rows) on the gateway's own connection, waiting at most `busy_timeout_ms` for a lock."""
        self._db.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        try:
            return self.writable(), self.count()
        finally:
            self._db.execute("PRAGMA busy_timeout=5000")

    def close(self) -> None:
        self._db.close()
