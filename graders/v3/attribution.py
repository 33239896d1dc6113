"""Lab V3, exercises 1-3: the attribution store, the monthly chargeback (2b: with the response cache and fallbacks)
and the retention job.

The reference data is a seeded quarter of calls written with the gateway's own store (stack/gateway/store.py: the
llm_calls table, one row per provider call, several per request when the agent workflow runs several steps), priced
with the catalog. It has the traps real billing data has: failed calls, load-test traffic (synthetic = 1, billed to
nobody), multi-step requests, calls right at midnight at the turn of a month, answers replayed from the response cache
(cost 0, saved_cost_usd) and requests handed over to a fallback model (a failed attempt with status `fallback`, then
the answer of the model that served, with requested_model). The checks compute what they expect
from the rows in Python, never with the SQL under test.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import random
import shutil
import sqlite3
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from graders.labcheck import LabCheckFailed, expect, expect_equal, fail, reports_stubs
from stack import catalog
from stack.gateway.store import SCHEMA as GATEWAY_SCHEMA
from stack.gateway.store import CallRecord

SEED = 2026
FIRST_DAY = date(2026, 9, 1)
DAYS = 91                                 # September, October, November 2026
MONTHS = ("2026-09", "2026-10", "2026-11")
ATTRIBUTION = ("user_id", "department", "application")
COLUMNS = ("request_id", "step", "ts", "user_id", "department", "application", "model", "input_tokens",
           "output_tokens", "cost_usd", "duration_seconds", "status", "error_type", "synthetic")
TABLE_COLUMNS = ["requests", "calls", "errors", "input_tokens", "output_tokens", "cost_usd", "share"]
# What the gateway's store has beyond the columns of exercise 1: the response cache and fallbacks (exercise 2b).
LLM_COLUMNS = ("cache_hit", "saved_cost_usd", "requested_model")
ROW_COLUMNS = COLUMNS + LLM_COLUMNS
BILL_COLUMNS = ["calls", "cache_hits", "fallback_answers", "cost_usd", "saved_cost_usd"]
BILL_BY = ("department", "model")
CACHE_HIT_SHARE = 0.08     # of single-call answers, replayed from the gateway's response cache
FALLBACK_SHARE = 0.06      # of answers from a model with a fallback chain, handed over after a failed call

DAILY_SCHEMA = """
CREATE TABLE IF NOT EXISTS llm_calls_daily (
    day              TEXT    NOT NULL,   -- YYYY-MM-DD, UTC
    department       TEXT    NOT NULL,
    application      TEXT    NOT NULL,
    model            TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    synthetic        INTEGER NOT NULL,
    calls            INTEGER NOT NULL,
    input_tokens     INTEGER NOT NULL,
    output_tokens    INTEGER NOT NULL,
    cost_usd         REAL    NOT NULL,
    duration_seconds REAL    NOT NULL,
    PRIMARY KEY (day, department, application, model, status, synthetic)
);
"""
DAILY_KEY = ("day", "department", "application", "model", "status", "synthetic")
DAILY_SUMS = ("calls", "input_tokens", "output_tokens", "cost_usd", "duration_seconds")

# The questions the store must answer fast: (what, SQL, columns the index must use, in order).
REPORT_QUERIES = (
    ("the monthly chargeback (every call of a month)",
     "SELECT department, SUM(cost_usd) FROM llm_calls WHERE ts >= ? AND ts < ? GROUP BY department", ("ts",)),
    ("one department's spend in a month",
     "SELECT SUM(cost_usd) FROM llm_calls WHERE department = ? AND ts >= ? AND ts < ?", ("department", "ts")),
    ("one application's spend in a month",
     "SELECT SUM(cost_usd) FROM llm_calls WHERE application = ? AND ts >= ? AND ts < ?", ("application", "ts")),
    ("one user's calls in a month (a user asks what we hold about them)",
     "SELECT * FROM llm_calls WHERE user_id = ? AND ts >= ? AND ts < ?", ("user_id", "ts")),
)


def utc(year: int, month: int, day: int, *rest: int) -> float:
    return datetime(year, month, day, *rest, tzinfo=timezone.utc).timestamp()


# ---------------------------------------------------------------- the seeded quarter

def _departments() -> dict[str, tuple[float, tuple[str, ...]]]:
    """department -> (share of requests, the applications it uses), from the catalog's label sets."""
    cat = catalog.load()
    apps = cat.applications
    weights = [0.32, 0.24, 0.14, 0.12, 0.11, 0.07]
    return {name: (weights[i % len(weights)], tuple(apps[(i + k) % len(apps)] for k in range(2 + i % 2)))
            for i, name in enumerate(cat.departments)}


