"""Lab V3, exercises 4-9: the student's Prometheus alert rules, checked with the real promtool.

Each exercise sets a notebook variable to its rules (a list of rule mappings, or the same as YAML text). A check
(1) reads them, (2) checks what a page needs (severity, summary, description, runbook_url, `for`), (3) runs
`promtool check rules`, and (4) replays cases through them with `promtool test rules` (graders/v3/timelines.py):
the alert must fire for the right model or job, and by when; it must stay quiet under harmless noise; it must
survive a scrape gap; some must resolve once the fault is over. Visible cases run in the notebook's check cell,
the others in its hidden part. Numbers come from the classroom profile (stack/profiles.yaml) and the thresholds of
the stack's own rules (stack/prometheus/alerts.py); the traffic shapes (failing models, slow models, latency
distributions) from stack/prometheus/shapes.py, which the stack's own promtool tests use too; nothing is repeated here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urlparse

import yaml

from graders.labcheck import LabCheckFailed, yaml_value
from graders.v3.timelines import Episode, TimelineError, replay
from stack import catalog, profiles, topology
from stack.gateway.evaluation import RELEVANCE
from stack.prometheus import alerts as A
from stack.prometheus.shapes import (
    BALANCED, FAST, HEALTHY_LATENCY, REASONING, SLOW_LATENCY, failing_models, latency_near_miss, slow_model,
)
from stack.prometheus.world import GATEWAY, World
from stack.runner.binaries import complaint_about

TIMING = profiles.load("classroom")
W = TIMING.rate_window.seconds
MIN_RATE = TIMING.min_request_rate
BUSY = 10 * MIN_RATE             # healthy requests/s per model: well above the minimum the ratio alerts need
SLACK = 5                        # seconds an alert may take beyond `for` and a rate window before it is "late"
MODELS = (FAST, BALANCED, REASONING)
RULES_FILE = "student_rules.yml"

# The availability SLO of the stretch exercise (Google SRE workbook, "Alerting on SLOs", multiwindow multi-burn-rate),
# with the workbook's windows compressed 60x for the classroom (1 h -> 60 s) like the rest of the classroom profile.
SLO_TARGET = 0.99
ERROR_BUDGET = 1 - SLO_TARGET
TIME_COMPRESSION = 60


@dataclass(frozen=True)
class BurnTier:
    severity: str
    burn_rate: float
    long_window: int   # seconds
    short_window: int  # seconds


BURN_TIERS = (BurnTier("critical", 14.4, 3600 // TIME_COMPRESSION, 300 // TIME_COMPRESSION),
              BurnTier("warning", 6, 6 * 3600 // TIME_COMPRESSION, 1800 // TIME_COMPRESSION))

_DURATION = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")
_DURATION_UNITS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)


def reject(message: str, hint: str = "") -> None:
    raise LabCheckFailed(message + (f". Hint: {hint}" if hint else ""))


def seconds_of(text: Any) -> float | None:
    """A Prometheus duration ("10s", "1m30s") in seconds; None if it is not one."""
    match = _DURATION.match(str(text).strip()) if text not in (None, "") else None
    if not match or not any(match.groups()):
        return None
    return sum(int(group) * unit for group, unit in zip(match.groups(), _DURATION_UNITS) if group)


# ---------------------------------------------------------------- reading the student's rules

def load_rules(value: Any, variable: str) -> list[dict]:
    """The rules in `value`: a list of rule mappings, one mapping, a rules file ({groups: ...}), or YAML text."""
    value = yaml_value(value, variable, "write your rules in the exercise cell above and run it",
                       "check the indentation; a PromQL expression with `:` or `{` needs quotes or `expr: |`")
    if isinstance(value, Mapping) and "groups" in value:
        value = [rule for group in value.get("groups") or [] for rule in (group or {}).get("rules") or []]
    elif isinstance(value, Mapping) and "rules" in value:
        value = value["rules"]
    elif isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(r, Mapping) for r in value):
        reject(f"{variable} holds no rules",
               "a list of rules, each a mapping with alert, expr, for, labels, annotations")
    return [dict(rule) for rule in value]


def rules_file(groups: Mapping[str, Sequence[Mapping]]) -> dict:
    """A Prometheus rules file with one group per exercise."""
    return {"groups": [{"name": name, "rules": [dict(r) for r in rules]} for name, rules in groups.items()]}


def promtool_check(document: Mapping, what: str) -> None:
    complaint = complaint_about("promtool", ["check", "rules"], document, "rules")
    if complaint:
        reject(f"promtool check rules rejects {what}: {complaint[:300]}",
             "try the expression in Prometheus first; labels and annotations are string-to-string mappings")


# ---------------------------------------------------------------- what every alert rule needs

def _receivers_runbook_bases() -> set[str]:
    urls = {topology.load()["receiver"].url}
    with topology.base_ports():
        urls.add(topology.load()["receiver"].url)
    return urls


def _check_runbook(rule: dict, where: str, allowed: Sequence[str]) -> None:
    url = str((rule.get("annotations") or {}).get("runbook_url") or "").strip()
    base = sorted(_receivers_runbook_bases())[0]
    example = f"{base}/runbooks/{allowed[0]}"
    if not url:
        reject(f"{where} has no runbook_url annotation: whoever gets paged at 3 a.m. has no page telling them what "
             "to do", f"annotations: runbook_url: {example} (the receiver serves docs/runbooks/<AlertName>.md)")
    parsed = urlparse(url)
    expected_paths = {f"/runbooks/{name}" for name in allowed}
    if f"{parsed.scheme}://{parsed.netloc}" not in _receivers_runbook_bases() or parsed.path not in expected_paths:
        reject(f"{where}: runbook_url is {url!r}, which is not the runbook of this alert", f"use {example}")


def lint(rules: list[dict], spec: RuleExercise, hidden: bool = False) -> None:
    alerting = [r for r in rules if "alert" in r]
    for name, severity in spec.alerts:
        found = [r for r in alerting if r.get("alert") == name and (r.get("labels") or {}).get("severity") == severity]
        if not found:
            names = sorted({f"{r.get('alert')} ({(r.get('labels') or {}).get('severity', 'no severity')})"
                            for r in alerting})
            reject(f"{spec.variable} has no alert {name} with severity {severity}: found {', '.join(names) or 'none'}",
                 f"alert: {name}, labels: {{severity: {severity}}}; Alertmanager routes on severity")
        if len(found) > 1:
            reject(f"{spec.variable} has {len(found)} rules for {name} ({severity})", "one rule per alert and severity")
    for rule in alerting:
        where = f"{rule.get('alert')} ({(rule.get('labels') or {}).get('severity', 'no severity')})"
        severity = (rule.get("labels") or {}).get("severity")
        if severity not in spec.severities:
            reject(f"{where} has severity {severity!r}", f"one of {', '.join(spec.severities)}: "
                   "{severity: critical} pages, {severity: warning} chats, {severity: info} notifies nobody")
        annotations = rule.get("annotations") or {}
        for key in ("summary", "description"):
            if not str(annotations.get(key) or "").strip():
                reject(f"{where} has no {key} annotation", "summary: one line for the notification title; "
                     "description: what is wrong, how bad, over which window")
        _check_runbook(rule, where, spec.runbooks.get(rule.get("alert"), (rule.get("alert"),)))
        minimum = spec.min_for.get(rule.get("alert"))
        if minimum:
            held = seconds_of(rule.get("for"))
            if held is None:
                reject(f"{where} has no `for`: a single bad evaluation (one slow scrape, one unlucky second) pages "
                     "someone", f"for: {spec.for_text(rule.get('alert'))} (TIMING.for_({rule.get('alert')!r}))")
            if held < minimum:
                reject(f"{where} has for: {rule.get('for')}, shorter than the {spec.for_text(rule.get('alert'))} the "
                     "course uses", f"for: {spec.for_text(rule.get('alert'))}")
        if hidden and spec.per_model and rule.get("alert") in {n for n, _ in spec.alerts}:
            text = f"{annotations.get('summary', '')} {annotations.get('description', '')}"
            if "$labels.model" not in text.replace(" ", "") and ".Labels.model" not in text:
                reject(f"{where}: the summary and description never say which model is affected",
                     "{{ $labels.model }} in the summary")
    if spec.extra_lint:
        spec.extra_lint(rules)


# ---------------------------------------------------------------- cases and what they expect

@dataclass(frozen=True)
class Fires:
    alertname: str
    severity: str
    by: int                                  # must be firing by this second
    subject: Mapping[str, str] = field(default_factory=dict)  # and only for these labels (model, job)
    until: int | None = None                 # keeps firing, without a gap, until this second
    resolves_by: int | None = None           # has stopped firing by this second
    hint: str = ""


@dataclass(frozen=True)
class Quiet:
    alertname: str
    severity: str | None = None              # None: no severity of this alert may fire
    hint: str = ""


@dataclass(frozen=True)
class RuleCase:
    """One graded case of a rules exercise: a timeline of the gateway's series and what the rules must do on it.
    (Shown to students as a "scenario"; the live failure scenarios of stack/scenarios/ are another thing.)"""

    key: str
    title: str
    world: World
    expect: tuple[Fires | Quiet, ...]
    hidden: bool = False


def _subject_text(subject: Mapping[str, str]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in subject.items()) or "no model or job label"


def judge(case: RuleCase, episodes: Sequence[Episode]) -> str | None:
    """The first way the episodes miss the case's expectations, as a message; None when they meet them."""
    where = f"in the scenario '{case.title}'"
    for expectation in case.expect:
        hint = f". Hint: {expectation.hint}" if expectation.hint else ""
        if isinstance(expectation, Quiet):
            noisy = [e for e in episodes if e.alertname == expectation.alertname
                     and (expectation.severity is None or e.severity == expectation.severity)]
            if noisy:
                first = min(noisy, key=lambda e: e.first)
                return f"{first.describe()} fired at {first.first:g}s {where}, which must stay quiet{hint}"
            continue
        mine = [e for e in episodes if e.alertname == expectation.alertname and e.severity == expectation.severity]
        name = f"{expectation.alertname} ({expectation.severity})"
        if not mine:
            return f"{name} never fired {where} (expected by {expectation.by}s){hint}"
        strangers = [e for e in mine if any(e.subject.get(k) != v for k, v in expectation.subject.items())
                     or (expectation.subject and set(e.subject) - set(expectation.subject) - {"job"})]
        if strangers:
            return (f"{strangers[0].describe()} fired {where}; expected it only for "
                    f"{_subject_text(expectation.subject)}{hint}")
        episode = min(mine, key=lambda e: e.first)
        if episode.first > expectation.by:
            return f"{name} fired only at {episode.first:g}s {where}: expected by {expectation.by}s{hint}"
        if expectation.until is not None and (episode.last < expectation.until or not episode.continuous):
            stopped = "stopped firing in between" if not episode.continuous else f"stopped at {episode.last:g}s"
            return f"{name} {stopped} {where}: it must keep firing until {expectation.until}s{hint}"
        if expectation.resolves_by is not None and episode.last > expectation.resolves_by:
            return (f"{name} was still firing at {episode.last:g}s {where}: expected it to resolve by "
                    f"{expectation.resolves_by}s, soon after the fault ended{hint}")
    return None


