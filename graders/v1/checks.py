"""Lab V1's checks, one per graded exercise. Each takes what the student's exercise cell defined; `hidden=True` (the
notebook's hidden-test block, run by `make grade`) adds the edge cases the exercise text describes. Expected values
come from the course's own code (the catalog's prices, the gateway's user hash) or are computed row by row, never with
the code under test."""

from __future__ import annotations

import json
import logging
import math
import sys
import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from graders.labcheck import expect, expect_close, expect_equal, expect_type, reports_stubs
from graders.v1.fixtures import (CSV_COLUMNS, FIXED_TIME, SALT, SEED, RecordingHTTP, capture_logger, lab_calls,
                                 make_log_record, read_cost_csv, simulated_provider)
from graders.v1.gateway_day import GatewayDayTruth, gateway_day
from graders.v1.reference import reference_day
from graders.v1.streams import KEEP_ALIVE_SECONDS, PacedProvider, ReplayedStream
from stack import catalog
from stack.catalog import UnknownModelError
from stack.gateway.logs import user_hash as gateway_user_hash

COST_BY_COLUMNS = ["requests", "errors", "input_tokens", "output_tokens", "cost_usd"]


# --- exercise 1: a JSON formatter that hashes the user id --------------------------------------------------------

@reports_stubs
def check_json_formatter(hash_user: Callable[[str, str], str], formatter_class: type[logging.Formatter],
                         hidden: bool = False) -> None:
    alice = "alice@bank.example"
    hashed = hash_user(alice, SALT)
    expect_type(hashed, str, "hash_user(...) returns the hash as text")
    expect_equal(hashed, gateway_user_hash(alice, SALT), f"hash_user({alice!r}, SALT)",
                 hint='sha256(f"{salt}:{user_id}".encode()).hexdigest()[:16], the recipe of stack/gateway/logs.py')
    expect(hash_user(alice, "another-salt") != hashed, "the hash must change with the salt",
           hint="mix the salt into what you hash, or a list of known e-mail addresses reverses it")

    formatter = formatter_class(SALT)
    line = formatter.format(make_log_record("llm_call", extra={"user_id": alice, "model": "sim-fast",
                                                               "cost_usd": 0.000123, "input_tokens": 420}))
    expect_type(line, str, "format(record) returns the JSON text of the line")
    expect("\n" not in line, "a log line must be ONE line: the formatted record contains a newline",
           hint="json.dumps(entry) without indent= escapes newlines inside values")
    try:
        entry = json.loads(line)
    except ValueError as error:
        entry = None
        expect(False, f"format(record) must return valid JSON, got {line[:80]!r} ({error})",
               hint="return json.dumps(entry)")
    expect_type(entry, dict, "the log line is a JSON object")
    expect(alice not in line, f"the raw user id appears in the log line: {line[:150]}",
           hint="replace the user_id field with user_hash = hash_user(user_id, salt); "
                "logs must not say who the user is")
    expect("user_id" not in entry, "the log line must not have a user_id key (only user_hash)")
    expect_equal(entry.get("user_hash"), gateway_user_hash(alice, SALT), "the user_hash field",
                 hint="user_hash = hash_user(record.user_id, self.salt)")
    expect_equal(entry.get("level"), "INFO", "the level field", hint="record.levelname")
    expect_equal(entry.get("logger"), "llm.client", "the logger field", hint="record.name")
    expect_equal(entry.get("message"), "llm_call", "the message field", hint="record.getMessage()")
    for key, value in {"model": "sim-fast", "cost_usd": 0.000123, "input_tokens": 420}.items():
        expect_equal(entry.get(key), value, f"the extra field {key!r}",
                     hint="every record attribute that is not in LOGRECORD_ATTRS came from extra= and becomes a key")
    _check_timestamp(entry.get("timestamp"))
    _check_exception_field(formatter)
    if hidden:
        _check_formatter_edge_cases(formatter, formatter_class, entry)


def _check_timestamp(stamp: Any) -> None:
    try:
        moment = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        moment = None
    expect(moment is not None, f"the timestamp must be ISO-8601, got {stamp!r}",
           hint="datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat()")
    expect(moment.tzinfo is not None and moment.utcoffset() == timedelta(0),
           f"the timestamp must be UTC with an explicit offset (like ...+00:00), got {stamp!r}",
           hint="datetime.fromtimestamp(record.created, tz=timezone.utc); a naive time (no offset) is ambiguous")
    expect(abs(moment - FIXED_TIME) < timedelta(milliseconds=1),
           f"the timestamp must say when the event happened ({FIXED_TIME.isoformat()}), got {stamp!r}",
           hint="use record.created, not the time the formatter runs")


def _check_exception_field(formatter: logging.Formatter) -> None:
    try:
        raise ValueError("provider answered 500")
    except ValueError:
        failed = make_log_record("llm_call failed", level=logging.ERROR, exc_info=sys.exc_info())
    error_entry = json.loads(formatter.format(failed))
    expect_equal(error_entry.get("level"), "ERROR", "the level of an error record")
    expect("ValueError: provider answered 500" in str(error_entry.get("exception", "")),
           "a record with an exception needs an 'exception' field with the traceback text, "
           f"got {error_entry.get('exception')!r}",
           hint="if record.exc_info: entry['exception'] = self.formatException(record.exc_info)")