def reference_records(seed: int = SEED) -> list[CallRecord]:
    """A quarter of calls, the same every run."""
    rng = random.Random(seed)
    cat = catalog.load()
    models = cat.model_names
    departments = _departments()
    names, weights = list(departments), [w for w, _ in departments.values()]
    users = {d: [f"{d[:3]}-user-{n:02d}" for n in range(1, 9)] for d in departments}
    llm_rng = random.Random(seed + 1)   # cache hits and fallbacks: their own stream, the rest stays as it was
    records: list[CallRecord] = []
    number = 0

    def add(ts: float, department: str, application: str, user: str, synthetic: bool, steps: tuple[str, ...]) -> None:
        nonlocal number
        number += 1
        request_id = f"req-{number:05d}"
        for index, step in enumerate(steps):
            model = "sim-fast" if step != "answer" else rng.choice(models)
            spec = cat.models[model]
            failed = rng.random() < 0.04
            input_tokens = 0 if failed else rng.randint(120, 3000)
            output_tokens = 0 if failed else rng.randint(spec.min_output_tokens, spec.max_output_tokens)
            duration = spec.latency.base_seconds + output_tokens * spec.latency.seconds_per_output_token
            call = CallRecord(
                request_id=request_id, step=step, ts=ts + index * 0.75, user_id=user, department=department,
                application=application, model=model, input_tokens=input_tokens, output_tokens=output_tokens,
                cost_usd=catalog.cost_usd(model, input_tokens, output_tokens),
                duration_seconds=round(duration * rng.uniform(0.8, 1.3), 4), status="error" if failed else "success",
                error_type=rng.choice(("server_error", "rate_limited", "timeout")) if failed else None,
                synthetic=synthetic)
            records.extend(_as_served(call, llm_rng, len(steps) == 1))

    for offset in range(DAYS):
        day = datetime.combine(FIRST_DAY + timedelta(days=offset), datetime.min.time(), tzinfo=timezone.utc)
        for _ in range(rng.randint(28, 44)):
            department = rng.choices(names, weights)[0]
            application = rng.choice(departments[department][1])
            ts = day.timestamp() + rng.uniform(60, 86400 - 60)
            steps = ("classify", "answer", "format") if application == "agent" else ("answer",)
            add(ts, department, application, rng.choice(users[department]), False, steps)
        if offset % 9 == 4:  # a load test: many synthetic calls, booked to a real department and application
            for _ in range(rng.randint(40, 70)):
                add(day.timestamp() + rng.uniform(36000, 39600), "engineering", "chatbot",
                    f"loadgen-{rng.randint(1, 5)}", True, ("answer",))
    # Calls on the very edges of a month: midnight belongs to the month that starts.
    add(utc(2026, 10, 1), "finance", "summarizer", "fin-user-01", False, ("answer",))
    add(utc(2026, 9, 30, 23, 59, 59) + 0.5, "finance", "summarizer", "fin-user-02", False, ("answer",))
    add(utc(2026, 11, 1) - 1.5, "research", "doc-search", "res-user-03", False, ("answer",))
    add(utc(2026, 11, 1), "marketing", "summarizer", "mar-user-05", False, ("answer",))
    add(utc(2026, 12, 1), "research", "doc-search", "res-user-04", False, ("answer",))
    return sorted(records, key=lambda r: (r.ts, r.request_id, r.step))


def _as_served(call: CallRecord, rng: random.Random, single_call: bool) -> list[CallRecord]:
    """The rows the gateway writes for `call` now that it caches answers and falls back: the call itself, a cache
    hit (no tokens, cost 0, saved_cost_usd what the call would have cost), or a failed attempt (status `fallback`)
    followed by the answer of the next model of the chain (step `<step>:fallback1`, requested_model the model asked
    for, priced at the model that served)."""
    if call.status != "success" or call.synthetic:
        return [call]
    draw, chain = rng.random(), catalog.load().models[call.model].fallbacks
    if single_call and draw < CACHE_HIT_SHARE:
        return [dataclasses.replace(call, input_tokens=0, output_tokens=0, cost_usd=0.0, duration_seconds=0.002,
                                    cache_hit=True, saved_cost_usd=call.cost_usd)]
    if chain and draw > 1 - FALLBACK_SHARE:
        served = chain[0]
        attempt = dataclasses.replace(call, input_tokens=0, output_tokens=0, cost_usd=0.0, status="fallback",
                                      error_type="server_error")
        answer = dataclasses.replace(call, step=f"{call.step}:fallback1", ts=call.ts + 0.5, model=served,
                                     cost_usd=catalog.cost_usd(served, call.input_tokens, call.output_tokens),
                                     requested_model=call.model)
        return [attempt, answer]
    return [call]


