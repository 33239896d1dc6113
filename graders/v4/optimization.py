"""Lab V4, exercise 4: a cost-optimization analyzer over the attribution store.

The data is a seeded fortnight of calls in the gateway's own store (stack/gateway/store.py: table llm_calls, one row
per provider call), priced with the catalog. Some of it is worth optimizing (an expensive model answering in a few
tokens, prompts stuffed with whole documents) and some of it looks so but is not (load-test traffic, which is
synthetic = 1 and no one's bill; a group with too few calls to judge; failed calls, which bill nothing and record 0
tokens). The checks compute what they expect from the rows in Python with the rules of the exercise.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import astuple
from pathlib import Path

import pandas as pd

from graders.labcheck import expect, expect_equal, fail, reports_stubs
from stack import catalog
from stack.gateway.store import SCHEMA, CallRecord

SEED = 2026
DAYS_OF_DATA = 14
MONTH_DAYS = 30
FIRST_TS = 1_790_812_800.0  # 2026-10-01T00:00:00Z
MIN_CALLS = 50              # fewer calls than this in the fortnight: too little to judge a group
SHORT_OUTPUT_P90 = 150      # 90 % of answers at most this many tokens: work a cheaper model does as well
OVERSIZE_FACTOR = 4         # a prompt above 4x its group's median input is oversized
GROUP = ["application", "step", "model"]

# (application, step, model, calls per day, input tokens (low, high), output tokens (low, high), error share)
TRAFFIC = (
    ("chatbot", "chat", "sim-balanced", 60, (300, 1500), (150, 600), 0.03),
    ("chatbot", "chat", "sim-fast", 90, (200, 900), (60, 300), 0.02),
    ("code-assistant", "chat", "sim-reasoning", 12, (1000, 4000), (300, 1200), 0.04),
    ("doc-search", "classify", "sim-reasoning", 20, (150, 400), (5, 40), 0.02),
    ("doc-search", "answer", "sim-balanced", 25, (800, 2500), (120, 420), 0.03),
    ("agent", "classify", "sim-fast", 15, (40, 120), (2, 10), 0.01),
    ("agent", "answer", "sim-balanced", 15, (300, 800), (40, 120), 0.02),
    ("agent", "format", "sim-fast", 15, (200, 500), (60, 140), 0.01),
    ("summarizer", "chat", "sim-balanced", 30, (1500, 3000), (100, 300), 0.05),
    ("summarizer", "extract", "sim-reasoning", 0.25, (200, 500), (10, 30), 0.0),
)
OVERSIZED = {("summarizer", "chat"): (0.08, (20_000, 40_000)), ("chatbot", "chat"): (0.01, (9_000, 12_000))}
# Prompts asked again word for word (FAQ questions, a classifier fed the same titles): the share of calls that repeat
# one of the group's first REPEAT_POOL prompts. Load tests repeat most (one scripted prompt list, no one's bill).
REPEATED = {("chatbot", "chat"): 0.25, ("doc-search", "classify"): 0.45, ("agent", "classify"): 0.3,
            ("summarizer", "chat"): 0.05}
SYNTHETIC_REPEATED = 0.9
REPEAT_POOL = 25
# Load tests: an expensive model, short answers, lots of calls; no one's bill.
SYNTHETIC = (("chatbot", "chat", "sim-reasoning", 40, (200, 600), (20, 80), 0.0),)
USERS = tuple(f"user-{n:03d}" for n in range(40))
DEPARTMENTS = {"chatbot": "support", "code-assistant": "engineering", "doc-search": "research", "agent": "sales",
               "summarizer": "marketing"}


# The store keeps no prompt text (privacy); the gateway's response-cache key of each call (a hash of the normalised
# request: stack/gateway/response_cache.py) is logged beside it, joinable on (request_id, step).
PROMPT_KEYS_SCHEMA = """
CREATE TABLE IF NOT EXISTS prompt_keys (
    request_id TEXT NOT NULL,
    step       TEXT NOT NULL,
    cache_key  TEXT NOT NULL,
    PRIMARY KEY (request_id, step)
);
"""


def optimization_store(path: Path, seed: int = SEED) -> Path:
    """Write the seeded fortnight to a fresh SQLite store at `path` (the gateway's schema); returns the path."""
    rng = random.Random(seed)
    path = Path(path)
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path)
    db.executescript(SCHEMA + PROMPT_KEYS_SCHEMA)
    rows = []
    keys: list[tuple[str, str, str]] = []
    key_rng = random.Random(seed + 1)  # its own generator: the calls' own draws stay as they were
    number = 0
    for synthetic, traffic in ((False, TRAFFIC), (True, SYNTHETIC)):
        for application, step, model, per_day, inputs, outputs, errors in traffic:
            calls = int(per_day * DAYS_OF_DATA * rng.uniform(0.9, 1.1))
            big_share, big = OVERSIZED.get((application, step), (0.0, (0, 0)))
            repeated = SYNTHETIC_REPEATED if synthetic else REPEATED.get((application, step), 0.0)
            pool: list[tuple[str, int]] = []  # (cache key, input tokens) of the prompts that come back
            for _ in range(calls):
                number += 1
                failed = rng.random() < errors
                tokens_in = rng.randint(*big) if rng.random() < big_share else rng.randint(*inputs)
                tokens_out = rng.randint(*outputs)
                if pool and key_rng.random() < repeated:
                    key, tokens_in = key_rng.choice(pool)  # the same prompt: the same input tokens
                else:
                    key = hashlib.sha256(f"{model}:{seed}:{number}".encode()).hexdigest()[:24]
                    if len(pool) < REPEAT_POOL:
                        pool.append((key, tokens_in))
                keys.append((f"r{number:06d}", step, key))
                if failed:
                    tokens_in = tokens_out = 0
                cost = 0.0 if failed else catalog.cost_usd(model, tokens_in, tokens_out)
                rows.append(CallRecord(
                    request_id=f"r{number:06d}", step=step, ts=FIRST_TS + rng.uniform(0, DAYS_OF_DATA * 86400),
                    user_id="loadgen" if synthetic else rng.choice(USERS),
                    department="engineering" if synthetic else DEPARTMENTS[application], application=application,
                    model=model, input_tokens=tokens_in, output_tokens=tokens_out, cost_usd=cost,
                    duration_seconds=round(rng.uniform(0.1, 4.0), 3), status="error" if failed else "success",
                    error_type="server_error" if failed else None, synthetic=synthetic))
    rows.sort(key=lambda r: r.ts)
    db.executemany(f"INSERT INTO llm_calls VALUES ({', '.join('?' * len(astuple(rows[0])))})",
                   [astuple(r) for r in rows])
    db.executemany("INSERT INTO prompt_keys VALUES (?, ?, ?)", keys)
    db.commit()
    db.close()
    return path