def _check_formatter_edge_cases(formatter: logging.Formatter, formatter_class: type[logging.Formatter],
                                entry: dict) -> None:
    alice = "alice@bank.example"
    extra_keys = {"model", "cost_usd", "input_tokens", "user_hash"}
    standard = {"timestamp", "level", "logger", "message"}
    unexpected = sorted(set(entry) - standard - extra_keys)
    expect(not unexpected,
           f"only the extra= fields are added to the line, found standard LogRecord attributes {unexpected}",
           hint="skip attributes listed in LOGRECORD_ATTRS (pathname, lineno, args, ...)")
    plain = json.loads(formatter.format(make_log_record("cache warm", extra={"entries": 3})))
    expect("user_hash" not in plain and plain.get("entries") == 3,
           f"a record without user_id gets no user_hash and keeps its extras, got {plain}")
    leaky = formatter.format(make_log_record("call by %s took %d ms", "bob@bank.example", 812,
                                             level=logging.WARNING, extra={"user_id": "bob@bank.example"}))
    expect("bob@bank.example" not in leaky,
           f"the raw user id appears in the message text of the line: {leaky[:160]}",
           hint="after record.getMessage(), replace the raw id in the message with its hash")
    leaky_entry = json.loads(leaky)
    expect_equal(leaky_entry.get("message"), f"call by {gateway_user_hash('bob@bank.example', SALT)} took 812 ms",
                 "the message with %s arguments filled in and the user id replaced by its hash")
    expect_equal(leaky_entry.get("level"), "WARNING", "the level of a warning record")
    odd = formatter.format(make_log_record("odd values", extra={"when": FIXED_TIME, "where": Path("/tmp/x")}))
    odd_entry = json.loads(odd)
    expect_equal(odd_entry.get("where"), "/tmp/x", "a value JSON cannot encode (a Path) is written as its str()",
                 hint="json.dumps(entry, default=str): a log call must never crash the request")
    expect_equal(formatter_class("pepper").format(make_log_record("x", extra={"user_id": alice})).count(
        gateway_user_hash(alice, "pepper")), 1, "each formatter uses its own salt")


# --- exercise 2: the cost of one request ---------------------------------------------------------------------------

def _cost_hint(seen: Any, expected: float) -> str:
    try:
        ratio = float(seen) / expected
    except (TypeError, ValueError, ZeroDivisionError):
        return "return a float number of dollars"
    if abs(ratio - 1000) < 1:
        return "prices are per MILLION tokens: divide by 1_000_000, not by 1_000"
    if abs(ratio - 1_000_000) < 1000:
        return "prices are per million tokens: divide by 1_000_000"
    return "(input_tokens * PRICES[model]['input'] + output_tokens * PRICES[model]['output']) / 1_000_000"


@reports_stubs
def check_request_cost(request_cost: Callable[..., float], hidden: bool = False) -> None:
    models = catalog.load().model_names
    for model in models:
        seen = request_cost(model, 1200, 300)
        expected = catalog.cost_usd(model, 1200, 300)
        expect_close(seen, expected, f"cost of {model} for 1200 input + 300 output tokens", rel=1e-9,
                     hint=_cost_hint(seen, expected))
    expect_close(request_cost(models[0], 0, 0), 0.0, "cost of a call with no tokens")

    returned, raised = None, None
    try:
        returned = request_cost("gpt-17", 1000, 1000)
    except UnknownModelError as error:
        raised = error
    except Exception as error:  # noqa: BLE001 - the message is for the student
        expect(False, f"an unknown model must raise UnknownModelError, got {type(error).__name__}: {error}",
               hint="check `model in prices` first and raise UnknownModelError(f'unknown model {model!r} ...')")
    expect(raised is not None, f"an unknown model must raise UnknownModelError, not return {returned!r}",
           hint="a price of 0 (or another model's price) hides real spend until the invoice arrives")
    expect("gpt-17" in str(raised), f"the error message should name the unknown model, got {str(raised)!r}")
    if hidden:
        _check_request_cost_edge_cases(request_cost)


def _check_request_cost_edge_cases(request_cost: Callable[..., float]) -> None:
    tiny = {"tiny": {"input": 1.0, "output": 3.0}}
    try:
        seen = request_cost("tiny", 2_000_000, 1_000_000, prices=tiny)
    except KeyError as error:
        seen = f"{type(error).__name__}: {error}"
    expect_close(seen, 5.0,
                 "cost with a custom price table {'tiny': {'input': 1.0, 'output': 3.0}} for 2M in + 1M out",
                 rel=1e-9, hint="use the prices argument, not PRICES or the catalog directly")
    fast = catalog.load().model_names[0]
    price = catalog.load().models[fast]
    expect_close(request_cost(fast, 1_000_000, 0), price.input_price_per_million,
                 f"one million input tokens of {fast}", rel=1e-9, hint="input tokens use the input price")
    expect_close(request_cost(fast, 0, 1_000_000), price.output_price_per_million,
                 f"one million output tokens of {fast}", rel=1e-9, hint="output tokens use the output price")
    expect_type(request_cost(fast, 7, 11), float, "the cost is a float")
    for name in (fast.upper(), "", "sim"):
        try:
            value = request_cost(name, 10, 10)
        except UnknownModelError:
            continue
        except Exception as error:  # noqa: BLE001 - the message is for the student
            expect(False, f"request_cost({name!r}, ...) must raise UnknownModelError, got {type(error).__name__}")
        expect(False,
               f"request_cost({name!r}, ...) must raise UnknownModelError (names match exactly), returned {value!r}")
    for counts in ((-1, 10), (10, -1)):
        try:
            value = request_cost(fast, *counts)
        except ValueError:
            continue
        expect(False, f"negative token counts {counts} must raise ValueError, returned {value!r}")


# --- exercise 3: a client that logs and records every call ---------------------------------------------------------

@reports_stubs
def check_logging_client(client_class: type, provider_error: type[Exception], hidden: bool = False) -> int:
    """20 calls against a provider that fails some of them (seeded: the same calls fail on every run). Returns how
    many of them failed."""
    with tempfile.TemporaryDirectory(prefix="v1-ex3-") as folder:
        check_dir = Path(folder)
        rows = _check_twenty_calls(client_class, provider_error, check_dir)
        if hidden:
            _check_client_edge_cases(client_class, provider_error, check_dir, rows)
    return sum(row["status"] == "error" for row in rows)