def build_reference_db(path: Path, records: list[CallRecord] | None = None) -> Path:
    """The seeded quarter in a SQLite file with the gateway's schema."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as db:
        db.executescript(GATEWAY_SCHEMA)
        db.executemany(f"INSERT INTO llm_calls ({', '.join(ROW_COLUMNS)}) VALUES ({', '.join('?' * len(ROW_COLUMNS))})",
                       [tuple(getattr(r, column) for column in ROW_COLUMNS) for r in (records or reference_records())])
    db.close()
    return path


def read_rows(db: sqlite3.Connection) -> list[dict]:
    cursor = db.execute(f"SELECT {', '.join(ROW_COLUMNS)} FROM llm_calls")
    return [dict(zip(ROW_COLUMNS, row)) for row in cursor.fetchall()]


@contextmanager
def scratch_copy(path: Path) -> Iterator[sqlite3.Connection]:
    """A throw-away copy of a database (checks never change the reference file)."""
    with tempfile.TemporaryDirectory(prefix="v3-db-") as folder:
        copy = Path(folder) / path.name
        shutil.copyfile(path, copy)
        db = sqlite3.connect(copy)
        try:
            yield db
        finally:
            db.close()


# ---------------------------------------------------------------- exercise 1: the store

def _call(**changes: Any) -> dict:
    call = {"request_id": "req-check-1", "step": "answer", "ts": utc(2026, 10, 14, 9, 30), "user_id": "u-42",
            "department": "support", "application": "chatbot", "model": "sim-balanced", "input_tokens": 1200,
            "output_tokens": 300, "duration_seconds": 0.9, "status": "success", "error_type": None, "synthetic": False}
    call.update(changes)
    return {k: v for k, v in call.items() if v is not ...}


def _plan(db: sqlite3.Connection, sql: str) -> str:
    rows = db.execute("EXPLAIN QUERY PLAN " + sql, ("x",) * sql.count("?")).fetchall()
    return " / ".join(str(row[-1]) for row in rows)


def _index_columns(plan: str) -> list[str]:
    """The columns a SEARCH ... USING [COVERING] INDEX x (a=? AND b>? AND b<?) step constrains, in order."""
    if "USING" not in plan or "INDEX" not in plan or "(" not in plan:
        return []
    inside = plan[plan.index("(", plan.index("INDEX")) + 1:].split(")")[0]
    columns = []
    for term in inside.split(" AND "):
        name = term.strip().split("=")[0].split(">")[0].split("<")[0].strip()
        if name and name not in columns:
            columns.append(name)
    return columns


@reports_stubs
def check_store_schema(create_store: Callable[[Path], sqlite3.Connection], hidden: bool = False) -> None:
    with tempfile.TemporaryDirectory(prefix="v3-store-") as folder:
        path = Path(folder) / "attribution.db"
        db = create_store(path)
        expect(isinstance(db, sqlite3.Connection), f"create_store(path) returned {type(db).__name__}",
               "return the sqlite3.Connection (sqlite3.connect(path))")
        try:
            info = {row[1]: row for row in db.execute("PRAGMA table_info(llm_calls)")}
            expect(bool(info), "create_store made no llm_calls table", "CREATE TABLE IF NOT EXISTS llm_calls (...)")
            missing = [c for c in COLUMNS if c not in info]
            expect(not missing, f"llm_calls lacks the columns {missing}", "the columns in the table above, same names")
            nullable = [c for c in ATTRIBUTION if not info[c][3]]
            expect(not nullable, f"llm_calls accepts NULL in {nullable}: a call booked to nobody is one INSERT away",
                   "declare user_id, department and application NOT NULL (the database's own check)")
            for what, sql, wanted in REPORT_QUERIES:
                plan = _plan(db, sql)
                columns = _index_columns(plan)
                if "SCAN" in plan and not columns:
                    fail(f"the report '{what}' reads the whole table", "an index", plan,
                         f"CREATE INDEX ... ON llm_calls ({', '.join(wanted)})")
                expect(columns[:len(wanted)] == list(wanted),
                       f"the report '{what}' uses an index on {columns or 'nothing'}: {plan}",
                       f"an index on ({', '.join(wanted)}): equality columns first, then the time range")
            if hidden:
                _check_primary_key(db)
                again = create_store(path)  # opening an existing store must not fail or wipe it
                expect(isinstance(again, sqlite3.Connection), "create_store on an existing file failed")
                again.close()
        finally:
            db.close()


def _check_primary_key(db: sqlite3.Connection) -> None:
    row = {**_call(), "cost_usd": 0.0}
    insert = f"INSERT INTO llm_calls ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    db.execute(insert, tuple(row[c] for c in COLUMNS))
    try:
        db.execute(insert, tuple(row[c] for c in COLUMNS))
    except sqlite3.IntegrityError:
        db.rollback()
        return
    db.rollback()
    fail("inserting the same (request_id, step) twice", "an IntegrityError", "two rows",
         "PRIMARY KEY (request_id, step): a retried write must not bill a call twice")


@reports_stubs
def check_record_call(create_store: Callable, record_call: Callable, error_type: type, hidden: bool = False) -> None:
    cat = catalog.load()
    with tempfile.TemporaryDirectory(prefix="v3-store-") as folder:
        db = create_store(Path(folder) / "attribution.db")
        try:
            def count() -> int:
                return int(db.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0])

            good = _call()
            record_call(db, dict(good))
            expect_equal(count(), 1, "rows after recording one attributed call")
            row = dict(zip(COLUMNS, db.execute(f"SELECT {', '.join(COLUMNS)} FROM llm_calls").fetchone()))
            for key in ATTRIBUTION + ("model", "input_tokens", "output_tokens", "status"):
                expect_equal(row[key], good[key], f"the stored {key}")
            price = catalog.cost_usd(good["model"], good["input_tokens"], good["output_tokens"])
            expect(math.isclose(row["cost_usd"] or 0, price, rel_tol=1e-9),
                   f"the stored cost_usd is {row['cost_usd']!r}, the catalog's price is {price!r}",
                   "cost_usd = catalog.cost_usd(model, input_tokens, output_tokens): the one price table")
            cases = [({"department": ...}, ["department"]), ({"user_id": "", "application": None},
                                                              ["user_id", "application"])]
            if hidden:
                cases += [({"user_id": "   "}, ["user_id"]), ({"application": ...}, ["application"])]
            for number, (changes, names) in enumerate(cases, start=2):
                call = _call(request_id=f"req-check-{number}", **changes)
                try:
                    record_call(db, call)
                except error_type as error:
                    message = str(error)
                    absent = [name for name in names if name not in message]
                    expect(not absent, f"the {error_type.__name__} for a call without {', '.join(names)} says "
                           f"{message!r}, which does not name {', '.join(absent)}",
                           "say which attribution fields are missing, so the caller can fix the request")
                except Exception as error:  # noqa: BLE001 - the message is for the student
                    fail(f"record_call for a call without {', '.join(names)} raised", error_type.__name__,
                         f"{type(error).__name__}: {error}"[:100], f"raise {error_type.__name__}(...) yourself, "
                         "before touching the database")
                else:
                    booked = db.execute("SELECT user_id, department, application FROM llm_calls WHERE request_id = ?",
                                        (call["request_id"],)).fetchall()
                    fail(f"record_call accepted a call without {', '.join(names)}", f"{error_type.__name__}",
                         f"booked to {booked[0] if booked else 'nothing'}",
                         "reject it: a call booked to nobody (or to 'unknown') is a call nobody pays for")
                expect_equal(count(), 1, f"rows after rejecting a call without {', '.join(names)}",
                             "validate before inserting: a rejected call leaves no row")
            unknown = _call(request_id="req-check-9", department="engineerign")
            try:
                record_call(db, unknown)
            except error_type as error:
                shown = [d for d in cat.departments if d in str(error)]
                expect(len(shown) == len(cat.departments),
                       f"the error for department 'engineerign' says {str(error)!r}",
                       "list the known departments (catalog.load().departments) so the caller can fix the typo")
            else:
                fail("record_call accepted department 'engineerign'", error_type.__name__, "a booked row",
                     "a chargeback to a department that does not exist reaches no budget: check it against "
                     "catalog.load().departments")
            expect_equal(count(), 1, "rows after rejecting a call for department 'engineerign'")
            if hidden:
                try:
                    record_call(db, _call(request_id="req-check-10", application="chatgpt"))
                except error_type:
                    pass
                else:
                    fail("record_call accepted application 'chatgpt'", error_type.__name__, "a booked row",
                         "check applications against catalog.load().applications")
                record_call(db, _call(request_id="req-check-11", status="error", input_tokens=0, output_tokens=0,
                                      error_type="server_error"))
                failed = db.execute("SELECT cost_usd, status FROM llm_calls WHERE request_id = ?",
                                    ("req-check-11",)).fetchall()
                expect(failed == [(0.0, "error")], f"a failed call is stored as {failed}",
                       "failed calls are booked too (status error, cost 0): they count as calls in the chargeback")
                expect_equal(count(), 2, "rows after the hidden checks")
        finally:
            db.close()


# ---------------------------------------------------------------- exercise 2: chargeback

def month_bounds(month: str) -> tuple[float, float]:
    year, number = (int(part) for part in month.split("-"))
    start = datetime(year, number, 1, tzinfo=timezone.utc)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=timezone.utc)
    return start.timestamp(), end.timestamp()


def expected_chargeback(rows: list[dict], month: str, by: str) -> dict[str, dict[str, float]]:
    start, end = month_bounds(month)
    table: dict[str, dict] = {}
    for row in rows:
        if row["synthetic"] or not start <= row["ts"] < end:
            continue
        entry = table.setdefault(row[by], {"requests": set(), "calls": 0, "errors": 0, "input_tokens": 0,
                                           "output_tokens": 0, "cost_usd": 0.0})
        entry["requests"].add(row["request_id"])
        entry["calls"] += 1
        entry["errors"] += row["status"] == "error"
        entry["input_tokens"] += row["input_tokens"]
        entry["output_tokens"] += row["output_tokens"]
        entry["cost_usd"] += row["cost_usd"]
    total = sum(e["cost_usd"] for e in table.values())
    for entry in table.values():
        entry["requests"] = len(entry["requests"])
        entry["share"] = entry["cost_usd"] / total if total else 0.0
    return table


def _why_cost_differs(rows: list[dict], month: str, by: str, key: str, seen: float) -> str:
    start, end = month_bounds(month)
    with_synthetic = sum(r["cost_usd"] for r in rows if r[by] == key and start <= r["ts"] < end)
    inclusive = sum(r["cost_usd"] for r in rows if r[by] == key and not r["synthetic"] and start <= r["ts"] <= end)
    early = sum(r["cost_usd"] for r in rows if r[by] == key and not r["synthetic"] and start < r["ts"] < end)
    if math.isclose(seen, with_synthetic, rel_tol=1e-9) and with_synthetic != inclusive:
        return "load-test traffic (synthetic = 1) is billed to nobody: leave it out"
    if math.isclose(seen, inclusive, rel_tol=1e-9) or math.isclose(seen, early, rel_tol=1e-9):
        return ("a call at midnight UTC on the 1st belongs to the month that starts: ts >= start AND ts < the next "
                "month's start")
    return "sum cost_usd of the month's non-synthetic calls, month boundaries at midnight UTC"


def _check_table(table: Any, rows: list[dict], month: str, by: str) -> None:
    what = f"chargeback(db, {month!r}, {by!r})"
    expect(isinstance(table, pd.DataFrame), f"{what} returned {type(table).__name__}", "return a pandas DataFrame")
    expected = expected_chargeback(rows, month, by)
    expect_equal(list(table.columns), TABLE_COLUMNS, f"the columns of {what}",
                 "requests, calls, errors, input_tokens, output_tokens, cost_usd, share, in this order")
    expect_equal(table.index.name, by, f"the index name of {what}", f"set_index({by!r}) (or read_sql(..., "
                 f"index_col={by!r}))")
    expect_equal(sorted(map(str, table.index)), sorted(expected), f"the {by} values of {what}",
                 "one row per value with billed calls in the month (load tests excluded)")
    for key, want in expected.items():  # money first: a wrong cost explains a wrong share
        cost = float(table.loc[key]["cost_usd"])
        if not math.isclose(cost, want["cost_usd"], rel_tol=1e-9, abs_tol=1e-12):
            fail(f"cost_usd of {by}={key} in {month}", round(want["cost_usd"], 6), round(cost, 6),
                 _why_cost_differs(rows, month, by, key, cost))
    for key, want in expected.items():
        got = table.loc[key]
        if int(got["requests"]) == want["calls"] != want["requests"]:
            fail(f"requests of {by}={key} in {month}", want["requests"], int(got["requests"]),
                 "an agent request runs 3 steps: 3 calls (rows) but 1 request: COUNT(DISTINCT request_id)")
        for column in ("requests", "calls", "errors", "input_tokens", "output_tokens"):
            expect_equal(int(got[column]), want[column], f"{column} of {by}={key} in {month}")
        expect(math.isclose(float(got["share"]), want["share"], rel_tol=1e-9, abs_tol=1e-12),
               f"share of {by}={key} in {month} is {float(got['share'])!r}, expected {want['share']!r}",
               "cost_usd / the month's total cost_usd (the shares add up to 1)")
    costs = list(table["cost_usd"])
    expect(all(a >= b for a, b in zip(costs, costs[1:])), f"{what} is not sorted by cost_usd, highest first",
           "sort_values('cost_usd', ascending=False)")


@reports_stubs
def check_chargeback(chargeback: Callable, write_csv: Callable, db_path: Path, hidden: bool = False) -> None:
    with scratch_copy(db_path) as db:
        rows = read_rows(db)
        cases = [("2026-10", "department")] if not hidden else [("2026-11", "application"), ("2026-09", "department")]
        for month, by in cases:
            table = chargeback(db, month, by)
            _check_table(table, rows, month, by)
            with tempfile.TemporaryDirectory(prefix="v3-csv-") as folder:
                path = Path(folder) / f"chargeback-{month}-{by}.csv"
                write_csv(table, path)
                expect(path.is_file(), f"write_chargeback_csv(table, path) wrote no file at {path.name}")
                with path.open(newline="") as handle:
                    reader = csv.DictReader(handle)
                    header, lines = reader.fieldnames or [], list(reader)
                expect(bool(header) and header[0] == by,
                       f"the CSV's first column is {header[0] if header else 'missing'!r}, not {by!r}: finance cannot "
                       f"tell whose line is whose", f"keep the {by} (the index) in the file: to_csv(path), not "
                                                    "to_csv(path, index=False)")
                expect_equal(header[1:], TABLE_COLUMNS, "the CSV's other columns")
                expect_equal([line[by] for line in lines], [str(k) for k in table.index], f"the CSV's {by} values")
                total = sum(float(line["cost_usd"]) for line in lines)
                expect(math.isclose(total, float(table["cost_usd"].sum()), rel_tol=1e-6),
                       f"the CSV's cost_usd adds up to {total!r}, the table's to {float(table['cost_usd'].sum())!r}")
        if hidden:
            empty = chargeback(db, "2026-12", "department")  # one test call at midnight Dec 1 only
            expect(isinstance(empty, pd.DataFrame) and list(empty.columns) == TABLE_COLUMNS,
                   "chargeback of a month with one call returns a DataFrame with the usual columns")
            nothing = chargeback(db, "2027-03", "application")
            expect(isinstance(nothing, pd.DataFrame) and len(nothing) == 0 and list(nothing.columns) == TABLE_COLUMNS,
                   "chargeback of a month without calls must return an empty DataFrame with the usual columns")
            _check_in_other_time_zone(chargeback, db, rows)


def _check_in_other_time_zone(chargeback: Callable, db: sqlite3.Connection, rows: list[dict]) -> None:
    """The month is a UTC month wherever the report runs."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "Pacific/Auckland"
    time.tzset()
    try:
        table = chargeback(db, "2026-10", "department")
    finally:
        if saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved
        time.tzset()
    try:
        _check_table(table, rows, "2026-10", "department")
    except LabCheckFailed as error:
        raise LabCheckFailed(f"on a machine in New Zealand time: {error}".split(". Hint:")[0] +
                             ". Hint: month boundaries in UTC: datetime(year, month, 1, tzinfo=timezone.utc); "
                             "a naive datetime's .timestamp() is local time") from None