# ---------------------------------------------------------------- the exercises

@dataclass(frozen=True)
class RuleExercise:
    key: str                                   # group name suffix, e.g. error-ratio
    variable: str                              # the notebook variable holding the rules
    alerts: tuple[tuple[str, str], ...]        # (alertname, severity) the exercise asks for
    cases: Callable[[], list[RuleCase]]
    min_for: Mapping[str, int]                 # alertname -> the shortest acceptable `for` (seconds)
    per_model: bool = False
    runbooks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    extra_lint: Callable[[list[dict]], None] | None = None
    severities: tuple[str, ...] = ("critical", "warning")   # the severities its alerts may carry

    def for_text(self, alertname: str) -> str:
        return str(TIMING.for_(alertname))

    @property
    def group(self) -> str:
        return f"v3-{self.key}"


def _for(alertname: str) -> int:
    return TIMING.for_(alertname).seconds


def _by(fault: int, alertname: str) -> int:
    """Fires by: the fault, a rate window to see it, `for`, and some slack."""
    return fault + W + _for(alertname) + SLACK


def _run(alertname: str) -> int:
    return 2 * W + _for(alertname) + 2 * SLACK


_TOP_LEVEL_DIVISION = re.compile(r"/")
_AGGREGATION = re.compile(r"\b(sum|count|avg|min|max)\b\s*(by|without|\()")