def cheaper_model(model: str) -> str | None:
    """The next cheaper model in the catalog (by price), or None for the cheapest."""
    ordered = sorted(catalog.load().models.values(), key=lambda m: (m.output_price_per_million,
                                                                    m.input_price_per_million))
    names = [m.name for m in ordered]
    index = names.index(model)
    return names[index - 1] if index > 0 else None


def _calls(db_path: Path) -> pd.DataFrame:
    with sqlite3.connect(db_path) as db:
        frame = pd.read_sql_query("SELECT * FROM llm_calls", db)
    return frame[(frame["status"] == "success") & (frame["synthetic"] == 0)]


def reference_downgrades(db_path: Path) -> pd.DataFrame:
    calls = _calls(db_path)
    rows = []
    for (application, step, model), group in calls.groupby(GROUP):
        target = cheaper_model(model)
        p90 = float(group["output_tokens"].quantile(0.9))
        if target is None or len(group) < MIN_CALLS or p90 > SHORT_OUTPUT_P90:
            continue
        cost = float(group["cost_usd"].sum())
        cheaper = sum(catalog.cost_usd(target, i, o) for i, o in zip(group["input_tokens"], group["output_tokens"]))
        scale = MONTH_DAYS / DAYS_OF_DATA
        rows.append((application, step, model, target, len(group), p90, cost * scale, (cost - cheaper) * scale))
    table = pd.DataFrame(rows, columns=[*GROUP, "cheaper_model", "calls", "p90_output_tokens", "monthly_cost_usd",
                                        "monthly_savings_usd"])
    return table.sort_values("monthly_savings_usd", ascending=False, kind="stable").reset_index(drop=True)