# ---------------------------------------------------------------- exercise 2b: caches and fallbacks on the bill

def expected_bill(rows: list[dict], month: str, by: str) -> dict[str, dict[str, float]]:
    start, end = month_bounds(month)
    table: dict[str, dict[str, float]] = {}
    for row in rows:
        if row["synthetic"] or not start <= row["ts"] < end:
            continue
        entry = table.setdefault(row[by], dict.fromkeys(BILL_COLUMNS, 0))
        entry["calls"] += 1
        entry["cache_hits"] += bool(row["cache_hit"])
        entry["fallback_answers"] += bool(row["requested_model"]) and row["status"] == "success"
        entry["cost_usd"] += row["cost_usd"]
        entry["saved_cost_usd"] += row["saved_cost_usd"]
    return table


def _why_bill_differs(rows: list[dict], month: str, by: str, key: str, column: str, seen: float) -> str:
    start, end = month_bounds(month)
    billed = [r for r in rows if not r["synthetic"] and start <= r["ts"] < end]
    money = column in ("cost_usd", "saved_cost_usd")
    with_load_tests = sum(r[column] for r in rows if r[by] == key and start <= r["ts"] < end) if money else None
    if money and with_load_tests != sum(r[column] for r in billed if r[by] == key) and math.isclose(
            seen, with_load_tests, rel_tol=1e-9):
        return "load-test traffic (synthetic = 1) is billed to nobody: leave it out"
    if column == "cost_usd" and by == "model":
        requested = sum(r["cost_usd"] for r in billed if (r["requested_model"] or r["model"]) == key)
        if math.isclose(seen, requested, rel_tol=1e-9):
            return ("that is the cost of the calls requested of it: after a fallback the model that served (column "
                    "`model`) did the work and is charged; `requested_model` only says what was asked for")
    if column == "cost_usd":
        gross = sum(r["cost_usd"] + r["saved_cost_usd"] for r in billed if r[by] == key)
        if math.isclose(seen, gross, rel_tol=1e-9):
            return ("cache savings billed as spend: a cache hit cost nothing (cost_usd 0); saved_cost_usd is what "
                    "it would have cost, a credit shown in its own column")
    if column == "fallback_answers":
        attempts = sum(r["status"] == "fallback" for r in billed if r[by] == key)
        if seen == attempts:
            return ("those are the failed attempts (status 'fallback') of the model asked for; count the answers "
                    "the model gave for another model's requests: requested_model set and status 'success'")
    if column == "cache_hits":
        return "SUM(cache_hit): a hit is one row with cache_hit = 1"
    return "non-synthetic calls of the month, UTC boundaries, grouped by the column asked for"


