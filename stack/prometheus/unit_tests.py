"""promtool unit tests per profile, written from the alert cases of alert_cases.py and checked by the model.

A firing case is checked one test interval before the rule's `for` elapses (not firing yet) and when it elapses
(firing, with exact labels and annotations); a quiet case halfway, at the end and when an alert came closest to firing.
The recording rules get tests of their own, on numbers a reader can check by hand. Timings come from the profile, so
the same code renders the tests of every profile.

promtool evaluates every rule of a test file's rule files at every step, so an alert's tests read a subset of the real
rule files (tests/rules/<alertname>.yml): the same groups holding only that alert's rules and the recording rules they
read, each identical to its entry in rules/ (tests/test_prometheus_rules.py checks). A day of production budget
samples then costs a quarter of the CPU.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from math import gcd
from typing import Mapping, Sequence

from stack.gateway.metrics import LATENCY_BUCKETS_SECONDS
from stack.profiles import Duration, Profile
from stack.prometheus.alert_cases import ALERT_TESTS, AlertCase, Ctx, Key, rule_key
from stack.prometheus.alerts import alert_rules
from stack.prometheus.rule_model import Evaluate, Model
from stack.prometheus.rulefiles import rule_files
from stack.prometheus.rules import RECORDING_GROUP, AlertRule
from stack.prometheus.series import CaseError, Labels, Phase, Timeline, Vector, counter, histogram, labels_of
from stack.prometheus.shapes import BALANCED, FAST, REASONING
from stack.prometheus.templating import render
from stack.prometheus.world import GATEWAY, World

RECORDING_TESTS = "recording.yml"
RULE_SUBSETS = "rules"  # under tests/: per alertname, the rules its tests evaluate
_METRIC_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*(?::[a-zA-Z0-9_]+)+")
ALERTS_FILE, CASES_FILE = "stack/prometheus/alerts.py", "stack/prometheus/alert_cases.py"


def unit_test_interval(p: Profile) -> Duration:
    """The sample and evaluation step of the unit tests: the longest one that divides every window and `for`, is a
    multiple of the profile's evaluation interval, leaves >= 4 samples in a rate window, and >= 2 steps in every
    `for` (so "one step before `for` elapses" is a pending alert, not the first evaluation). Production: 1m, so a day
    of budget is 1440 samples, not 5760; classroom: 1s."""
    durations = [p.rate_window, p.baseline_window, p.budget_window, *p.for_durations.values()]
    common = gcd(*(d.seconds for d in durations))
    shortest_for = min(d.seconds for d in p.for_durations.values())
    for step in range(common, 0, -1):
        if (common % step == 0 and step % p.evaluation_interval.seconds == 0
                and p.rate_window.seconds >= 4 * step and shortest_for >= 2 * step):
            return Duration(step)
    raise CaseError(f"profile {p.name}: no unit-test interval divides its windows and `for` durations and is a "
                    f"multiple of its evaluation interval {p.evaluation_interval}")


def _check_registry(rules: Sequence[AlertRule]) -> None:
    """Every alert rule has its entry in ALERT_TESTS (a model of its expression and its cases), and every entry a
    rule: the error names the file to edit."""
    names = dict.fromkeys(rule.alert for rule in rules)
    problems = [f"alert {name} has no entry in ALERT_TESTS: add its model and its cases to {CASES_FILE}"
                for name in names if name not in ALERT_TESTS]
    problems += [f"ALERT_TESTS in {CASES_FILE} has an entry for {name}, which is no alert rule of {ALERTS_FILE}"
                 for name in ALERT_TESTS if name not in names]
    for rule in rules:
        key = rule_key(rule)
        if rule.alert in ALERT_TESTS and key[1:] not in ALERT_TESTS[rule.alert].models:
            problems.append(f"{key} has no model: add ({key[1]!r}, {key[2]!r}) to the models of {rule.alert} in "
                            f"ALERT_TESTS ({CASES_FILE})")
    if problems:
        raise CaseError("; ".join(problems))


def _model_of(rule: AlertRule) -> Evaluate:
    return ALERT_TESTS[rule.alert].models[rule_key(rule)[1:]]


@dataclass(frozen=True)
class AlertStates:
    """One rule's alerts at each test step, following Prometheus: pending from the first evaluation that returns a
    series, firing once `for` has elapsed, gone as soon as the series is missing."""

    hold: int
    step: int
    active: list[dict[Labels, tuple[int, float]]]  # per step: labels -> (active since, value)

    def firing(self, index: int) -> Vector:
        t = index * self.step
        return {labels: value for labels, (since, value) in self.active[index].items() if t - since >= self.hold}

    def pending_for(self, index: int) -> int:
        """How long the oldest pending alert has been pending (-1: none is)."""
        t = index * self.step
        return max((t - since for since, _ in self.active[index].values() if t - since < self.hold), default=-1)


def alert_states(rule: AlertRule, evaluate: Evaluate, m: Model) -> AlertStates:
    step = m.tl.interval.seconds
    active: dict[Labels, tuple[int, float]] = {}
    over_time = []
    for t in range(0, m.tl.horizon + 1, step):
        now = evaluate(m, t)
        active = {labels: (active[labels][0] if labels in active else t, value) for labels, value in now.items()}
        over_time.append(active)
    return AlertStates(rule.for_.seconds if rule.for_ else 0, step, over_time)





def _expected_alerts(rules: Sequence[AlertRule], states: Sequence[AlertStates], index: int) -> list[dict]:
    alerts = []
    for rule, rule_states in zip(rules, states):
        for labels, value in sorted(rule_states.firing(index).items()):
            label = dict(labels)
            annotations = {key: render(text, label, value) for key, text in rule.annotations.items()}
            alerts.append({"exp_labels": {**label, **rule.labels}, "exp_annotations": annotations})
    return alerts


def _check_steps(case: AlertCase, keys: Sequence[Key], states: Sequence[AlertStates], step: int) -> list[int]:
    """Firing: one step before each declared rule fires (pending), and when it fires. Quiet: halfway, at the end,
    and when an alert came closest to firing (if one was ever pending)."""
    steps = range(len(states[0].active))
    extra = {at.steps(Duration(step)) for at in case.also_at}
    if not case.fires:
        closest = max(steps, key=lambda i: max(s.pending_for(i) for s in states))
        pending = any(s.pending_for(closest) >= 0 for s in states)
        return sorted({len(steps) // 2, steps[-1], *extra, *([closest] if pending else [])})
    chosen = set(extra)
    for key in case.fires:
        first = next(i for i in steps if states[keys.index(key)].firing(i))
        chosen |= {first - 1, first} if first else {0, steps[-1]}
    return sorted(chosen)


def _alert_test_group(p: Profile, step: Duration, case: AlertCase, rules: Sequence[AlertRule]) -> dict:
    model = Model(p, Timeline(step, case.world.input))
    keys = [rule_key(rule) for rule in rules]
    try:
        states = [alert_states(rule, _model_of(rule), model) for rule in rules]
    except CaseError as error:
        raise CaseError(f"profile {p.name}, {case.alertname}: {case.title!r}: {error}") from None
    fired = {key for key, s in zip(keys, states) if any(s.firing(i) for i in range(len(s.active)))}
    if fired != set(case.fires):
        raise CaseError(f"profile {p.name}, {case.alertname}: {case.title!r} declares that "
                        f"{sorted(case.fires, key=str)} fire, but {sorted(fired, key=str)} do")
    checks = [
        {"eval_time": str(step * i), "alertname": case.alertname, "exp_alerts": _expected_alerts(rules, states, i)}
        for i in _check_steps(case, keys, states, step.seconds)
    ]
    return {"name": f"{case.alertname}: {case.title}", "interval": str(step),
            "input_series": case.world.input_series(), "alert_rule_test": checks}


def _check_coverage(p: Profile, keys: Sequence[Key], cases: Sequence[AlertCase]) -> None:
    missing = [f"{key} has no firing case" for key in keys if not any(key in s.fires for s in cases)]
    missing += [f"{key} has no quiet case" for key in keys if not ALERT_TESTS[key[0]].always_firing
                and not any(s.alertname == key[0] and key not in s.fires for s in cases)]
    if missing:
        raise CaseError(f"profile {p.name}: " + "; ".join(missing) + f": add them to its cases in {CASES_FILE}")


def _sample(record: str, labels: Labels, value: float) -> dict:
    inner = ",".join(f'{key}="{label}"' for key, label in labels)
    return {"labels": f"{record}{{{inner}}}", "value": value}


def _expr_test(record: str, t: int, vector: Vector) -> dict:
    return {"expr": record, "eval_time": str(Duration(t)),
            "exp_samples": [_sample(record, labels, value) for labels, value in sorted(vector.items())]}


def recording_test_groups(p: Profile, step: Duration) -> list[dict]:
    """The recording rules on numbers a reader can check by hand; counts per step are exact binary fractions."""
    w = p.rate_window
    replica = {**GATEWAY, "instance": "replica-2"}  # a second gateway replica: rates must add up across instances
    per_second = (  # (instance labels, model, status, requests/s)
        (GATEWAY, FAST, "success", 2), (GATEWAY, FAST, "error", 1), (replica, FAST, "success", 1),
        (replica, FAST, "error", 0), (GATEWAY, BALANCED, "success", 3), (GATEWAY, BALANCED, "error", 0),
    )
    duration = w * 2
    requests = tuple(counter("llm_requests_total", {**where, "model": m, "status": status}, step,
                             [Phase(duration, rate)]) for where, m, status, rate in per_second)
    latency = (*histogram(step, "llm_request_duration_seconds", {**GATEWAY, "model": REASONING},
                          LATENCY_BUCKETS_SECONDS, [(duration, {0.5: 10, 1.0: 8})]),
               *histogram(step, "llm_request_duration_seconds", {**replica, "model": REASONING},
                          LATENCY_BUCKETS_SECONDS, [(duration, {2.0: 2})]))
    cost_duration = p.baseline_window + w * 2
    per_step_usd = (2 ** -6, 2 ** -7)
    costs = tuple(counter("llm_cost_usd_total", {**GATEWAY, "model": m, "department": d}, step,
                          [Phase(cost_duration, usd / step.seconds)])
                  for (m, d), usd in zip(((BALANCED, "engineering"), (FAST, "support")), per_step_usd))
    # Streamed calls of REASONING: 8/s on the first replica (6 first tokens within 0.25 s, 2 within 1 s), 2/s on the
    # second (within 3 s).
    streamed = (World(duration.seconds, step).streamed(REASONING, 8, [(duration, {0.25: 0.75, 1.0: 0.25})])
                .streamed(REASONING, 2, [(duration, {3.0: 1.0})], replica))
    # Response-cache lookups/s and the share that hits: 5 hits in 8 lookups over every model and instance.
    lookups = (World(duration.seconds, step).cache_lookups(FAST, [(duration, 4, 0.75)])
               .cache_lookups(FAST, [(duration, 2, 1.0)], replica).cache_lookups(REASONING, [(duration, 2, 0.0)]))
    # Answered requests/s by the model that served them: sim-reasoning 2/s itself and 1/s by sim-balanced on the
    # first replica, 1/s by sim-fast on the second (2 of 4 from a fallback); sim-balanced 2/s itself (none).
    answers = (World(duration.seconds, step).routed(REASONING, 3, [(duration, {REASONING: 2 / 3, BALANCED: 1 / 3})])
               .routed(REASONING, 1, [(duration, {FAST: 1.0})], replica)
               .routed(BALANCED, 2, [(duration, {BALANCED: 1.0})]))
    ratio_model, latency_model, cost_model, streamed_model, cache_model, routed_model = (
        Model(p, Timeline(step, s)) for s in (requests, latency, costs, streamed.input, lookups.input, answers.input))
    if ratio_model.error_ratio(w.seconds) == {labels_of({"model": FAST}): 1.0}:
        raise CaseError("the error-ratio case cannot tell aggregated from per-series division")
    steady = p.baseline_window.seconds + w.seconds
    return [
        {"name": f"error ratio: {FAST} errors / all {FAST} requests, summed over status and instance before dividing "
                 "(not 1, which per-series division gives)",
         "interval": str(step), "input_series": [s.as_dict() for s in requests],
         "promql_expr_test": [
             _expr_test(record, t, compute(t)) for t in (w.seconds, duration.seconds)
             for record, compute in (("model:llm_requests:rate", ratio_model.requests),
                                     ("model:llm_request_errors:rate", ratio_model.errors),
                                     ("model:llm_request_error_ratio:rate", ratio_model.error_ratio))]},
        {"name": "p95 per model from bucket rates summed over instances (one replica holds the slow calls)",
         "interval": str(step), "input_series": [s.as_dict() for s in latency],
         "promql_expr_test": [_expr_test("model:llm_request_duration_seconds:p95", duration.seconds,
                                         latency_model.p95(duration.seconds))]},
        {"name": f"{REASONING}: streamed calls/s and their time-to-first-token p95 from bucket rates summed over "
                 "instances (one replica holds the slow first tokens)",
         "interval": str(step), "input_series": streamed.input_series(),
         "promql_expr_test": [
             _expr_test("model:llm_streamed_requests:rate", duration.seconds,
                        streamed_model.streamed_requests(duration.seconds)),
             _expr_test("model:llm_time_to_first_token_seconds:p95", duration.seconds,
                        streamed_model.time_to_first_token_p95(duration.seconds)),
         ]},
        {"name": "response-cache hit ratio: all hits / all lookups over every model and instance, 5 / 8 (not the "
                 f"average of the per-model ratios, 5/6 for {FAST} and 0 for {REASONING})",
         "interval": str(step), "input_series": lookups.input_series(),
         "promql_expr_test": [
             _expr_test(record, t, compute(t)) for t in (w.seconds, duration.seconds)
             for record, compute in (("job:llm_response_cache_lookups:rate", cache_model.cache_lookups),
                                     ("job:llm_response_cache_hit_ratio:rate", cache_model.cache_hit_ratio))]},
        {"name": f"fallback ratio per requested model: answers another model served / all answers, summed over "
                 f"instances: 2 of 4 for {REASONING}; 0 (not absent) for {BALANCED}, which nothing fell back from",
         "interval": str(step), "input_series": answers.input_series(),
         "promql_expr_test": [
             _expr_test(record, t, compute(t)) for t in (w.seconds, duration.seconds)
             for record, compute in (("requested_model:llm_routed_requests:rate", routed_model.routed),
                                     ("requested_model:llm_fallback_ratio:rate", routed_model.fallback_ratio))]},
        {"name": f"cost rate per job, and its {p.baseline_window} baseline",
         "interval": str(step), "input_series": [s.as_dict() for s in costs],
         "promql_expr_test": [
             _expr_test("job:llm_cost_usd:rate", steady, cost_model.cost_rate(steady)),
             _expr_test("job:llm_cost_usd:rate_baseline", steady, cost_model.cost_baseline(steady)),
         ]},
    ]


def _test_file(rule_files: Sequence[str], groups: Sequence[str], step: Duration, tests: list[dict]) -> dict:
    return {"rule_files": list(rule_files), "evaluation_interval": str(step), "group_eval_order": list(groups),
            "tests": tests}


def rule_subset(files: Mapping[str, dict], alertname: str) -> dict:
    """The groups of the real rule files holding `alertname`'s rules and the recording rules they read (directly or
    through other recording rules), in the real files' order; groups left empty are left out."""
    records = {rule["record"]: rule for content in files.values() for group in content["groups"]
               for rule in group["rules"] if "record" in rule}
    needed: set[str] = set()
    pending = [rule["expr"] for content in files.values() for group in content["groups"] for rule in group["rules"]
               if rule.get("alert") == alertname]
    while pending:
        for name in set(_METRIC_NAME.findall(pending.pop())) & set(records) - needed:
            needed.add(name)
            pending.append(records[name]["expr"])
    groups = []
    for content in files.values():
        for group in content["groups"]:
            kept = [rule for rule in group["rules"] if rule.get("alert") == alertname or rule.get("record") in needed]
            if kept:
                groups.append({**group, "rules": kept})
    return {"groups": groups}