def reference_oversized(db_path: Path) -> pd.DataFrame:
    calls = _calls(db_path)
    rows = []
    for (application, step, model), group in calls.groupby(GROUP):
        median = float(group["input_tokens"].median())
        big = group[group["input_tokens"] > OVERSIZE_FACTOR * median]
        if big.empty:
            continue
        excess = float((big["input_tokens"] - median).sum())
        price = catalog.load().models[model].input_price_per_million
        savings = excess * price / 1_000_000 * MONTH_DAYS / DAYS_OF_DATA
        rows.append((application, step, model, median, len(big), len(big) / len(group), excess, savings))
    table = pd.DataFrame(rows, columns=[*GROUP, "median_input_tokens", "oversized_calls", "share", "excess_tokens",
                                        "monthly_savings_usd"])
    return table.sort_values("monthly_savings_usd", ascending=False, kind="stable").reset_index(drop=True)


def reference_savings(db_path: Path) -> dict[str, float]:
    monthly = float(_calls(db_path)["cost_usd"].sum()) * MONTH_DAYS / DAYS_OF_DATA
    downgrade = float(reference_downgrades(db_path)["monthly_savings_usd"].sum())
    trimming = float(reference_oversized(db_path)["monthly_savings_usd"].sum())
    return {"monthly_cost_usd": monthly, "downgrade_usd": downgrade, "trimming_usd": trimming,
            "total_usd": downgrade + trimming, "share": (downgrade + trimming) / monthly}


@functools.lru_cache(maxsize=4)
def _seeded_store_bytes(seed: int) -> bytes:
    """Each seed's store is built once per kernel (about a second each); every check gets a fresh copy of it."""
    with tempfile.TemporaryDirectory(prefix="v4-lab-") as folder:
        return optimization_store(Path(folder) / "calls.db", seed).read_bytes()


@contextmanager
def _stores(hidden: bool) -> Iterator[list[Path]]:
    with tempfile.TemporaryDirectory(prefix="v4-lab-") as folder:
        seeds = (SEED, SEED + 11) if hidden else (SEED,)
        paths = [Path(folder) / f"calls-{seed}.db" for seed in seeds]
        for path, seed in zip(paths, seeds):
            path.write_bytes(_seeded_store_bytes(seed))
        yield paths


def _frame(result: object, name: str, columns: list[str]) -> pd.DataFrame:
    expect(isinstance(result, pd.DataFrame), f"{name} returned {type(result).__name__}, not a DataFrame")
    missing = [c for c in columns if c not in result.columns]
    expect(not missing, f"{name} lacks the column(s) {missing}", f"columns: {columns}")
    return result


def _keys(frame: pd.DataFrame) -> list[tuple]:
    return [tuple(row) for row in frame[GROUP].itertuples(index=False, name=None)]


def _explain_money(what: str, seen: float, want: float) -> None:
    if math.isclose(seen, want, rel_tol=1e-6, abs_tol=1e-9):
        return
    hints = [(DAYS_OF_DATA / MONTH_DAYS, f"scale the {DAYS_OF_DATA} days of data to a {MONTH_DAYS}-day month "
                                         f"(x {MONTH_DAYS}/{DAYS_OF_DATA})"),
             (1000.0, "prices are per MILLION tokens (divide by 1,000,000)")]
    hint = next((text for factor, text in hints if want and math.isclose(seen / want, factor, rel_tol=1e-3)),
                "re-price each call's tokens with catalog.cost_usd and sum")
    fail(what, round(want, 6), round(seen, 6), hint)


@reports_stubs
def check_downgrades(downgrade_candidates: Callable, hidden: bool = False) -> None:
    with _stores(hidden) as stores:
        for store in stores:
            _check_downgrades(downgrade_candidates, store)


