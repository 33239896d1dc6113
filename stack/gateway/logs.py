"""JSON log lines, one per provider call, on stdout (the runner writes them to .run/logs/gateway.log).

A line logged inside a span carries its trace_id and span_id, so a log line leads to its trace and back."""

from __future__ import annotations

import hashlib
import logging
import sys

import structlog

from stack.tracing import add_trace_ids


def configure() -> None:
    logging.basicConfig(format="%(message)s", stream=sys.stdout, level=logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            add_trace_ids,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )


def user_hash(user_id: str, salt: str) -> str:
    """Logs carry a salted hash of the user id: joinable across lines, not readable as a person."""
    return hashlib.sha256(f"{salt}:{user_id}".encode()).hexdigest()[:16]


def get_logger() -> structlog.stdlib.BoundLogger:
    return structlog.get_logger("gateway")
