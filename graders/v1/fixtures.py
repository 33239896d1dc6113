"""Lab V1's fixed inputs and the instruments its checks use (the notebook imports them too, so students may use
them): the seed and salt, the cost-CSV columns, the in-process simulated provider, seeded calls, and helpers that
build, capture and read log records, provider answers and cost CSVs."""

from __future__ import annotations

import csv
import logging
import random
from datetime import datetime, timezone
from pathlib import Path

from fastapi.testclient import TestClient

from stack import catalog
from stack.llmsim.app import create_app as create_llmsim
from stack.llmsim.settings import Settings as LlmsimSettings

SEED = 2026                 # every random choice in this lab derives from it: same data, same failures, every run
SALT = "v1-lab-salt"        # in production: a secret from the environment, rotated, never in the repository

# One row per provider call (exercise 3 writes these; exercises 4-5 analyse them).
CSV_COLUMNS = ["request_id", "timestamp", "user_id", "model", "input_tokens", "output_tokens", "cost_usd",
               "latency_ms", "status", "http_status", "error_type"]

USERS = ["alice@bank.example", "bob@bank.example", "carol@bank.example", "dan@bank.example",
         "erin@bank.example", "fraud-batch@bank.example"]

# When the checks' log records were "created", so checks do not depend on the clock.
FIXED_TIME = datetime(2026, 5, 4, 9, 30, 15, 250000, tzinfo=timezone.utc)


def simulated_provider(seed: int = SEED, *, error_rate: float = 0.0, rate_limit_rate: float = 0.0) -> TestClient:
    """The course's OpenAI-compatible simulator, in-process and without latency. Faults are drawn from `seed`,
    so the same sequence of calls fails the same way on every run (POST /faults switches them on)."""
    http = TestClient(create_llmsim(LlmsimSettings(seed=seed, latency_scale=0.0)))
    if error_rate or rate_limit_rate:
        answer = http.post("/faults", json={"error_rate": error_rate, "rate_limit_rate": rate_limit_rate,
                                            "duration_seconds": 3600})
        answer.raise_for_status()
    return http


def lab_calls(n: int, seed: int = SEED) -> list[tuple[str, str, str]]:
    """n seeded (user_id, model, prompt) triples to send through a client."""
    rng = random.Random(seed)
    models = catalog.load().model_names
    return [(rng.choice(USERS), rng.choice(models),
             f"Summarise support ticket #{rng.randint(1000, 9999)} in {rng.randint(2, 6)} bullet points.")
            for _ in range(n)]


def make_log_record(message: str, *args: object, level: int = logging.INFO, extra: dict | None = None,
                    exc_info: object = None, name: str = "llm.client",
                    created: datetime = FIXED_TIME) -> logging.LogRecord:
    """A LogRecord exactly as `logging.getLogger(name).info(message, *args, extra=extra)` would build it,
    created at a fixed moment so checks do not depend on the clock."""
    record = logging.getLogger(name).makeRecord(name, level, "lab.py", 1, message, args, exc_info, extra=extra)
    record.created = created.timestamp()
    record.msecs = (record.created - int(record.created)) * 1000
    return record


class CaptureHandler(logging.Handler):
    """Keeps the LogRecords it receives (unformatted), so a check can read their fields."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def capture_logger(name: str) -> tuple[logging.Logger, CaptureHandler]:
    """A logger of its own (no propagation) whose records a CaptureHandler keeps."""
    logger = logging.getLogger(name)
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = CaptureHandler()
    logger.addHandler(handler)
    return logger, handler


class RecordingHTTP:
    """Passes POSTs on to a client and remembers each answer (status code, JSON body): the truth for the checks."""

    def __init__(self, http: TestClient) -> None:
        self.http = http
        self.answers: list[tuple[int, dict]] = []

    def post(self, url: str, **kwargs: object):  # noqa: ANN201 - whatever the wrapped client returns
        response = self.http.post(url, **kwargs)
        self.answers.append((response.status_code, response.json()))
        return response


def read_cost_csv(path: str | Path) -> tuple[list[str], list[dict]]:
    """The header and the rows of a cost CSV, as strings."""
    with open(path, newline="") as source:
        reader = csv.DictReader(source)
        return list(reader.fieldnames or []), list(reader)