def _check_twenty_calls(client_class: type, provider_error: type[Exception], check_dir: Path) -> list[dict]:
    provider = RecordingHTTP(simulated_provider(SEED, error_rate=0.25, rate_limit_rate=0.15))
    check_logger, captured = capture_logger("v1.check.ex3")
    client = client_class(provider, check_logger, check_dir / "costs.csv", cost_fn=catalog.cost_usd)
    calls = lab_calls(20, seed=SEED + 3)
    raised = []
    for user, model, prompt in calls:
        try:
            client.chat(user, model, prompt)
        except provider_error as error:
            raised.append(error)
    answers = provider.answers
    failures = [status for status, _ in answers if status != 200]
    expect_equal(len(answers), 20, "provider calls made for 20 chat() calls",
                 hint='one self.http.post("/v1/chat/completions", json=payload) per chat()')
    expect(len(failures) >= 3, "the seeded provider should have failed some calls (did you change the setup cell?)")
    expect((check_dir / "costs.csv").exists(), "chat() must append a row to csv_path (the file does not exist)")
    header, rows = read_cost_csv(check_dir / "costs.csv")
    expect_equal(header, CSV_COLUMNS, "the CSV header",
                 hint="csv.DictWriter(out, fieldnames=CSV_COLUMNS).writeheader() once")
    missing = "failed calls are missing from the CSV: " if len(rows) == len(answers) - len(failures) else ""
    expect_equal(len(rows), len(answers),
                 f"{missing}rows in the cost CSV after 20 calls of which {len(failures)} failed",
                 hint="write a row for EVERY call: a failed call (status error, 0 tokens, cost 0) "
                      "still counts for the error rate")
    expect_equal(len(raised), len(failures), f"ProviderError raised for the {len(failures)} failed calls",
                 hint="after logging and recording a failed call, raise ProviderError so the caller knows")
    ids = [row["request_id"] for row in rows]
    expect(all(ids) and len(set(ids)) == len(ids), "every row needs its own non-empty request_id",
           hint="uuid.uuid4().hex; an id made from the time in ms collides when two calls start together")
    for number, (row, (status, body), (user, model, _)) in enumerate(zip(rows, answers, calls), 1):
        _check_row(row, status, body, user, model, f"CSV row {number} ({model}, provider answered HTTP {status})")
    logged = captured.records
    missing = "failed calls were not logged: " if len(logged) == len(answers) - len(failures) else ""
    expect_equal(len(logged), len(answers), f"{missing}log records for 20 calls",
                 hint="exactly one logger call per chat()")
    for record, row in zip(logged, rows):
        _check_log_record(record, row)
    expect_equal([error.request_id for error in raised],
                 [row["request_id"] for row in rows if row["status"] == "error"],
                 "the request_id carried by each ProviderError", hint="ProviderError(..., request_id=request_id, ...)")
    return rows