_CUT = r"\b(?:and|or|unless)\b|[<>]=?|==|!="


def _division_sides(expr: str) -> list[tuple[str, str]]:
    """(left, right) operands of every `/` outside selectors, ranges and strings: each side runs to the edge of the
    parentheses around the division, cut at a comparison or set operator."""
    opens: list[int] = []
    closes: dict[int, int] = {}
    inside, quoted = 0, False
    divisions: list[tuple[int, int]] = []  # (position, index of the enclosing "(" or -1)
    for index, char in enumerate(expr):
        if char == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif char in "{[":
            inside += 1
        elif char in "}]":
            inside -= 1
        elif inside:
            continue
        elif char == "(":
            opens.append(index)
        elif char == ")" and opens:
            closes[opens.pop()] = index
        elif char == "/":
            divisions.append((index, opens[-1] if opens else -1))
    sides = []
    for position, group in divisions:
        start, end = group + 1, closes.get(group, len(expr)) if group >= 0 else len(expr)
        left = re.split(_CUT, expr[start:position])[-1]
        right = re.split(_CUT, expr[position + 1:end])[0]
        sides.append((left, right))
    return sides


def _aggregated_ratio(rules: list[dict], alertname: str) -> None:
    for rule in rules:
        if rule.get("alert") != alertname:
            continue
        where = f"{alertname} ({(rule.get('labels') or {}).get('severity', '?')})"
        sides = _division_sides(str(rule.get("expr", "")))
        if not sides:
            reject(f"{where} divides nothing", "failed requests / all requests")
        for left, right in sides:
            if not _AGGREGATION.search(left) or not _AGGREGATION.search(right):
                reject(f"{where} is a ratio of unaggregated series: PromQL matches the two sides on all their labels, "
                     "so each status=\"error\" series is divided by itself (ratio 1) or matches nothing",
                     f"sum by (model) (rate(errors[{W}s])) / sum by (model) (rate(all requests[{W}s])): aggregate both "
                     "sides first, then divide")


def _requests(world: World, share: Mapping[str, float], rate: float = BUSY, lead: int = 2 * W,
              run: int | None = None) -> World:
    return failing_models(world, MODELS, rate, lead, world.seconds - lead if run is None else run, share)


def error_ratio_cases() -> list[RuleCase]:
    name, lead = "LLMHighErrorRatio", 2 * W
    run = _run(name)
    total = lead + run
    warning, critical = A.ERROR_RATIO_WARNING, A.ERROR_RATIO_CRITICAL
    some, outage, noise = warning * 2.4, critical * 1.75, warning * 0.8
    by = _by(lead, name)
    aggregate = "sum by (model) on both sides of the division, then compare"
    replica = {**GATEWAY, "instance": "replica-2"}
    two_replicas = World(total)
    for model in (FAST, REASONING):
        two_replicas.requests(model, [(total, BUSY, 0.0)])
    two_replicas.requests(BALANCED, [(lead, BUSY / 2, 0.0), (run, BUSY / 2, 0.0)])
    two_replicas.requests(BALANCED, [(lead, BUSY / 2, 0.0), (run, BUSY / 2, 2 * some)], where=replica)
    gap_at = by + 3
    recovery = World(lead + 3 * W + _for(name) + W + 2 * SLACK)
    _requests(recovery, {BALANCED: outage}, lead=lead, run=3 * W + _for(name))
    fault_end = lead + 3 * W + _for(name)
    return [
        RuleCase("error-some", f"{some:.0%} of {BALANCED} requests fail", _requests(World(total), {BALANCED: some}),
                 (Fires(name, "warning", by, {"model": BALANCED}, hint=f"warning above {warning:g}; {aggregate}"),
                  Quiet(name, "critical", hint=f"critical only above {critical:g}"))),
        RuleCase("error-noise", f"{noise:.0%} of {FAST} requests fail (normal noise)",
                 _requests(World(total), {FAST: noise}),
                 (Quiet(name, hint=f"the warning threshold is {warning:g} ({warning:.0%}); {aggregate}"),)),
        RuleCase("error-outage", f"{outage:.0%} of {REASONING} requests fail",
                 _requests(World(total), {REASONING: outage}),
                 (Fires(name, "warning", by, {"model": REASONING}), Fires(name, "critical", by, {"model": REASONING},
                                                                           hint=f"critical above {critical:g}"))),
        RuleCase("error-few", f"half of very few {REASONING} requests fail ({MIN_RATE / 2:g}/s)",
                 World(total).requests(REASONING, [(total, MIN_RATE / 2, 0.5)]).requests(
                     FAST, [(total, BUSY, 0.0)]),
                 (Quiet(name, hint=f"one failed request out of two must not page: `and sum by (model) (rate(all "
                                   f"requests[{W}s])) >= {MIN_RATE:g}` (TIMING.min_request_rate)"),), hidden=True),
        RuleCase("error-replicas", f"two gateway replicas; one fails {2 * some:.0%} of its {BALANCED} requests "
                 f"({some:.0%} of all {BALANCED} requests)", two_replicas,
                 (Fires(name, "warning", by, {"model": BALANCED}),
                  Quiet(name, "critical", hint="the ratio is per model over every replica: sum by (model), not by "
                                               "(model, instance)")), hidden=True),
        RuleCase("error-gap", f"{outage:.0%} of {REASONING} requests fail and the gateway misses 3 scrapes",
                 _requests(World(total + 10), {REASONING: outage}).gap("gateway", gap_at, 3),
                 (Fires(name, "critical", by, {"model": REASONING}, until=total + 10,
                        hint=f"a rate window of {W}s still holds samples around a 3 s gap; a window of 1-2 "
                             "scrapes does not"),), hidden=True),
        RuleCase("error-recovers", f"{outage:.0%} of {BALANCED} requests fail, then the provider recovers", recovery,
                 (Fires(name, "critical", by, {"model": BALANCED}, resolves_by=fault_end + W + SLACK,
                        hint=f"use the rate window TIMING.rate_window ({W}s): a long window keeps paging after "
                             "the fault is gone"),), hidden=True),
    ]