def _check_downgrades(downgrade_candidates: Callable, store: Path) -> None:
    expected = reference_downgrades(store)
    table = _frame(downgrade_candidates(store), "downgrade_candidates", list(expected.columns))
    if _keys(table) != _keys(expected):
        extra = set(_keys(table)) - set(_keys(expected))
        hint = "most savings first" if set(_keys(table)) == set(_keys(expected)) else (
            "synthetic (load-test) calls are no one's traffic: leave them out" if ("chatbot", "chat",
                                                                                     "sim-reasoning") in extra
            else f"a group needs at least {MIN_CALLS} calls to judge" if ("summarizer", "extract",
                                                                         "sim-reasoning") in extra
            else f"p90 of output tokens <= {SHORT_OUTPUT_P90}, successful calls only, and a cheaper model must "
                 "exist")
        fail("downgrade candidates (application, step, model)", _keys(expected), _keys(table), hint)
    expect_equal(list(table["cheaper_model"]), list(expected["cheaper_model"]), "cheaper_model of each candidate",
                 "the next cheaper model: sim-reasoning -> sim-balanced -> sim-fast (cheaper_model(...))")
    expect_equal([int(c) for c in table["calls"]], [int(c) for c in expected["calls"]], "calls per candidate",
                 "successful, non-synthetic calls only")
    for seen, want, key in zip(table["p90_output_tokens"], expected["p90_output_tokens"], _keys(expected)):
        expect(math.isclose(float(seen), float(want), rel_tol=1e-9),
               f"p90_output_tokens of {key}: expected {want}, got {seen}",
               "the 90th percentile of output_tokens: Series.quantile(0.9), not the mean or the median")
    for column in ("monthly_cost_usd", "monthly_savings_usd"):
        for seen, want, key in zip(table[column], expected[column], _keys(expected)):
            _explain_money(f"{column} of {key}", float(seen), float(want))


@reports_stubs
def check_oversized(oversized_prompts: Callable, hidden: bool = False) -> None:
    with _stores(hidden) as stores:
        for store in stores:
            _check_oversized(oversized_prompts, store)


def _check_oversized(oversized_prompts: Callable, store: Path) -> None:
    expected = reference_oversized(store)
    table = _frame(oversized_prompts(store), "oversized_prompts", list(expected.columns))
    if _keys(table) != _keys(expected):
        fail("groups with oversized prompts (application, step, model)", _keys(expected), _keys(table),
             f"a prompt is oversized above {OVERSIZE_FACTOR}x the median input of its group's successful, "
             "non-synthetic calls (failed calls record 0 tokens and drag the median down); most savings first")
    hints = {"median_input_tokens": "the median of the group's successful, non-synthetic calls (failed calls "
                                    "record 0 tokens and drag it down)",
             "oversized_calls": f"calls above {OVERSIZE_FACTOR}x the median, strictly",
             "share": "oversized calls / the group's calls",
             "excess_tokens": "input tokens above the group's median, summed over the oversized calls"}
    for column, hint in hints.items():
        seen, want = [float(v) for v in table[column]], [float(v) for v in expected[column]]
        expect(all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) for a, b in zip(seen, want)),
               f"{column}: expected {[round(v, 4) for v in want]}, got {[round(v, 4) for v in seen]}", hint)
    for seen, want, key in zip(table["monthly_savings_usd"], expected["monthly_savings_usd"], _keys(expected)):
        price = catalog.load().models[key[2]]
        if want and math.isclose(float(seen) / float(want), price.output_price_per_million /
                                 price.input_price_per_million, rel_tol=1e-3):
            fail(f"monthly_savings_usd of {key}", round(float(want), 6), round(float(seen), 6),
                 "trimming removes INPUT tokens (the prompt): price them at the model's input price, not its output "
                 "price")
        _explain_money(f"monthly_savings_usd of {key}", float(seen), float(want))


@reports_stubs
def check_savings(projected_savings: Callable, hidden: bool = False) -> None:
    with _stores(hidden) as stores:
        for store in stores:
            _check_savings(projected_savings, store)


def _check_savings(projected_savings: Callable, store: Path) -> None:
    expected = reference_savings(store)
    result = projected_savings(store, reference_downgrades(store), reference_oversized(store))
    expect(isinstance(result, dict), f"projected_savings returned {type(result).__name__}, not a dict")
    for key, want in expected.items():
        seen = result.get(key)
        expect(isinstance(seen, (int, float)), f"projected_savings()[{key!r}] is {seen!r}, not a number")
        if key == "monthly_cost_usd" and not math.isclose(seen, want, rel_tol=1e-6):
            with sqlite3.connect(store) as db:
                everything = db.execute("SELECT SUM(cost_usd) FROM llm_calls").fetchone()[0] * MONTH_DAYS / \
                    DAYS_OF_DATA
            if math.isclose(seen, everything, rel_tol=1e-6):
                fail("the monthly cost of real traffic", round(want, 4), round(seen, 4),
                     "leave the synthetic (load-test) calls out: they are no one's bill")
        if key == "share":
            expect(math.isclose(seen, want, rel_tol=1e-6), f"share of the monthly cost saved: expected "
                   f"{want:.6f}, got {seen!r}", "total_usd / monthly_cost_usd")
        else:
            _explain_money(f"projected_savings()[{key!r}]", float(seen), float(want))