@reports_stubs
def check_bill(llm_bill: Callable, db_path: Path, hidden: bool = False) -> None:
    cases = [("2026-10", "model")] if not hidden else [("2026-11", "department"), ("2026-09", "model")]
    with scratch_copy(db_path) as db:
        rows = read_rows(db)
        for month, by in cases:
            what = f"llm_bill(db, {month!r}, {by!r})"
            table = llm_bill(db, month, by)
            expect(isinstance(table, pd.DataFrame), f"{what} returned {type(table).__name__}",
                   "return a pandas DataFrame")
            expect_equal(list(table.columns), BILL_COLUMNS, f"the columns of {what}", ", ".join(BILL_COLUMNS))
            expect_equal(table.index.name, by, f"the index name of {what}", f"index_col={by!r}")
            expected = expected_bill(rows, month, by)
            expect_equal(sorted(map(str, table.index)), sorted(expected), f"the {by} values of {what}",
                         "group by the model that served (column `model`), load tests excluded")
            for column in ("cost_usd", "saved_cost_usd", "fallback_answers", "cache_hits", "calls"):
                for key, want in expected.items():
                    seen = float(table.loc[key][column])
                    if not math.isclose(seen, want[column], rel_tol=1e-9, abs_tol=1e-9):
                        fail(f"{column} of {by}={key} in {month}", round(want[column], 6), round(seen, 6),
                             _why_bill_differs(rows, month, by, key, column, seen))
            costs = list(table["cost_usd"])
            expect(all(a >= b for a, b in zip(costs, costs[1:])), f"{what} is not sorted by cost_usd, highest first",
                   "sort_values('cost_usd', ascending=False)")