def latency_cases() -> list[RuleCase]:
    name, lead = "LLMLatencyP95High", 2 * W
    run = _run(name)
    total, by, slo = lead + run, _by(lead, name), A.LATENCY_P95_SECONDS
    slow, near = slow_model(World(total), BUSY, lead), latency_near_miss(World(total), BUSY)
    replica = {**GATEWAY, "instance": "replica-2"}
    replicas = World(total).latency(REASONING, BUSY, [(total, HEALTHY_LATENCY)]).latency(
        REASONING, BUSY / 25, [(total, {8.0: 1.0})], where=replica)
    slow_for = 3 * W
    tail = 3 * W + _for(name)
    recovery = World(lead + slow_for + tail).latency(
        REASONING, BUSY, [(lead, HEALTHY_LATENCY), (slow_for, SLOW_LATENCY), (tail, HEALTHY_LATENCY)])
    buckets = f"histogram_quantile(0.95, sum by (le, model) (rate(llm_request_duration_seconds_bucket[{W}s])))"
    return [
        RuleCase("latency-slow", f"{REASONING} slows down to a p95 of about 7.6 s", slow,
                 (Fires(name, "warning", by, {"model": REASONING},
                        hint=f"{buckets} > {slo:g}; keep `le` when you sum the buckets"),)),
        RuleCase("latency-near", f"{BALANCED} has a p95 of 3 s and 3% of {FAST} calls take over 15 s", near,
                 (Quiet(name, hint=f"p95 above {slo:g} s only: a few stragglers are not the 95th percentile"),)),
        RuleCase("latency-replicas", f"a second gateway replica serves 4% of {REASONING} calls, all slow (p95 over "
                 "every replica about 1.9 s)", replicas,
                 (Quiet(name, hint="sum the bucket rates by (le, model) over every instance before "
                                   "histogram_quantile: a quantile per instance cannot be averaged"),), hidden=True),
        RuleCase("latency-recovers", f"{REASONING} is slow for {slow_for}s, then fast again", recovery,
                 (Fires(name, "warning", by, {"model": REASONING}, resolves_by=lead + slow_for + W + SLACK,
                        hint="take rate() of the buckets first: a quantile over the raw cumulative buckets is the "
                             "p95 since the gateway started, and never recovers"),), hidden=True),
    ]


def _spend(world: World, lead: int, before: float, after: float) -> World:
    """`before` USD/h (2/3 engineering, 1/3 support), then marketing adds what reaches `after`."""
    run = world.seconds - lead
    world.cost(BALANCED, "engineering", [(world.seconds, before * 2 / 3)])
    world.cost(FAST, "support", [(world.seconds, before / 3)])
    world.cost(REASONING, "marketing", [(lead, 0), (run, after - before)])
    return world


def cost_cases() -> list[RuleCase]:
    name, floor, factor = "LLMCostAnomaly", A.COST_FLOOR_USD_PER_HOUR, A.COST_ANOMALY_FACTOR
    lead = TIMING.baseline_window.seconds + W
    total, by = lead + _run(name), _by(lead, name)
    spike, small, steady = (0.6 * floor, 6 * floor), (0.05 * floor, 0.5 * floor), (2.4 * floor, 6 * floor)
    return [
        RuleCase("cost-spike", f"a marketing batch job takes spend from {spike[0]:g} to {spike[1]:g} USD/h",
                 _spend(World(total), lead, *spike),
                 (Fires(name, "warning", by, hint=f"sum(rate(cost[{W}s])) > {factor:g} x the same sum over the "
                                                  f"baseline window ({TIMING.baseline_window})"),)),
        RuleCase("cost-small", f"spend jumps 10x, from {small[0]:g} to {small[1]:g} USD/h (under the "
                 f"{floor:g} USD/h floor)", _spend(World(total), lead, *small),
                 (Quiet(name, hint=f"add the floor: `and sum(rate(...)) * 3600 > {floor:g}`: 10x of nothing is "
                                   "nothing"),)),
        RuleCase("cost-steady", f"spend grows {steady[1] / steady[0]:g}x, from {steady[0]:g} to {steady[1]:g} USD/h, "
                 "through a department that spent nothing before", _spend(World(total), lead, *steady),
                 (Quiet(name, hint="compare the gateway's total spend (sum over every model and department) with "
                                   f"its baseline: a new department is not an anomaly when the total grows under "
                                   f"{factor:g}x. Early on, a baseline of rate(...[{TIMING.baseline_window}]) is tiny "
                                   f"(Prometheus holds less than {TIMING.baseline_window} of data, as after every "
                                   "restart): average the short rate instead, "
                                   f"avg_over_time(...[{TIMING.baseline_window}:])"),), hidden=True),
    ]