CACHE_COLUMNS = [*GROUP, "calls", "repeated_calls", "monthly_savings_usd"]


def _keyed_calls(db_path: Path, real_only: bool = True) -> pd.DataFrame:
    with sqlite3.connect(db_path) as db:
        frame = pd.read_sql_query("SELECT c.*, k.cache_key FROM llm_calls c JOIN prompt_keys k "
                                  "USING (request_id, step)", db)
    if real_only:
        frame = frame[(frame["status"] == "success") & (frame["synthetic"] == 0)]
    return frame


def _cache_table(calls: pd.DataFrame, saved: Callable[[pd.DataFrame], float], first_paid: bool = True) -> pd.DataFrame:
    rows = []
    for (application, step, model), group in calls.groupby(GROUP):
        ordered = group.sort_values("ts", kind="stable")
        repeats = ordered[ordered.duplicated("cache_key")] if first_paid else \
            ordered[ordered["cache_key"].duplicated(keep=False)]
        if repeats.empty:
            continue
        rows.append((application, step, model, len(group), len(repeats),
                     saved(repeats) * MONTH_DAYS / DAYS_OF_DATA))
    table = pd.DataFrame(rows, columns=CACHE_COLUMNS)
    return table.sort_values("monthly_savings_usd", ascending=False, kind="stable").reset_index(drop=True)


def reference_cache_savings(db_path: Path) -> pd.DataFrame:
    return _cache_table(_keyed_calls(db_path), lambda repeats: float(repeats["cost_usd"].sum()))


def _output_only(repeats: pd.DataFrame) -> float:
    return sum(catalog.cost_usd(m, 0, o) for m, o in zip(repeats["model"], repeats["output_tokens"]))


@reports_stubs
def check_cache_savings(cache_savings: Callable, hidden: bool = False) -> None:
    with _stores(hidden) as stores:
        for store in stores:
            _check_cache_savings(cache_savings, store)


def _by_group(table: pd.DataFrame, column: str) -> dict[tuple, float]:
    return {key: float(value) for key, value in zip(_keys(table), table[column])}


def _check_cache_savings(cache_savings: Callable, store: Path) -> None:
    expected = reference_cache_savings(store)
    table = _frame(cache_savings(store), "cache_savings", CACHE_COLUMNS)
    if set(_keys(table)) != set(_keys(expected)):
        extra = set(_keys(table)) - set(_keys(expected))
        hint = ("synthetic (load-test) calls repeat one scripted prompt list and are no one's bill: leave them out"
                if ("chatbot", "chat", "sim-reasoning") in extra
                else "a group is listed when at least one of its calls repeats an earlier call's cache_key")
        fail("groups a response cache would save on (application, step, model)", _keys(expected), _keys(table), hint)
    calls = _keyed_calls(store)
    want_calls, seen_calls = _by_group(expected, "calls"), _by_group(table, "calls")
    if seen_calls != want_calls:
        fail("calls per group", want_calls, seen_calls,
             "successful, non-synthetic calls only (a failed call is never cached and saves nothing)")
    want_repeats, seen_repeats = _by_group(expected, "repeated_calls"), _by_group(table, "repeated_calls")
    if seen_repeats != want_repeats:
        with_first = _by_group(_cache_table(calls, lambda r: 0.0, first_paid=False), "repeated_calls")
        hint = ("the FIRST call of a prompt is paid (it fills the cache): only the calls after it are saved"
                if seen_repeats == with_first else
                "per group, the calls whose cache_key an earlier call (by ts) of the group already had")
        fail("repeated_calls per group", want_repeats, seen_repeats, hint)
    seen_money = _by_group(table, "monthly_savings_usd")
    for key, want in _by_group(expected, "monthly_savings_usd").items():
        if math.isclose(seen_money[key], want, rel_tol=1e-6, abs_tol=1e-9):
            continue
        output_only = _by_group(_cache_table(calls, _output_only), "monthly_savings_usd")
        if math.isclose(seen_money[key], output_only[key], rel_tol=1e-6):
            fail(f"monthly_savings_usd of {key}", round(want, 6), round(seen_money[key], 6),
                 "a cache hit saves the WHOLE call, its input tokens as well as its output: the repeats' cost_usd")
        _explain_money(f"monthly_savings_usd of {key}", seen_money[key], want)
    expect_equal(_keys(table), _keys(expected), "the order of the groups", "most savings first")
