"""Lab V1's reference day (exercises 4-6): one day of cost records (the CSV of exercise 3) and the JSON log lines of
the same requests, merged from two log files. Generated from the seed, the salt and the catalog, so every run sees
the same day, with the traps of real data: failed calls, a runaway batch request, request ids that prefix each
other, a traceback and a truncated line among the JSON, and two files concatenated out of time order."""

from __future__ import annotations

import io
import json
import random
from datetime import datetime, timedelta, timezone

import pandas as pd

from graders.v1.fixtures import CSV_COLUMNS, SALT, SEED, USERS
from stack import catalog
from stack.gateway.logs import user_hash as gateway_user_hash

DAY_START = datetime(2026, 5, 4, 0, 0, tzinfo=timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def reference_day(seed: int = SEED, n: int = 400, salt: str = SALT) -> tuple[pd.DataFrame, list[str]]:
    """(the day's cost records as `pd.read_csv` reads the CSV, the day's log lines); a fresh copy on every call."""
    prices = catalog.load()
    rng = random.Random(seed)
    by_price = sorted(prices.model_names, key=lambda name: prices.models[name].output_price_per_million)
    model_weights = [2 ** (len(by_price) - i) for i in range(len(by_price))]   # cheap models are used most
    user_weights = [30, 25, 20, 10, 5, 10]
    rows, http_lines, llm_lines = [], [], []
    moment = DAY_START
    for number in range(1, n + 1):
        moment += timedelta(seconds=rng.expovariate(1 / 210))
        user = rng.choices(USERS, user_weights)[0]
        model_name = rng.choices(by_price, model_weights)[0]
        input_tokens = rng.randint(40, 3000)
        runaway = number == 37   # a batch job sends a maximal prompt to the most expensive model
        if runaway:
            user, model_name, input_tokens = "fraud-batch@bank.example", by_price[-1], prices.max_prompt_chars // 4
        model = prices.models[model_name]
        output_tokens = model.max_output_tokens if runaway else rng.randint(model.min_output_tokens,
                                                                           model.max_output_tokens)
        latency_ms = round(1000 * (model.latency.base_seconds + model.latency.seconds_per_output_token
                                   * output_tokens) * (1 + model.latency.jitter * rng.uniform(-1, 1)), 1)
        roll = 1.0 if runaway else rng.random()
        if roll < 0.05:
            http_status, error_type, latency_ms = 429, "rate_limited", round(rng.uniform(5, 40), 1)
        elif roll < 0.08:
            http_status, error_type = 500, "server_error"
        else:
            http_status, error_type = 200, ""
        ok = http_status == 200
        if not ok:
            output_tokens_billed, input_tokens_billed, cost = 0, 0, 0.0
        else:
            input_tokens_billed, output_tokens_billed = input_tokens, output_tokens
            cost = catalog.cost_usd(model_name, input_tokens, output_tokens)
        request_id = f"req-{number}"
        rows.append({"request_id": request_id, "timestamp": _iso(moment), "user_id": user, "model": model_name,
                     "input_tokens": input_tokens_billed, "output_tokens": output_tokens_billed, "cost_usd": cost,
                     "latency_ms": latency_ms, "status": "success" if ok else "error", "http_status": http_status,
                     "error_type": error_type})
        hashed = gateway_user_hash(user, salt)
        http_lines.append({"timestamp": _iso(moment), "level": "INFO", "logger": "app.http",
                           "message": "request_received", "request_id": request_id, "user_hash": hashed,
                           "model": model_name, "prompt_chars": input_tokens * 4})
        done = moment + timedelta(milliseconds=latency_ms)
        llm_lines.append({"timestamp": _iso(done), "level": "INFO" if ok else "WARNING", "logger": "app.llm",
                          "message": "llm_call", "request_id": request_id, "user_hash": hashed,
                          "model": model_name, "input_tokens": input_tokens_billed,
                          "output_tokens": output_tokens_billed, "cost_usd": cost, "latency_ms": latency_ms,
                          "status": "success" if ok else "error", "http_status": http_status,
                          "error_type": error_type or None})
        http_lines.append({"timestamp": _iso(done + timedelta(milliseconds=2)), "level": "INFO" if ok else "ERROR",
                           "logger": "app.http", "message": "request_completed" if ok else "request_failed",
                           "request_id": request_id, "status_code": 200 if ok else 502})
        if number % 97 == 0:   # the dedup cache points at an earlier, identical prompt
            http_lines.append({"timestamp": _iso(moment), "level": "INFO", "logger": "app.cache",
                               "message": "duplicate_prompt", "request_id": request_id,
                               "duplicate_of": "req-37"})
    records = pd.DataFrame(rows, columns=CSV_COLUMNS)
    records = pd.read_csv(io.StringIO(records.to_csv(index=False)))   # exactly what reading the CSV gives you
    lines = [json.dumps(event) for event in http_lines]
    lines[120:120] = ["Traceback (most recent call last):", '  File "app/http.py", line 88, in handle',
                      "ConnectionResetError: [Errno 104] Connection reset by peer"]
    lines[300:300] = [json.dumps(http_lines[300])[:57], ""]   # a line cut short when the disk filled up
    lines.insert(0, json.dumps({"timestamp": _iso(DAY_START), "level": "INFO", "logger": "app",
                                "message": "worker_started", "pid": 4242}))
    lines += [json.dumps(event) for event in llm_lines]   # the second log file, appended after the first
    return records, lines