# ---------------------------------------------------------------- exercise 3: retention

def totals(db: sqlite3.Connection) -> dict[tuple, tuple]:
    """Per (day, department, application, model, status, synthetic): calls, tokens, cost and duration, from the
    detailed rows and the daily aggregates together (the figures retention must never change)."""
    detail = db.execute(
        "SELECT strftime('%Y-%m-%d', ts, 'unixepoch'), department, application, model, status, synthetic, "
        "COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cost_usd), SUM(duration_seconds) "
        "FROM llm_calls GROUP BY 1, 2, 3, 4, 5, 6").fetchall()
    has_daily = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'llm_calls_daily'").fetchone()
    daily = db.execute(f"SELECT {', '.join(DAILY_KEY + DAILY_SUMS)} FROM llm_calls_daily").fetchall() if has_daily \
        else []
    merged: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0.0, 0.0])
    for row in [*detail, *daily]:
        entry = merged[tuple(row[:6])]
        for index, value in enumerate(row[6:]):
            entry[index] += value or 0
    return {key: tuple(values) for key, values in merged.items()}


def _compare_totals(before: dict, after: dict, when: str) -> None:
    by_month: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for key, values in before.items():
        month = by_month[key[0][:7]]
        month[0] += values[0]
        month[1] += values[3]
    for key, values in after.items():
        by_month[key[0][:7]][2] += values[3]
    for month, (_, cost_before, cost_after) in sorted(by_month.items()):
        if not math.isclose(cost_before, cost_after, rel_tol=1e-9, abs_tol=1e-12):
            fail(f"total cost_usd of {month} (detailed + daily rows) {when}", round(cost_before, 6),
                 round(cost_after, 6), "roll the old rows into llm_calls_daily before deleting them, in one "
                                       "transaction; add to an existing day's row (ON CONFLICT ... DO UPDATE SET "
                                       "calls = calls + excluded.calls, ...), never replace it")
    missing = sorted(set(before) - set(after))
    expect(not missing, f"after retention {when}, {len(missing)} groups vanished, e.g. {missing[:1]}",
           "aggregate by day, department, application, model, status and synthetic: every call, failed ones too")
    for key in sorted(before):
        want, got = before[key], after.get(key)
        same = got is not None and want[:3] == tuple(int(v) for v in got[:3]) and all(
            math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) for a, b in zip(want[3:], got[3:]))
        expect(same, f"the totals of {dict(zip(DAILY_KEY, key))} changed {when}: calls, input and output tokens, "
               f"cost, duration {want} -> {got}", "sum every column into the day's aggregate")


