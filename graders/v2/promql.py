"""Lab V2, exercises 3 and 8: the PromQL queries, checked against a known batch of requests (exercise 8's batch of
streamed and cacheable requests: graders/v2/llm_batch.py).

The notebook's batch cell drives a known batch through the gateway and records its ground truth (`batch`: start and
end, the Prometheus samples around it, per-model requests, errors, tokens, cost and p95). A query is first linted for
the classic mistakes (named before any number is compared), then run as written, then rewritten to cover exactly the
batch (`at_batch`) and compared with the ground truth. The hidden check compares the query as written with a reference
query at the end of the batch.

Queries run through the notebook's own `prom_query(expr, at=...)` -> [(labels, value), ...], which raises a
RuntimeError (the notebook's PromQLError) when Prometheus refuses the query.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from graders.labcheck import expect, expect_equal, fail, not_attempted
from stack import catalog

PromQuery = Callable[..., list[tuple[dict[str, str], float]]]

RANGE_CALL = re.compile(r"\b(rate|irate|increase)\s*\(\s*((?:[A-Za-z_:][A-Za-z0-9_:]*)?\s*(?:\{[^{}]*\})?)\s*"
                        r"\[\s*([0-9smhdwy]+)\s*\]\s*\)")
_AGGREGATION = re.compile(r"\b(sum|avg|min|max|count|group|stddev|stdvar|topk|bottomk|quantile)\s*"
                          r"(?:(by|without)\s*\(([^()]*)\))?\s*\(")
_METRIC = {"request_rate": "llm_requests_total", "error_ratio": "llm_requests_total",
           "p95": "llm_request_duration_seconds_bucket", "cost_per_hour": "llm_cost_usd_total",
           "tokens_per_minute": "llm_tokens_total",
           # exercise 8 (graders/v2/llm_batch.py)
           "ttft_p95": "llm_time_to_first_token_seconds_bucket", "cache_hit_ratio": "llm_response_cache_hits_total",
           "output_tokens_per_second": "llm_tokens_total"}
_BY_MODEL = {"request_rate", "error_ratio", "p95", "tokens_per_minute", "ttft_p95", "output_tokens_per_second"}
_QUANTILES = {"p95", "ttft_p95"}


def delta(expr: str, start: float, end: float) -> str:
    """How much each series of the selector `expr` grew between two instants (a series born in between counts from
    0)."""
    return f"({expr} @ {end:.3f}) - (({expr} @ {start:.3f}) or ({expr} @ {end:.3f}) * 0)"


def _closing(expr: str, opening: int) -> int:
    depth = 0
    for index in range(opening, len(expr)):
        depth += {"(": 1, ")": -1}.get(expr[index], 0)
        if depth == 0:
            return index
    return len(expr) - 1


def aggregations(expr: str) -> list[tuple[str, str | None, set[str]]]:
    """(operator, 'by' | 'without' | None, label names) of every aggregation, prefix or postfix grouping."""
    found = []
    for match in _AGGREGATION.finditer(expr):
        operator, clause, names = match.groups()
        if clause is None:
            postfix = re.match(r"\s*(by|without)\s*\(([^()]*)\)", expr[_closing(expr, match.end() - 1) + 1:])
            if postfix:
                clause, names = postfix.groups()
        found.append((operator, clause, {name.strip() for name in (names or "").split(",") if name.strip()}))
    return found


def _keeps(aggregation: tuple[str, str | None, set[str]], label: str) -> bool:
    _, clause, names = aggregation
    return (clause == "by" and label in names) or (clause == "without" and label not in names)


def _division(expr: str) -> tuple[str, str] | None:
    """(left, right) around the outermost `/`, or None."""
    depth, quote, best = 0, None, None
    for index, char in enumerate(expr):
        if quote:
            quote = None if char == quote and expr[index - 1] != "\\" else quote
        elif char in "\"'`":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "/" and (best is None or depth < best[0]):
            best = (depth, index)
    return None if best is None else (expr[:best[1]], expr[best[1] + 1:])


def lint(name: str, expr: str, kind: str) -> None:
    """The classic mistakes, named before any number is compared."""
    metric = _METRIC[kind]
    if kind == "ttft_p95" and "llm_request_duration_seconds" in expr:
        fail(f"{name} reads the whole request's latency", "llm_time_to_first_token_seconds_bucket",
             "llm_request_duration_seconds_bucket", "a streamed answer's first token comes long before its last: "
             "time to first token has a histogram of its own")
    expect(metric in expr, f"{name} does not query {metric}", "query the gateway's raw metric (docs/contract.md)")
    expect(not re.search(r"\birate\s*\(", expr), f"{name} uses irate()",
           "irate() follows only the last two samples (spiky); dashboards and alerts use rate()")
    expect(not re.search(r"\bincrease\s*\(", expr), f"{name} uses increase(), a count per window",
           "rate(...[1m]) is already per second" if kind == "output_tokens_per_second"
           else "rate(...[1m]) is per second; multiply it for per minute or per hour")
    expect("[" not in RANGE_CALL.sub("", expr), f"{name} uses a range selector outside rate(metric[w]) (a subquery "
           "or an offset?)", "rate(metric{...}[1m]) directly, nothing else in square brackets")
    windows = {window for _, _, window in RANGE_CALL.findall(expr)}
    expect(len(windows) <= 1, f"{name} mixes windows {sorted(windows)}", "use the same window everywhere")
    if kind in _QUANTILES:
        expect("histogram_quantile" in expr, f"{name} does not call histogram_quantile",
               "histogram_quantile(0.95, <per-bucket rates>)")
        quantile = re.search(r"histogram_quantile\s*\(\s*([0-9.eE+-]+)\s*,", expr)
        expect(quantile is not None and float(quantile.group(1)) == 0.95,
               f"{name} asks for quantile {quantile.group(1) if quantile else '?'}", "p95 is the 0.95 quantile")
        expect("_bucket" not in RANGE_CALL.sub("", expr),
               f"{name} computes a quantile over raw buckets (cumulative counts since the gateway started)",
               f"take the rate of the buckets first: rate({metric}[1m])")
        found = aggregations(expr)
        expect(bool(found), f"{name} does not add up the buckets of different instances",
               "sum by (le, model) (rate(..._bucket[1m]))")
        expect(all(_keeps(a, "le") for a in found), f"{name} aggregates the `le` label away (missing by (le))",
               "histogram_quantile needs the bucket boundaries: sum by (le, model) (...)")
    else:
        expect(bool(RANGE_CALL.search(expr)), f"{name} reads a counter without rate()",
               "a counter only grows since the process started: rate(counter[1m]) is its recent per-second rate")
    if kind == "error_ratio":
        _lint_ratio(name, expr)
    if kind == "cache_hit_ratio":
        _lint_hit_ratio(name, expr)


def _lint_ratio(name: str, expr: str) -> None:
    sides = _division(expr)
    expect(sides is not None, f"{name} divides nothing", "errors / all requests")
    left, right = sides
    expect(bool(aggregations(left)) or bool(aggregations(right)),
           f"{name} is a ratio of unaggregated series: each error series is divided by itself (ratio 1) or "
           "matches nothing", "sum by (model) on both sides first, then divide")
    expect(bool(aggregations(left)) and bool(aggregations(right)),
           f"{name} aggregates only one side of the division", "sum by (model) (...) / sum by (model) (...)")
    expect(bool(re.search(r'status\s*=\s*"error"', left)), f'{name}: the numerator is not status="error"',
           "numerator: failed requests only")
    expect(not re.search(r'status\s*=~?\s*"', right), f"{name}: the denominator filters on status",
           "denominator: every request, successful or not")


def _lint_hit_ratio(name: str, expr: str) -> None:
    expect(not any(operator == "avg" for operator, _, _ in aggregations(expr)),
           f"{name} averages per-model ratios: a model with 2 lookups gets the same vote as one with 12",
           "a ratio of summed rates: sum(rate(hits)) / (sum(rate(hits)) + sum(rate(misses)))")
    sides = _division(expr)
    expect(sides is not None, f"{name} divides nothing", "hits / lookups, where lookups = hits + misses")
    left, right = sides
    expect("llm_requests_total" not in right, f"{name} divides hits by provider calls (llm_requests_total)",
           "a hit is not a provider call, so no request counter holds it: lookups = hits + misses")
    expect("llm_response_cache_misses_total" in right and "llm_response_cache_hits_total" in right,
           f"{name}'s denominator is not every lookup (hits + misses)",
           "sum(rate(hits)) / (sum(rate(hits)) + sum(rate(misses)))")
    expect(bool(aggregations(left)) and bool(aggregations(right)),
           f"{name} divides unaggregated series: one ratio per model", "sum(...) on both sides first, then divide")


def _by_key(samples: list[tuple[dict[str, str], float]], name: str, kind: str) -> dict[Any, float]:
    keys = {frozenset(labels) for labels, _ in samples}
    if kind in _BY_MODEL:
        expect(bool(samples), f"{name} returns no series at the end of the batch",
               "try it with prom_query(...): a window too short for two scrapes, or a typo in a metric or label")
        labels = sorted(set().union(*keys))
        hint = "aggregate to one series per model: sum by (model) (...)"
        if not labels:
            hint = "keep the model label: sum by (model) (...)" + (" on both sides" if kind == "error_ratio" else "")
        elif kind == "error_ratio" and "status" in labels:
            hint = "series divided by series keep their status label: sum by (model) on both sides, then divide"
        expect_equal(labels, ["model"], f"{name}'s labels", hint)
        expect_equal(sorted(labels["model"] for labels, _ in samples), catalog.load().model_names,
                     f"{name}'s models")
        return {labels["model"]: value for labels, value in samples}
    expect_equal(len(samples), 1, f"number of series {name} returns", "one number: sum(...) over every model")
    expect_equal(sorted(samples[0][0]), [], f"{name}'s labels", "sum(...) without by: one total")
    return {(): samples[0][1]}


def _run(prom_query: PromQuery, name: str, expr: str, at: float) -> list[tuple[dict[str, str], float]]:
    try:
        return prom_query(expr, at=at)
    except RuntimeError as error:  # the notebook's PromQLError
        fail(f"Prometheus rejects {name}", "a valid query", str(error), "try it with prom_query(...) first")
        raise  # not reached: fail() raises


def at_batch(expr: str, batch: Mapping[str, Any]) -> str:
    """`expr` over exactly the batch: rate(m[w]) -> (m @ end - m @ start) / batch seconds."""
    def replace(match: re.Match[str]) -> str:
        _, selector, _ = match.groups()
        grown = f"({delta(selector, batch['start'], batch['end'])})"
        return f"({grown} / {batch['seconds']:.6f})"
    return RANGE_CALL.sub(replace, expr)


def _truth(kind: str, batch: Mapping[str, Any]) -> dict[Any, float]:
    truth, seconds, models = batch.get("truth"), batch["seconds"], catalog.load().model_names
    if kind == "request_rate":
        return {m: truth[m]["requests"] / seconds for m in models}
    if kind == "error_ratio":
        return {m: truth[m]["errors"] / truth[m]["requests"] for m in models}
    if kind == "p95":
        return dict(batch["p95"])
    if kind == "tokens_per_minute":
        return {m: (truth[m]["input_tokens"] + truth[m]["output_tokens"]) / seconds * 60 for m in models}
    if kind == "ttft_p95":
        return dict(batch["ttft_p95"])
    if kind == "cache_hit_ratio":
        return {(): sum(batch["hits"].values()) / sum(batch["lookups"].values())}
    if kind == "output_tokens_per_second":
        return {m: batch["output_tokens"][m] / seconds for m in models}
    return {(): sum(t["cost_usd"] for t in truth.values()) / seconds * 3600}


def _hint(kind: str, seen: float, expected: float) -> str:
    ratio = seen / expected if expected else math.inf
    if kind == "output_tokens_per_second" and math.isclose(ratio, 60, rel_tol=0.01):
        return "rate() is already per second: no x 60"
    if kind == "cache_hit_ratio" and math.isclose(seen, 0.5, rel_tol=0.01):
        return ("that is the average of the per-model ratios; a quiet model gets the same vote as a busy one: "
                "sum the rates over models, then divide")
    for factor, hint in ((3600, "per hour = per second x 3600"), (60, "per minute = per second x 60"),
                         (1000, "off by a factor of 1000")):
        if math.isclose(ratio, factor, rel_tol=0.01) or math.isclose(ratio, 1 / factor, rel_tol=0.01):
            return hint
    return {"request_rate": "count every request (no status filter), summed by model",
            "error_ratio": 'status="error" requests / all requests, each summed by (model)',
            "p95": "histogram_quantile(0.95, sum by (le, model) (rate(..._bucket[1m])))",
            "cost_per_hour": "sum the cost rate of every model and department, x 3600",
            "tokens_per_minute": "input and output tokens together (no token_type filter), per minute",
            "ttft_p95": "histogram_quantile(0.95, sum by (le, model) (rate(llm_time_to_first_token_seconds_bucket[1m])))",
            "cache_hit_ratio": "hits / (hits + misses), each summed over every model",
            "output_tokens_per_second": 'generated tokens only (token_type="output"), per second, summed by model'}[kind]


def check_query(name: str, expr: Any, kind: str, batch: Mapping[str, Any] | None, prom_query: PromQuery,
                reference: str | None = None) -> None:
    """Lint, run as written, then compare with the batch's ground truth; with a `reference` query (the hidden
    check), also compare the query as written with the reference at the end of the batch."""
    expect(batch is not None, "the exercise 3 batch did not run, so there is nothing to compare with",
           "see the error under the set-up cell of exercise 3 (is the stack up? is something else sending requests?)"
           " and run it again")
    if expr is None:
        not_attempted(f"set {name} to your PromQL query in the cell above and run it")
    expect(isinstance(expr, str) and bool(expr.strip()), f"{name} is not a PromQL string",
           "write your query as a string in the cell above and run it")
    lint(name, expr, kind)
    _by_key(_run(prom_query, name, expr, batch["end"]), name, kind)
    seen = _by_key(_run(prom_query, name, at_batch(expr, batch), batch["end"]), name, kind)
    for key, expected in _truth(kind, batch).items():
        value = seen.get(key)
        if value is None or not math.isclose(value, expected, rel_tol=1e-6, abs_tol=1e-9):
            where = f" for {key}" if key else ""
            fail(f"{name} over the known batch{where}", round(expected, 6), value, _hint(kind, value or 0, expected))
    if reference is not None:
        _same_as_reference(name, expr, kind, batch, prom_query, reference)


def _same_as_reference(name: str, expr: str, kind: str, batch: Mapping[str, Any], prom_query: PromQuery,
                       reference: str) -> None:
    """`expr` as written equals `reference` (with the student's window) at the end of the batch."""
    window = (RANGE_CALL.findall(expr) or [("", "", "1m")])[0][2]
    mine = _by_key(_run(prom_query, name, expr, batch["end"]), name, kind)
    theirs = _by_key(_run(prom_query, "the reference", reference.format(w=window), batch["end"]), name, kind)
    for key, expected in theirs.items():
        value = mine.get(key)
        same = value == expected or (math.isnan(expected) and value is not None and math.isnan(value))
        if not same and not math.isclose(value or 0, expected, rel_tol=1e-6, abs_tol=1e-9):
            fail(f"{name} at the end of the batch ({window} window){' for ' + str(key) if key else ''}",
                 round(expected, 6), value, _hint(kind, value or 0, expected))