def _rule_file_of(files: Mapping[str, dict]) -> dict[str, tuple[str, str]]:
    """Alert or record name → (rule file name, group name), from the rule files as generated."""
    where = {}
    for file_name, content in files.items():
        for group in content["groups"]:
            for rule in group["rules"]:
                where[rule.get("alert") or rule["record"]] = (file_name, group["name"])
    return where


def promtool_tests(profile: Profile) -> dict[str, dict]:
    """Test file name (under tests/) → content: one file per alertname, and one for the recording rules."""
    step = unit_test_interval(profile)
    where = _rule_file_of(rule_files(profile))
    recording_file, _ = where["model:llm_requests:rate"]
    rules = alert_rules(profile)
    _check_registry(rules)
    files = rule_files(profile)
    result = {RECORDING_TESTS: _test_file([f"../rules/{recording_file}"], [RECORDING_GROUP], step,
                                          recording_test_groups(profile, step))}
    every_case = []
    for alertname in dict.fromkeys(rule.alert for rule in rules):
        cases = ALERT_TESTS[alertname].cases(Ctx(profile, step))
        every_case += cases
        same_name = [rule for rule in rules if rule.alert == alertname]
        tests = [_alert_test_group(profile, step, case, same_name) for case in cases]
        subset = rule_subset(files, alertname)
        result[f"{RULE_SUBSETS}/{alertname}.yml"] = subset
        result[f"{alertname}.yml"] = _test_file([f"{RULE_SUBSETS}/{alertname}.yml"],
                                                [group["name"] for group in subset["groups"]], step, tests)
    _check_coverage(profile, [rule_key(rule) for rule in rules], every_case)
    return result