def _cutoff(now: float, keep_days: int) -> float:
    today = datetime.fromtimestamp(now, tz=timezone.utc).date()
    return datetime.combine(today - timedelta(days=keep_days), datetime.min.time(), tzinfo=timezone.utc).timestamp()


def _detail_state(db: sqlite3.Connection) -> tuple[int, float | None, float]:
    count, oldest, cost = db.execute("SELECT COUNT(*), MIN(ts), TOTAL(cost_usd) FROM llm_calls").fetchone()
    return int(count), oldest, float(cost)


@reports_stubs
def check_retention(apply_retention: Callable, db_path: Path, hidden: bool = False) -> None:
    now, keep = utc(2026, 11, 30, 12), 30
    with scratch_copy(db_path) as db:
        before = totals(db)
        cutoff = _cutoff(now, keep)
        old = db.execute("SELECT COUNT(*) FROM llm_calls WHERE ts < ?", (cutoff,)).fetchone()[0]
        recent = db.execute("SELECT COUNT(*), TOTAL(cost_usd) FROM llm_calls WHERE ts >= ?", (cutoff,)).fetchone()
        moved = apply_retention(db, now, keep)
        db.commit()
        expect_equal(moved, old, f"apply_retention(db, now=2026-11-30T12:00Z, keep_days={keep}) returned",
                     "the number of detailed rows rolled up (older than midnight UTC 30 days before now's day)")
        left_old = db.execute("SELECT COUNT(*) FROM llm_calls WHERE ts < ?", (cutoff,)).fetchone()[0]
        expect_equal(left_old, 0, "detailed rows older than the cutoff (2026-10-31T00:00Z) after retention",
                     "delete the rows you rolled up: detailed rows (with user ids) are kept only keep_days days")
        kept = db.execute("SELECT COUNT(*), TOTAL(cost_usd) FROM llm_calls WHERE ts >= ?", (cutoff,)).fetchone()
        expect_equal(kept[0], recent[0], "detailed rows since the cutoff after retention",
                     "keep every row from midnight UTC keep_days days before today's date on")
        _compare_totals(before, totals(db), "before and after retention")
        if not hidden:
            return
        again = apply_retention(db, now, keep)
        db.commit()
        expect_equal(again, 0, "a second apply_retention with the same now returned", "nothing is left to roll up")
        _compare_totals(before, totals(db), "after running retention twice")
        day, department, application, model = db.execute(  # a late call for a day and group already rolled up
            "SELECT day, department, application, model FROM llm_calls_daily WHERE status = 'success' AND "
            "synthetic = 0 AND day = '2026-10-03' ORDER BY cost_usd DESC LIMIT 1").fetchone()
        late = {**_call(request_id="req-late-1", ts=utc(2026, 10, 3, 8), department=department,
                        application=application, model=model, input_tokens=400, output_tokens=90),
                "cost_usd": catalog.cost_usd(model, 400, 90)}
        db.execute(f"INSERT INTO llm_calls ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                   tuple(late[c] for c in COLUMNS))
        db.commit()
        with_late = totals(db)
        expect_equal(apply_retention(db, now, keep), 1, "apply_retention after a late call for 2026-10-03 arrived")
        db.commit()
        _compare_totals(with_late, totals(db), "after a late call for an already rolled-up day")
        later = apply_retention(db, now + 86400, keep)
        db.commit()
        one_day = db.execute("SELECT COUNT(*) FROM llm_calls WHERE ts < ?", (_cutoff(now + 86400, keep),)).fetchone()[0]
        expect_equal(one_day, 0, "detailed rows older than the cutoff a day later")
        expect(later > 0, "apply_retention a day later rolled up nothing", "the cutoff moves with now")
        _compare_totals(with_late, totals(db), "a day later")