def budget_cases() -> list[RuleCase]:
    name = "LLMDailyBudgetBurn"
    daily, window = catalog.load().daily_budget_usd, TIMING.budget_window.seconds
    share = daily * window / 86400            # the budget for one budget window
    lead, burst = 2 * W, 6 * W
    total = lead + burst + _for(name) + 3 * SLACK

    def spending(fraction: float, budget: float = daily) -> World:
        """A batch job spends `fraction` of the window's share of the budget within `burst` seconds."""
        usd_per_hour = fraction * share * 3600 / burst
        return (World(total).cost(REASONING, "research", [(lead, 0), (burst, usd_per_hour * 2 / 3),
                                                          (total - lead - burst, 0)])
                .cost(BALANCED, "engineering", [(lead, 0), (burst, usd_per_hour / 3), (total - lead - burst, 0)])
                .budget(budget))

    def by(fraction: float, threshold: float) -> int:
        return lead + math.ceil(burst * threshold / fraction) + _for(name) + SLACK

    fast, runaway, careful = A.BUDGET_WARNING * 1.15, A.BUDGET_CRITICAL * 1.3, A.BUDGET_WARNING * 0.9
    spend = f"in {burst}s a batch job spends"
    pro_rate = (f"compare the spend over {TIMING.budget_window} (increase) with the budget's share for that window: "
                f"llm_daily_budget_usd * {window} / 86400")
    return [
        RuleCase("budget-fast", f"{spend} {fast:.0%} of the {TIMING.budget_window} share of the daily budget",
                 spending(fast),
                 (Fires(name, "warning", by(fast, A.BUDGET_WARNING), hint=pro_rate),
                  Quiet(name, "critical", hint=f"critical only at {A.BUDGET_CRITICAL:.0%} of the share"))),
        RuleCase("budget-careful", f"{spend} {careful:.0%} of the {TIMING.budget_window} share of the daily budget",
                 spending(careful), (Quiet(name, hint=f"warning at {A.BUDGET_WARNING:.0%} of the pro-rated budget"),)),
        RuleCase("budget-runaway", f"{spend} {runaway:.0%} of the {TIMING.budget_window} share of the daily budget",
                 spending(runaway),
                 (Fires(name, "warning", by(runaway, A.BUDGET_WARNING)),
                  Fires(name, "critical", by(runaway, A.BUDGET_CRITICAL), hint=pro_rate)), hidden=True),
        RuleCase("budget-raised", f"finance doubles the daily budget (llm_daily_budget_usd {2 * daily:g}); {spend} "
                 f"{runaway / 2:.0%} of the new share", spending(runaway, budget=2 * daily),
                 (Quiet(name, hint="read the budget from the gateway's llm_daily_budget_usd metric instead of "
                                   "writing the number into the rule"),), hidden=True),
    ]


def availability_cases() -> list[RuleCase]:
    down, absent = "TargetDown", "LLMMetricsAbsent"
    lead, total = 2 * W, 2 * W + 2 * (_for(absent) + W + SLACK)

    def gateway(world: World) -> World:
        for model in MODELS:
            world.requests(model, [(world.seconds, BUSY, 0.0)])
        return world

    renamed = gateway(World(total)).end("llm_requests_total", lead)
    for model in MODELS:
        renamed.requests(model, [(total, BUSY, 0.0)], name="llm_gateway_requests_total")
    renamed.up()
    idle = World(total)
    for model in MODELS:
        idle.idle(model)
    restart = _for(down) - 2
    lab = "only jobs `make up` runs: up{job!=\"lab\"} == 0 (the lab exporter runs only while a notebook does)"
    return [
        RuleCase("down-llmsim", "llmsim stops answering scrapes (and no lab notebook is running)",
                 gateway(World(total)).up({"llmsim": [(lead, total)]}),
                 (Fires(down, "critical", lead + _for(down) + SLACK, {"job": "llmsim"}, hint=lab),
                  Quiet(absent))),
        RuleCase("absent-renamed", "a deploy renames the gateway's counter to llm_gateway_requests_total", renamed,
                 (Fires(absent, "warning", lead + _for(absent) + SLACK,
                        hint='absent(llm_requests_total{job="gateway"})'), Quiet(down))),
        RuleCase("down-restart", f"llmsim restarts: {restart} failed scrapes, then fine",
                 gateway(World(total)).up({"llmsim": [(lead, restart)]}),
                 (Quiet(down, hint=f"for: {TIMING.for_(down)} lets a restart pass without paging"),), hidden=True),
        RuleCase("gap-gateway", f"the gateway misses {restart} scrapes (its series are stale meanwhile)",
                 gateway(World(total)).up().gap("gateway", lead, restart),
                 (Quiet(absent, hint=f"for: {TIMING.for_(absent)}: absent() is true during every failed scrape"),
                  Quiet(down)), hidden=True),
        RuleCase("absent-idle", "an idle gateway: every llm_requests_total child is exported at 0", idle.up(),
                 (Quiet(absent, hint="absent() of the metric itself: an idle gateway still exports it (at 0)"),),
                 hidden=True),
    ]


def _burn_world(seconds: int, phases: Sequence[tuple[int, Mapping[str, float]]]) -> World:
    world = World(seconds)
    for model in MODELS:
        world.requests(model, [(length, BUSY, shares.get(model, shares.get("*", 0.0))) for length, shares in phases])
    return world