def _check_row(row: dict, status: int, body: dict, user: str, model: str, what: str) -> None:
    expect_equal(row["user_id"], user, f"{what}: user_id", hint="the raw user id belongs in the billing CSV")
    expect_equal(row["model"], model, f"{what}: model")
    expect_equal(row["http_status"], str(status), f"{what}: http_status")
    if status == 200:
        expect_equal(row["status"], "success", f"{what}: status")
        expect_equal((int(row["input_tokens"]), int(row["output_tokens"])),
                     (body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"]),
                     f"{what}: (input_tokens, output_tokens)", hint="usage.prompt_tokens and usage.completion_tokens")
        expect_close(float(row["cost_usd"]), catalog.cost_usd(model, body["usage"]["prompt_tokens"],
                                                               body["usage"]["completion_tokens"]),
                     f"{what}: cost_usd", rel=1e-6, hint="cost = self.cost_fn(model, input_tokens, output_tokens)")
    else:
        expected_type = {429: "rate_limited", 503: "unavailable"}.get(status, "server_error")
        expect_equal((row["status"], row["error_type"]), ("error", expected_type), f"{what}: (status, error_type)",
                     hint="429 -> rate_limited, 503 -> unavailable, other non-200 -> server_error")
        expect_close(float(row["cost_usd"] or 0), 0.0, f"{what}: cost_usd of a failed call")


def _check_log_record(record: logging.LogRecord, row: dict) -> None:
    fields = {key: getattr(record, key, None) for key in ("request_id", "model", "status", "cost_usd", "latency_ms")}
    expect_equal(fields["request_id"], row["request_id"], "the request_id of a log record vs its CSV row",
                 hint="pass the same request_id in extra= and in the row")
    for key, value in fields.items():
        expect(value is not None, f"log record of {row['request_id']}: the extra field {key!r} is missing",
               hint="logger.info('llm_call', extra={...all the fields...})")
    failed_call = row["status"] == "error"
    expect((record.levelno >= logging.WARNING) == failed_call,
           f"log level of a {'failed' if failed_call else 'successful'} call, got {record.levelname}",
           hint="INFO for a success, WARNING for a failure")
    expect_equal(record.getMessage(), "llm_call", "the log message")


class _Unreachable:
    """A provider that cannot be reached: every POST raises a connection error."""

    def post(self, url: str, **kwargs: object) -> None:
        raise httpx.ConnectError("connection refused")


def _check_client_edge_cases(client_class: type, provider_error: type[Exception], check_dir: Path,
                             rows: list[dict]) -> None:
    models = catalog.load().model_names
    down_logger, down_captured = capture_logger("v1.check.ex3.down")
    down = client_class(_Unreachable(), down_logger, check_dir / "down.csv", cost_fn=catalog.cost_usd)
    outcome = None
    try:
        down.chat("carol@bank.example", models[0], "hello")
    except provider_error as error:
        outcome = error
    except Exception as error:  # noqa: BLE001 - the message is for the student
        expect(False,
               f"when the provider cannot be reached chat() must raise ProviderError, got {type(error).__name__}",
               hint="catch the exception of self.http.post, log and record the call, then raise ProviderError")
    expect(outcome is not None, "when the provider cannot be reached chat() must raise ProviderError")
    _, down_rows = read_cost_csv(check_dir / "down.csv") if (check_dir / "down.csv").exists() else ([], [])
    expect_equal(len(down_rows), 1, "CSV rows after one call to an unreachable provider",
                 hint="record calls that raised too: status error, http_status 0, error_type unavailable")
    expect_equal((down_rows[0]["status"], down_rows[0]["http_status"], down_rows[0]["error_type"]),
                 ("error", "0", "unavailable"), "(status, http_status, error_type) of an unreachable provider")
    expect_equal(len(down_captured.records), 1, "log records after one call to an unreachable provider")
    expect(down_captured.records[0].exc_info is not None,
           "the log record of a call that raised must carry the exception", hint="logger.warning(..., exc_info=exc)")
    expect_equal((outcome.error_type, outcome.http_status), ("unavailable", 0),
                 "ProviderError.error_type/http_status")

    appended = check_dir / "append.csv"
    for _ in range(2):
        client_class(simulated_provider(SEED), capture_logger("v1.check.ex3.append")[0], appended,
                     cost_fn=lambda *_: 1.25).chat("dan@bank.example", models[0], "hi")
    with open(appended) as source:
        text_lines = source.read().splitlines()
    expect_equal(len(text_lines), 3, "lines in a CSV after two clients made one call each (header + 2 rows)",
                 hint="open the file in append mode; write the header only when the file is new or empty")
    _, appended_rows = read_cost_csv(appended)
    expect_equal([float(row["cost_usd"]) for row in appended_rows], [1.25, 1.25], "cost_usd with a custom cost_fn",
                 hint="compute the cost with self.cost_fn, not with a fixed price")
    for row in rows:
        moment = datetime.fromisoformat(row["timestamp"])
        expect(moment.utcoffset() == timedelta(0),
               f"CSV timestamp must be UTC with an offset, got {row['timestamp']!r}",
               hint="datetime.now(timezone.utc).isoformat()")
        expect(0 <= float(row["latency_ms"]) < 60_000, f"latency_ms is milliseconds, got {row['latency_ms']!r}")
    ok_reply = client_class(simulated_provider(SEED), capture_logger("v1.check.ex3.ok")[0], check_dir / "ok.csv",
                            cost_fn=catalog.cost_usd).chat("erin@bank.example", models[-1], "hi", max_tokens=5)
    expect(isinstance(ok_reply, dict) and "choices" in ok_reply,
           "chat() returns the provider's JSON reply on success")
    expect(ok_reply["usage"]["completion_tokens"] <= 5, "max_tokens is passed on to the provider")
    outage = simulated_provider(SEED)
    outage.post("/faults", json={"outage": True, "duration_seconds": 3600}).raise_for_status()
    outage_logger, _ = capture_logger("v1.check.ex3.outage")
    try:
        client_class(outage, outage_logger, check_dir / "outage.csv", cost_fn=catalog.cost_usd).chat(
            "erin@bank.example", models[0], "hi")
    except provider_error as error:
        expect_equal((error.error_type, error.http_status), ("unavailable", 503),
                     "ProviderError during a provider outage")
    else:
        expect(False, "a 503 (provider outage) must raise ProviderError")
    _, outage_rows = read_cost_csv(check_dir / "outage.csv")
    expect_equal((outage_rows[0]["status"], outage_rows[0]["error_type"]), ("error", "unavailable"),
                 "(status, error_type) of a call answered 503", hint="503 -> unavailable")


# --- exercise 4: cost by user and by model -------------------------------------------------------------------------

def _totals(records: pd.DataFrame, column: str) -> dict:
    """The expected table, added up row by row."""
    totals: dict = {}
    for row in records.to_dict("records"):
        entry = totals.setdefault(row[column], {"requests": 0, "errors": 0, "input_tokens": 0, "output_tokens": 0,
                                                "cost_usd": 0.0})
        entry["requests"] += 1
        entry["errors"] += row["status"] == "error"
        for key in ("input_tokens", "output_tokens", "cost_usd"):
            entry[key] += row[key]
    return totals


def _check_cost_by(cost_by: Callable[[pd.DataFrame, str], pd.DataFrame], records: pd.DataFrame, column: str,
                   label: str) -> pd.DataFrame:
    before = records.copy()
    table = cost_by(records, column)
    expect_type(table, pd.DataFrame, f"cost_by({label}, {column!r}) returns a DataFrame")
    expect_equal(list(table.columns), COST_BY_COLUMNS, f"the columns of cost_by({label}, {column!r})",
                 hint="name the aggregates exactly like this, in this order")
    expected = _totals(records, column)
    expect_equal(sorted(map(str, table.index)), sorted(map(str, expected)),
                 f"the index of cost_by({label}, {column!r})",
                 hint=f"one row per distinct {column}, with the {column} value as the index (groupby({column!r}))")
    for key, want in expected.items():
        got = table.loc[key]
        only_successes = int(got["requests"]) == want["requests"] - want["errors"]
        fewer = " (failed calls count as requests too)" if only_successes else ""
        expect_equal(int(got["requests"]), want["requests"], f"requests of {column}={key}{fewer}")
        expect_equal(int(got["errors"]), want["errors"], f"errors of {column}={key}",
                     hint="rows whose status is 'error'")
        for name in ("input_tokens", "output_tokens"):
            expect_equal(int(got[name]), want[name], f"{name} of {column}={key}")
        averaged = want["requests"] > 1 and math.isclose(float(got["cost_usd"]), want["cost_usd"] / want["requests"],
                                                         rel_tol=1e-9)
        expect_close(got["cost_usd"], want["cost_usd"], f"cost_usd of {column}={key}", rel=1e-9,
                     hint="that is the average cost per call: the total is the sum of the calls' costs"
                     if averaged else "the sum of cost_usd over the rows")
    costs = list(table["cost_usd"])
    expect(all(a >= b for a, b in zip(costs, costs[1:])),
           f"cost_by({label}, {column!r}) must be sorted by cost_usd, most expensive first; "
           f"got {[round(c, 4) for c in costs]}",
           hint="table.sort_values('cost_usd', ascending=False)")
    expect(records.equals(before), f"cost_by({label}, {column!r}) must not modify records")
    return table


@reports_stubs
def check_cost_by(cost_by: Callable[[pd.DataFrame, str], pd.DataFrame], hidden: bool = False) -> None:
    """Compared with totals computed row by row."""
    records, _ = reference_day()
    _check_cost_by(cost_by, records, "user_id", "REFERENCE_RECORDS")
    by_model = _check_cost_by(cost_by, records, "model", "REFERENCE_RECORDS")
    expect_close(by_model["cost_usd"].sum(), records["cost_usd"].sum(), "the total of cost_by(..., 'model')",
                 rel=1e-9)
    if hidden:
        tiny_day = pd.DataFrame([
            {"request_id": "a", "user_id": "u1", "model": "m1", "input_tokens": 10, "output_tokens": 5,
             "cost_usd": 0.5, "status": "success", "http_status": 200},
            {"request_id": "b", "user_id": "u2", "model": "m1", "input_tokens": 0, "output_tokens": 0,
             "cost_usd": 0.0, "status": "error", "http_status": 500},
            {"request_id": "c", "user_id": "u2", "model": "m2", "input_tokens": 0, "output_tokens": 0,
             "cost_usd": 0.0, "status": "error", "http_status": 429},
            {"request_id": "d", "user_id": "u3", "model": "m2", "input_tokens": 100, "output_tokens": 50,
             "cost_usd": 2.0, "status": "success", "http_status": 200},
        ])
        tiny_users = _check_cost_by(cost_by, tiny_day, "user_id", "a 4-call day")
        expect_equal(list(tiny_users.index), ["u3", "u1", "u2"],
                     "user order of a 4-call day where u2's calls all failed",
                     hint="u2 cost nothing but made 2 requests: keep it, at the bottom")
        _check_cost_by(cost_by, tiny_day, "status", "a 4-call day")
        _check_cost_by(cost_by, records, "http_status", "REFERENCE_RECORDS")


# --- exercise 5: the most expensive requests and the error rate ----------------------------------------------------

@reports_stubs
def check_top_and_error_rate(top_expensive: Callable[..., pd.DataFrame], error_rate: Callable[[pd.DataFrame], float],
                             hidden: bool = False) -> None:
    records, _ = reference_day()
    ranked = sorted(records.to_dict("records"), key=lambda row: row["cost_usd"], reverse=True)
    top = top_expensive(records, 5)
    expect_type(top, pd.DataFrame, "top_expensive(REFERENCE_RECORDS, 5) returns a DataFrame")
    expect_equal(list(top["request_id"]), [row["request_id"] for row in ranked[:5]],
                 "request ids of the 5 most expensive calls, most expensive first",
                 hint="sort_values('cost_usd', ascending=False).head(n)")
    expect_equal(list(top.columns), list(records.columns), "the columns of top_expensive(...)",
                 hint="keep every column: who, which model, how many tokens")

    errors = int((records["status"] == "error").sum())
    total = len(records)
    rate = error_rate(records)
    hint = ("that is errors / successful calls: divide by ALL calls"
            if abs(float(rate) - errors / (total - errors)) < 1e-9
            else "(number of rows with status 'error') / (number of rows)")
    expect_close(rate, errors / total, f"error_rate(REFERENCE_RECORDS) with {errors} failed calls out of {total}",
                 rel=1e-9, hint=hint)
    expect_type(rate, float, "error_rate(...) returns a float")
    if not hidden:
        return
    before = records.copy()
    expect_equal(list(top_expensive(records, 1)["request_id"]), [ranked[0]["request_id"]],
                 "top_expensive(REFERENCE_RECORDS, 1)", hint="use the n argument")
    expect_equal(len(top_expensive(records.head(3), 10)), 3, "top_expensive of 3 rows with n=10")
    expect_equal(list(top_expensive(records)["request_id"]), [row["request_id"] for row in ranked[:5]],
                 "top_expensive(records) with the default n=5")
    expect(records.equals(before), "top_expensive must not modify records (no inplace sorting)")
    all_failed = records[records["status"] == "error"]
    expect_close(error_rate(all_failed), 1.0, "error_rate when every call failed",
                 hint="errors / all calls; errors / successes divides by zero here")
    empty_rate = error_rate(records.iloc[0:0])
    expect(isinstance(empty_rate, float) and empty_rate == 0.0,
           f"error_rate of no calls must be 0.0, got {empty_rate!r}", hint="check len(records) == 0 first")
    healthy = records[records["status"] == "success"]
    expect_close(error_rate(healthy), 0.0, "error_rate when no call failed")


# --- exercise 6: one request's story from the logs -----------------------------------------------------------------

def _story(request_story: Callable[[list[str], str], list], lines: list[str], request_id: str) -> list:
    try:
        return request_story(lines, request_id)
    except json.JSONDecodeError as error:
        expect(False, f"request_story crashed on a line that is not JSON ({error})",
               hint="log files hold stray prints and truncated lines: skip lines json.loads cannot read")
        raise  # not reached: expect(False, ...) raises


def _check_story(request_story: Callable[[list[str], str], list], lines: list[str], request_id: str,
                 ending: str) -> list:
    story = _story(request_story, lines, request_id)
    expect_type(story, list, f"request_story(REFERENCE_LOG_LINES, {request_id!r}) returns a list")
    expect(all(isinstance(event, dict) for event in story),
           "each event of the story is a dict (the parsed JSON line)")
    strangers = sorted({str(event.get("request_id")) for event in story} - {request_id})
    expect(not strangers, f"the story of {request_id} holds events of other requests: {strangers}",
           hint="keep only events whose request_id field is exactly equal: "
                "a text search for 'req-37' also finds 'req-370'")
    expect_equal([event.get("message") for event in story], ["request_received", "llm_call", ending],
                 f"the events of {request_id}, in time order",
                 hint="all lines with this request_id (from both files), sorted by timestamp")
    stamps = [event["timestamp"] for event in story]
    expect(stamps == sorted(stamps), f"the story of {request_id} must be sorted by timestamp: {stamps}")
    return story


@reports_stubs
def check_request_story(request_story: Callable[[list[str], str], list], hidden: bool = False) -> None:
    records, lines = reference_day()
    costliest = records.loc[records["cost_usd"].idxmax()]
    story = _check_story(request_story, lines, costliest["request_id"], "request_completed")
    expect_close(story[1].get("cost_usd"), costliest["cost_usd"],
                 f"cost_usd of the llm_call event of {costliest['request_id']}", rel=1e-9)
    if not hidden:
        return
    ids = set(records["request_id"])
    failed_ids = [rid for rid in records.loc[records["status"] == "error", "request_id"]
                  if any(other != rid and other.startswith(rid) for other in ids)]
    expect(bool(failed_ids), "reference data: a failed request whose id prefixes others")
    failed_story = _check_story(request_story, lines, failed_ids[0], "request_failed")
    expect_equal(failed_story[1].get("status"), "error", f"the llm_call event of the failed request {failed_ids[0]}")
    expect_equal(_story(request_story, lines, "req-0"), [], "the story of a request id that never occurs",
                 hint="return an empty list")
    junk = ["", "not json", "[1, 2, 3]",
            '{"timestamp": "2026-05-04T00:00:00.000+00:00", "request_id": "req-1", "mess']
    expect_equal(request_story(junk, "req-1"), [],
                 "the story in lines that are all junk (empty, text, a JSON list, truncated)",
                 hint="skip lines that are not a JSON object")
    same_time = ['{"timestamp": "2026-05-04T00:00:00.000+00:00", "request_id": "x", "message": "first"}',
                 '{"timestamp": "2026-05-04T00:00:00.000+00:00", "request_id": "x", "message": "second"}']
    expect_equal([event["message"] for event in request_story(same_time, "x")], ["first", "second"],
                 "events with equal timestamps keep their file order", hint="sorted() is stable")


# --- exercise 7: a streamed call logged with its time to first token and its cached-prompt cost ---------------------

SUPPORT_SYSTEM_PROMPT = {"role": "system", "content": (
    "You are the support assistant of a retail bank. Answer in at most three sentences, cite the runbook you used, "
    "never reveal account numbers, and hand fraud reports to a human at once.")}


def _usage(prompt: int, completion: int, cached: int | None) -> dict:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return usage


def _cached_cost_hint(seen: Any, model: str, prompt: int, completion: int, cached: int, prices: dict) -> str:
    price = prices[model]

    def priced(uncached: int, discounted: int) -> float:
        return (uncached * price["input"] + discounted * price["cached_input"]
                + completion * price["output"]) / 1_000_000

    try:
        value = float(seen)
    except (TypeError, ValueError):
        return "return a float number of dollars"
    guesses = [
        (priced(prompt, 0), "the cached prompt tokens were billed at the full input price: "
                            "usage.prompt_tokens_details.cached_tokens cost prices[model]['cached_input']"),
        (priced(prompt - cached, 0), "the cached prompt tokens were left out: they are discounted, not free "
                                     "(cached_tokens x prices[model]['cached_input'])"),
        (priced(prompt, cached), "prompt_tokens already counts the cached tokens: bill prompt_tokens - cached_tokens "
                                 "at the input price and cached_tokens at the cached_input price"),
        (priced(prompt - cached, cached) * 1000, "prices are per MILLION tokens: divide by 1_000_000"),
    ]
    for guess, hint in guesses:
        if guess and math.isclose(value, guess, rel_tol=1e-9):
            return hint
    return ("((prompt_tokens - cached_tokens) x input + cached_tokens x cached_input + completion_tokens x output) "
            "/ 1_000_000")


def _check_usage_cost(usage_cost: Callable[..., float], model: str, prompt: int, completion: int,
                      cached: int | None, prices: dict | None = None) -> None:
    usage = _usage(prompt, completion, cached)
    table = prices if prices is not None else _catalog_prices()
    seen = usage_cost(model, usage) if prices is None else usage_cost(model, usage, prices=prices)
    price = table[model]
    expected = ((prompt - (cached or 0)) * price["input"] + (cached or 0) * price["cached_input"]
                + completion * price["output"]) / 1_000_000
    expect_close(seen, expected, f"usage_cost({model!r}, {usage})", rel=1e-9,
                 hint=_cached_cost_hint(seen, model, prompt, completion, cached or 0, table))


def _catalog_prices() -> dict:
    return {name: {"input": model.input_price_per_million, "cached_input": model.cached_input_price_per_million,
                   "output": model.output_price_per_million} for name, model in catalog.load().models.items()}


def _ttft_hint(seen: Any, stream: ReplayedStream) -> str:
    try:
        value = float(seen)
    except (TypeError, ValueError):
        return "log a number of seconds"
    first = stream.time_to_first_token
    if math.isclose(value, stream.time_to_last_token, rel_tol=1e-9):
        return "that is the time to the LAST content chunk: stop the clock at the FIRST chunk whose delta has content"
    if math.isclose(value, stream.duration, rel_tol=1e-9):
        return "that is the whole call: stop the clock at the first chunk whose delta has content"
    if math.isclose(value, first * 1000, rel_tol=1e-6):
        return "the field is in seconds, not milliseconds"
    if value < first and math.isclose(value, KEEP_ALIVE_SECONDS, rel_tol=1e-6):
        return ("that is the first line of the stream, which carries no content (a keep-alive comment or an empty "
                "role chunk): wait for a chunk whose delta.content is a non-empty string")
    return ("time it with the clock argument: start = clock() before the request, clock() again when the first "
            "chunk with content arrives")


def _check_one_stream(stream_chat: Callable[..., str], provider: PacedProvider, model: str, messages: list[dict],
                      prices: dict, label: str) -> None:
    check_logger, captured = capture_logger("v1.check.ex7")
    before = len(provider.streams)
    text = stream_chat(provider, check_logger, model, messages, clock=provider.clock)
    expect(len(provider.streams) == before + 1,
           f"{label}: stream_chat must make one streamed call, made {len(provider.streams) - before}",
           hint='with http.stream("POST", "/v1/chat/completions", json=payload) as response: '
                'for line in response.iter_lines(): ...')
    stream = provider.streams[-1]
    expect(stream.payload.get("stream") is True, f"{label}: the request must ask for a stream",
           hint='payload["stream"] = True')
    expect((stream.payload.get("stream_options") or {}).get("include_usage") is True,
           f"{label}: the request must ask for the usage of the stream",
           hint='payload["stream_options"] = {"include_usage": True}: without it a stream carries no token counts')
    expect_equal(stream.payload.get("model"), model, f"{label}: the model asked for")
    expect_equal(text, stream.text, f"{label}: the answer text stream_chat returns",
                 hint="join the delta.content of every chunk, in order")
    records = captured.records
    expect_equal(len(records), 1, f"{label}: log records for one streamed call", hint="log once, after [DONE]")
    record = records[0]
    expect_equal(record.getMessage(), "llm_call", f"{label}: the log message")
    for key in STREAM_LOG_FIELDS:
        expect(getattr(record, key, None) is not None, f"{label}: the log record has no extra field {key!r}",
               hint=f"logger.info('llm_call', extra={{...}}) with {', '.join(STREAM_LOG_FIELDS)}")
    expect(bool(record.request_id), f"{label}: the request_id field is empty", hint="uuid.uuid4().hex")
    usage = stream.usage or {}
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    expect_equal((record.model, record.input_tokens, record.cached_input_tokens, record.output_tokens),
                 (model, usage.get("prompt_tokens"), cached, usage.get("completion_tokens")),
                 f"{label}: (model, input_tokens, cached_input_tokens, output_tokens) logged",
                 hint="from the usage of the stream's last chunk: prompt_tokens, prompt_tokens_details.cached_tokens, "
                      "completion_tokens")
    price = prices[model]
    expected_cost = ((usage["prompt_tokens"] - cached) * price["input"] + cached * price["cached_input"]
                     + usage["completion_tokens"] * price["output"]) / 1_000_000
    expect_close(record.cost_usd, expected_cost, f"{label}: cost_usd logged ({cached} of "
                 f"{usage['prompt_tokens']} prompt tokens cached)", rel=1e-9,
                 hint=_cached_cost_hint(record.cost_usd, model, usage["prompt_tokens"], usage["completion_tokens"],
                                        cached, prices))
    expect_close(record.time_to_first_token_seconds, stream.time_to_first_token,
                 f"{label}: time_to_first_token_seconds", rel=1e-9,
                 hint=_ttft_hint(record.time_to_first_token_seconds, stream))
    duration_hint = ("the field is in seconds, not milliseconds"
                     if math.isclose(float(record.duration_seconds), stream.duration * 1000, rel_tol=1e-6) else
                     "from before the request to the end of the stream ([DONE]), on the clock argument")
    expect_close(record.duration_seconds, stream.duration, f"{label}: duration_seconds", rel=1e-9,
                 hint=duration_hint)


STREAM_LOG_FIELDS = ("request_id", "model", "input_tokens", "cached_input_tokens", "output_tokens", "cost_usd",
                     "time_to_first_token_seconds", "duration_seconds")


def _support_question(question: str) -> list[dict]:
    return [SUPPORT_SYSTEM_PROMPT, {"role": "user", "content": question}]


def _warm_prompt_cache(provider: PacedProvider, model: str) -> None:
    """An earlier call with the same system prompt, so the provider's prompt cache holds it."""
    provider.post("/v1/chat/completions",
                  json={"model": model, "messages": _support_question("Where do I see my card limit?")})


@reports_stubs
def check_streamed_call(usage_cost: Callable[..., float], stream_chat: Callable[..., str],
                        hidden: bool = False) -> None:
    prices = _catalog_prices()
    for model in catalog.load().model_names:
        _check_usage_cost(usage_cost, model, 2000, 300, 1500)
    provider = PacedProvider(SEED)
    _warm_prompt_cache(provider, "sim-balanced")
    _check_one_stream(stream_chat, provider, "sim-balanced", _support_question("How do I reset my card PIN?"),
                      prices, "a streamed sim-balanced call after the same system prompt")
    cached = (provider.streams[-1].usage or {}).get("prompt_tokens_details", {}).get("cached_tokens", 0)
    expect(cached > 0, "the provider should have found the system prompt in its prompt cache "
                       "(did you change the setup cell?)")
    if not hidden:
        return
    tiny = {"tiny": {"input": 2.0, "cached_input": 0.5, "output": 8.0}}
    _check_usage_cost(usage_cost, "tiny", 3_000_000, 1_000_000, 1_000_000, prices=tiny)
    _check_usage_cost(usage_cost, "tiny", 1_000_000, 0, None, prices=tiny)   # no prompt_tokens_details at all
    _check_usage_cost(usage_cost, "tiny", 1_000_000, 0, 1_000_000, prices=tiny)
    queued = PacedProvider(SEED + 1, queued_seconds=2.5)   # the slow-first-token scenario: a queue at the provider
    _check_one_stream(stream_chat, queued, "sim-fast",
                      [{"role": "user", "content": "Summarise ticket #4711 in one line."}], prices,
                      "a sim-fast call held 2.5 s in the provider's queue")
    proxy = PacedProvider(SEED + 2, opens_at_once=True)
    _warm_prompt_cache(proxy, "sim-reasoning")
    _check_one_stream(stream_chat, proxy, "sim-reasoning", _support_question("Is this transfer fraud?"), prices,
                      "a stream that opens with a keep-alive and an empty role chunk")


# --- exercise 8: what the response cache saved and which requests a fallback served, from the gateway's log --------

def _gateway_hint_for_savings(seen: Any, lines: list[str]) -> str:
    events = [json.loads(line) for line in lines if line.startswith("{")]
    spent = sum(event.get("cost_usd") or 0.0 for event in events)
    try:
        value = float(seen)
    except (TypeError, ValueError):
        return "return a float number of dollars"
    if value == 0.0:
        return "a cache hit costs 0 (its cost_usd): what it saved is its saved_cost_usd"
    if math.isclose(value, spent, rel_tol=1e-9):
        return "that is what the day spent (cost_usd): sum saved_cost_usd over the cache hits"
    return 'the sum of saved_cost_usd over the llm_call lines with cache == "hit"'


def _parsed(call: Callable[[list[str]], Any], lines: list[str], what: str) -> Any:
    try:
        return call(lines)
    except json.JSONDecodeError as error:
        expect(False, f"{what} crashed on a line that is not JSON ({error})",
               hint="the gateway's log holds uvicorn's access lines too: skip lines json.loads cannot read")
        raise  # not reached: expect(False, ...) raises


def _check_gateway_day(cache_savings: Callable[[list[str]], float],
                       fallback_requests: Callable[[list[str]], dict], lines: list[str], truth: GatewayDayTruth,
                       label: str) -> None:
    saved = _parsed(cache_savings, lines, "cache_savings")
    expect_close(saved, truth.saved_usd, f"cache_savings({label}) with {truth.cache_hits} cache hits", rel=1e-9,
                 hint=_gateway_hint_for_savings(saved, lines))
    served = _parsed(fallback_requests, lines, "fallback_requests")
    expect_type(served, dict, f"fallback_requests({label}) returns a dict request_id -> (requested, served)")
    unserved = sorted(set(served) & set(truth.never_served))
    expect(not unserved, f"fallback_requests({label}) holds requests no model served: {unserved[:3]}",
           hint="only a call with status 'success' served its request; a row with status 'fallback' or 'error' is a "
                "failed attempt (of the same request_id)")
    missing = sorted(set(truth.served_by_fallback) - set(served))
    routed = set(truth.circuit_open_routes)
    expect(not missing, f"fallback_requests({label}) misses {len(missing)} requests served by a fallback model, "
                        f"e.g. {missing[:3]}",
           hint="compare the model that served (model) with requested_model, not the step name: a request routed "
                "past an open circuit breaker has step 'chat' and no failed attempt"
           if set(missing) <= routed else "every request whose successful call has a requested_model other than its "
                                          "model")
    expect_equal(sorted(served), sorted(truth.served_by_fallback), f"the request ids of fallback_requests({label})",
                 hint="one entry per request answered by another model than the one asked for")
    for request_id, pair in truth.served_by_fallback.items():
        seen = tuple(served[request_id]) if isinstance(served[request_id], (tuple, list)) else served[request_id]
        expect_equal(seen, pair, f"fallback_requests({label})[{request_id!r}]: (requested, served)",
                     hint="(requested_model, model) of the call that answered: model is the one that served"
                     if seen != pair[::-1] else "the requested model first, then the one that served")


@reports_stubs
def check_gateway_log(cache_savings: Callable[[list[str]], float], fallback_requests: Callable[[list[str]], dict],
                      hidden: bool = False) -> None:
    lines, truth = gateway_day()
    _check_gateway_day(cache_savings, fallback_requests, lines, truth, "GATEWAY_LOG_LINES")
    if not hidden:
        return
    other_lines, other_truth = gateway_day(seed=SEED + 8, n=120)
    _check_gateway_day(cache_savings, fallback_requests, other_lines, other_truth, "another day")
    quiet = [line for line in other_lines if '"cache": "hit"' not in line and '"requested_model"' not in line]
    expect_close(_parsed(cache_savings, quiet, "cache_savings"), 0.0, "cache_savings of a log without cache hits")
    expect_equal(dict(_parsed(fallback_requests, quiet, "fallback_requests")), {},
                 "fallback_requests of a log where every request was served by the model it asked for")
    expect_close(_parsed(cache_savings, [], "cache_savings"), 0.0, "cache_savings of an empty log")