def burn_rate_cases() -> list[RuleCase]:
    name = "LLMErrorBudgetBurn"
    fast, slow = BURN_TIERS
    lead = 3 * fast.short_window + W

    def by(ratio: float, tier: BurnTier) -> int:
        return lead + math.ceil(tier.long_window * tier.burn_rate * ERROR_BUDGET / ratio) + SLACK

    one_model = 1 / len(MODELS)  # one model failing completely: a third of all requests
    outage = fast.long_window + 2 * SLACK
    burning = 1.33 * slow.burn_rate * ERROR_BUDGET
    slow_total = lead + math.ceil(slow.long_window * slow.burn_rate * ERROR_BUDGET / burning) + 3 * SLACK
    blip = 2
    multi = "both windows: (error ratio over the long window > burn x budget) and (over the short window > the same)"
    return [
        RuleCase("burn-fast", f"{BALANCED} fails completely: a third of all requests", _burn_world(
            lead + outage, [(lead, {}), (outage, {BALANCED: 1.0})]),
                 (Fires(name, "critical", by(one_model, fast),
                        hint=f"burn rate {fast.burn_rate:g} over {fast.long_window}s and {fast.short_window}s: "
                             f"error ratio > {fast.burn_rate:g} * {ERROR_BUDGET:g}"),)),
        RuleCase("burn-slow", f"{burning:.0%} of all requests fail for minutes", _burn_world(
            slow_total, [(lead, {}), (slow_total - lead, {"*": burning})]),
                 (Fires(name, "warning", by(burning, slow),
                        hint=f"burn rate {slow.burn_rate:g} over {slow.long_window}s and {slow.short_window}s"),
                  Quiet(name, "critical", hint=f"{burning:.0%} burns the budget {burning / ERROR_BUDGET:g}x, "
                                               f"under {fast.burn_rate:g}x"))),
        RuleCase("burn-blip", f"a {blip}s blip where half of all requests fail", _burn_world(
            lead + blip + 3 * fast.long_window // 2, [(lead, {}), (blip, {"*": 0.5}), (3 * fast.long_window // 2, {})]),
                 (Quiet(name, hint=f"{multi}: the long window keeps a blip from paging"),), hidden=True),
        RuleCase("burn-recovers", f"{BALANCED} fails completely for {outage}s, then recovers", _burn_world(
            lead + outage + fast.long_window, [(lead, {}), (outage, {BALANCED: 1.0}), (fast.long_window, {})]),
                 (Fires(name, "critical", by(one_model, fast), resolves_by=lead + outage + fast.short_window + SLACK,
                        hint=f"{multi}: the short window ends the page soon after the errors stop"),), hidden=True),
        RuleCase("burn-steady", f"{0.5 * slow.burn_rate * ERROR_BUDGET:.0%} of requests fail all along",
                 _burn_world(lead + 2 * fast.long_window, [(lead + 2 * fast.long_window,
                                                            {"*": 0.5 * slow.burn_rate * ERROR_BUDGET})]),
                 (Quiet(name, hint=f"the slowest tier pages at {slow.burn_rate:g}x the budget"),), hidden=True),
    ]


def fallback_cases() -> list[RuleCase]:
    name, lead = "LLMFallbackRatioHigh", 2 * W
    run = _run(name)
    total, by, few = lead + run, _by(lead, name), MIN_RATE / 2
    flaky, near, transient = 0.12, A.FALLBACK_RATIO_MAX * 0.75, 0.02
    usual = {REASONING: {REASONING: 1 - transient, BALANCED: transient},
             BALANCED: {BALANCED: 1 - transient, FAST: transient}}

    def answers(reasoning: Mapping[str, float], balanced: Mapping[str, float], rate: float = BUSY) -> World:
        """Answered requests by requested and served model (llm_routed_requests_total); every answer is a 200."""
        world = World(total)
        for model in MODELS:
            world.requests(model, [(total, BUSY, 0.0)])
        return (world.routed(REASONING, rate, [(lead, usual[REASONING]), (run, reasoning)])
                .routed(BALANCED, BUSY, [(lead, usual[BALANCED]), (run, balanced)])
                .routed(FAST, BUSY, [(total, {FAST: 1.0})]))

    by_requested = ("per requested_model: sum by (requested_model) of the answers served by another model "
                    "(served_model != requested_model) / sum by (requested_model) of every answer")
    return [
        RuleCase("fallback-outage", f"{REASONING}'s provider is down: {BALANCED} answers all its requests (every "
                 "answer a 200, so the error ratio stays quiet)", answers({BALANCED: 1.0}, usual[BALANCED]),
                 (Fires(name, "warning", by, {"requested_model": REASONING},
                        hint=f"{by_requested} > {A.FALLBACK_RATIO_MAX:g}"),)),
        RuleCase("fallback-near", f"{BALANCED} fails {near:.0%} of its calls, {FAST} answers them",
                 answers(usual[REASONING], {BALANCED: 1 - near, FAST: near}),
                 (Quiet(name, hint=f"above {A.FALLBACK_RATIO_MAX:.0%} of a model's answers only"),)),
        RuleCase("fallback-chain", f"{REASONING} is down and {BALANCED} fails {flaky:.0%} of its calls: {REASONING}'s "
                 f"answers come from {BALANCED} and {FAST}", answers({BALANCED: 1 - flaky, FAST: flaky},
                                                                       {BALANCED: 1 - flaky, FAST: flaky}),
                 (Fires(name, "warning", by, {"requested_model": REASONING},
                        hint=f"{by_requested}: llm_fallbacks_total counts hand-overs by from_model, so "
                             f"{REASONING}'s second hand-over ({BALANCED} -> {FAST}) looks like {BALANCED}'s "
                             "problem; count answers by the model the caller asked for"),), hidden=True),
        RuleCase("fallback-few", f"{REASONING} is down but gets only {few:g} requests/s, all answered by {BALANCED}",
                 answers({BALANCED: 1.0}, usual[BALANCED], rate=few),
                 (Quiet(name, hint=f"`and sum by (requested_model) (rate(llm_routed_requests_total[{W}s])) >= "
                                   f"{MIN_RATE:g}` (TIMING.min_request_rate)"),), hidden=True),
    ]



def quality_drift_cases() -> list[RuleCase]:
    name = "LLMAnswerQualityDrop"
    lead = TIMING.baseline_window.seconds + W          # a full baseline before the change
    run = _run(name)
    total, by, trickle = lead + run, _by(lead, name), MIN_RATE / 2
    healthy, drifted, noise, always_lower = 0.95, 0.88, 0.92, 0.7
    dip = max(1, _for(name) // 2)

    def scores(phases: Sequence[tuple[int, float, float]]) -> World:
        """FAST's scored answers from phases of (seconds, answers/s, mean relevance); BALANCED always scores lower."""
        world = World(total)
        for each in MODELS:
            world.requests(each, [(total, BUSY, 0.0)])      # every request succeeds: the drift is silent
        return world.quality(FAST, RELEVANCE, phases).quality(BALANCED, RELEVANCE, [(total, BUSY, always_lower)])

    def change(rate: float, before: float, after: float) -> World:
        return scores([(lead, rate, before), (run, rate, after)])

    baseline = (f"compare each model with its own past: the mean over {W}s (sum by (model) of rate of "
                f"llm_quality_score_sum / of llm_quality_score_count) < the same mean over "
                f"{TIMING.baseline_window} - {A.QUALITY_DROP:g}")
    return [
        RuleCase("quality-drift", f"{FAST}'s mean relevance drops from {healthy:.0%} to {drifted:.0%}; every call "
                 "is still a fast HTTP 200", change(BUSY, healthy, drifted),
                 (Fires(name, "warning", by, {"model": FAST}, hint=baseline),)),
        RuleCase("quality-own-baseline", f"{BALANCED} always scores {always_lower:.0%}, well under the others",
                 change(BUSY, healthy, healthy),
                 (Quiet(name, hint=f"a fixed threshold pages for a model whose answers are always shorter: {baseline}"),)),
        RuleCase("quality-trickle", f"the same drop on {trickle:g} scored answers/s (a few answers a window)",
                 change(trickle, healthy, drifted),
                 (Quiet(name, hint=f"a mean of a handful of scores is noise: `and sum by (model) "
                                   f"(rate(llm_quality_score_count{{evaluator=\"relevance\"}}[{W}s])) >= "
                                   f"{MIN_RATE:g}` (TIMING.min_request_rate)"),), hidden=True),
        RuleCase("quality-wobble", f"{FAST} wobbles from {healthy:.0%} to {noise:.0%}",
                 change(BUSY, healthy, noise),
                 (Quiet(name, hint=f"more than {A.QUALITY_DROP:g} under the baseline only"),), hidden=True),
        RuleCase("quality-dip", f"{FAST} dips to {drifted - 0.03:.0%} for {dip}s",
                 scores([(lead, BUSY, healthy), (dip, BUSY, drifted - 0.03), (run - dip, BUSY, healthy)]),
                 (Quiet(name, hint=f"for: {TIMING.for_(name)}"),), hidden=True),
    ]


def department_budget_cases() -> list[RuleCase]:
    name = "LLMDepartmentBudget"
    budgets = catalog.load().monthly_budgets.monthly_usd
    lead, run = 2 * W, _for(name) + 3 * SLACK
    total, by = lead + run, lead + _for(name) + SLACK

    def spending(department: str, before: float, after: float) -> World:
        """`department` has spent `before` of its monthly budget, then `after` (shares); support steadily 30 %."""
        usd = budgets[department]
        return (World(total).department_budget(department, usd, [(lead, before * usd), (run, after * usd)])
                .department_budget("support", budgets["support"], [(total, 0.3 * budgets["support"])]))

    info, warning, critical = (A.DEPARTMENT_BUDGET_STEPS[s] for s in ("info", "warning", "critical"))
    ratio = ("sum by (department) (llm_budget_spent_usd) / max by (department) (llm_budget_monthly_usd) >= the "
             "step: the budget comes from the gauge, one per department")
    return [
        RuleCase("budget-info", f"engineering goes from 60% to 85% of its {budgets['engineering']:g} USD budget",
                 spending("engineering", 0.6, 0.85),
                 (Fires(name, "info", by, {"department": "engineering"}, hint=f"info at {info:.0%}; {ratio}"),
                  Quiet(name, "warning", hint=f"warning only at {warning:.0%}"), Quiet(name, "critical"))),
        RuleCase("budget-over", f"research has spent 104% of its {budgets['research']:g} USD budget",
                 spending("research", 0.95, 1.04),
                 (Fires(name, "info", by, {"department": "research"},
                        hint="divide by each department's own llm_budget_monthly_usd: budgets differ"),
                  Fires(name, "warning", by, {"department": "research"}, hint=f"warning at {warning:.0%}"),
                  Fires(name, "critical", by, {"department": "research"}, hint=f"critical at {critical:.0%}"))),
        RuleCase("budget-warning", f"marketing goes from 85% to 93% of its {budgets['marketing']:g} USD budget",
                 spending("marketing", 0.85, 0.93),
                 (Fires(name, "warning", by, {"department": "marketing"}),
                  Quiet(name, "critical", hint=f"critical only at {critical:.0%} of the department's own budget")),
                 hidden=True),
        RuleCase("budget-small", f"finance has spent 95% of its {budgets['finance']:g} USD budget (less money than "
                 "others spend in a day)", spending("finance", 0.5, 0.95),
                 (Fires(name, "warning", by, {"department": "finance"},
                        hint="divide by each department's own llm_budget_monthly_usd: budgets differ"),
                  Quiet(name, "critical")), hidden=True),
    ]


EXERCISES: dict[str, RuleExercise] = {
    "error_ratio": RuleExercise(
        "error-ratio", "ERROR_RATIO_RULES", (("LLMHighErrorRatio", "warning"), ("LLMHighErrorRatio", "critical")),
        error_ratio_cases, {"LLMHighErrorRatio": _for("LLMHighErrorRatio")}, per_model=True,
        extra_lint=lambda rules: _aggregated_ratio(rules, "LLMHighErrorRatio")),
    "latency": RuleExercise(
        "latency", "LATENCY_RULES", (("LLMLatencyP95High", "warning"),), latency_cases,
        {"LLMLatencyP95High": _for("LLMLatencyP95High")}, per_model=True),
    "cost_anomaly": RuleExercise(
        "cost-anomaly", "COST_ANOMALY_RULES", (("LLMCostAnomaly", "warning"),), cost_cases,
        {"LLMCostAnomaly": _for("LLMCostAnomaly")}),
    "budget": RuleExercise(
        "budget", "BUDGET_RULES", (("LLMDailyBudgetBurn", "warning"), ("LLMDailyBudgetBurn", "critical")),
        budget_cases, {"LLMDailyBudgetBurn": _for("LLMDailyBudgetBurn")}),
    "availability": RuleExercise(
        "availability", "AVAILABILITY_RULES", (("TargetDown", "critical"), ("LLMMetricsAbsent", "warning")),
        availability_cases, {"TargetDown": _for("TargetDown"), "LLMMetricsAbsent": _for("LLMMetricsAbsent")}),
    "burn_rate": RuleExercise(
        "burn-rate", "BURN_RATE_RULES", (("LLMErrorBudgetBurn", "critical"), ("LLMErrorBudgetBurn", "warning")),
        burn_rate_cases, {}, runbooks={"LLMErrorBudgetBurn": ("LLMErrorBudgetBurn", "LLMHighErrorRatio")},
        extra_lint=lambda rules: _aggregated_ratio(rules, "LLMErrorBudgetBurn")),
    "fallback": RuleExercise(
        "fallback", "FALLBACK_RULES", (("LLMFallbackRatioHigh", "warning"),), fallback_cases,
        {"LLMFallbackRatioHigh": _for("LLMFallbackRatioHigh")}),
    "quality_drift": RuleExercise(
        "quality-drift", "QUALITY_DRIFT_RULES", (("LLMAnswerQualityDrop", "warning"),), quality_drift_cases,
        {"LLMAnswerQualityDrop": _for("LLMAnswerQualityDrop")}, per_model=True),
    "department_budget": RuleExercise(
        "department-budget", "DEPARTMENT_BUDGET_RULES",
        tuple(("LLMDepartmentBudget", severity) for severity in A.DEPARTMENT_BUDGET_STEPS), department_budget_cases,
        {"LLMDepartmentBudget": _for("LLMDepartmentBudget")}, severities=tuple(A.DEPARTMENT_BUDGET_STEPS)),
}


def check(exercise: str, value: Any, hidden: bool = False) -> list[RuleCase]:
    """The check cell of a rules exercise: structure, promtool check rules, then the (visible or hidden) cases.
    Returns the cases it replayed. Raises LabCheckFailed with the first problem."""
    spec = EXERCISES[exercise]
    rules = load_rules(value, spec.variable)
    lint(rules, spec, hidden=hidden)
    document = rules_file({spec.group: rules})
    key = (exercise, yaml.safe_dump(document, sort_keys=True))
    every = spec.cases()
    if key not in _REPLAYED:  # the visible check replays the hidden cases too, in the same promtool run
        promtool_check(document, spec.variable)
        try:
            _REPLAYED.clear()
            _REPLAYED[key] = replay(document, {s.key: s.world for s in every})
        except TimelineError as error:
            reject(f"{spec.variable}: {error}", "promtool check rules accepts the file; does every expression "
                                                "evaluate?")
    cases = [s for s in every if s.hidden == hidden]
    for case in cases:
        problem = judge(case, _REPLAYED[key][case.key])
        if problem:
            raise LabCheckFailed(problem)
    return cases


_REPLAYED: dict[tuple[str, str], dict[str, list[Episode]]] = {}  # the last exercise's replay, by its rules


def collect(namespace: Mapping[str, Any]) -> tuple[dict, dict[str, str]]:
    """Every exercise's rules that pass promtool on their own, as one rules file; and why the others were left out."""
    groups: dict[str, list[dict]] = {}
    skipped: dict[str, str] = {}
    for spec in EXERCISES.values():
        value = namespace.get(spec.variable)
        if value is None:
            skipped[spec.variable] = "not set"
            continue
        try:
            rules = load_rules(value, spec.variable)
            promtool_check(rules_file({spec.group: rules}), spec.variable)
        except LabCheckFailed as error:
            skipped[spec.variable] = str(error).split(". Hint:")[0]
            continue
        groups[spec.group] = rules
    return rules_file(groups), skipped


def preview(exercise: str, value: Any) -> Any:
    """The visible cases of an exercise replayed through `value`: when each alert fired, and the verdict."""
    import pandas as pd

    spec = EXERCISES[exercise]
    document = rules_file({spec.group: load_rules(value, spec.variable)})
    cases = [s for s in spec.cases() if not s.hidden]
    results = replay(document, {s.key: s.world for s in cases})
    rows = []
    for case in cases:
        verdict = judge(case, results[case.key]) or "ok"
        for episode in results[case.key] or [None]:
            rows.append({"scenario": case.title,
                         "alert": episode.describe() if episode else "(nothing fired)",
                         "fired at (s)": episode.first if episode else None,
                         "until (s)": episode.last if episode else None,
                         "verdict": verdict})
    return pd.DataFrame(rows)
