"""Lab V3, exercises 10-11 and the live check: the student's Alertmanager routing, grouping, inhibition (and the
department budget tiers) and silence,
checked with the real amtool and a real, temporary Alertmanager; and temporary Prometheus/Alertmanager processes for
the live check (graders/checks/test_v3.py).

Temporary processes listen on a free 127.0.0.1 port, keep their data in a temporary folder, run without clustering
(--cluster.listen-address=) and are stopped (their own process only) when the `with` block ends.
"""

from __future__ import annotations

import copy
import json
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import httpx
import yaml

from graders.labcheck import fail, reports_stubs, yaml_value
from graders.v3.rules import TIMING, reject, seconds_of
from stack import topology
from stack.alertmanager.config import standalone_config
from stack.runner.binaries import complaint_about
from stack.runner.binaries import find as find_binary

READY_SECONDS = 10
ALERTMANAGER_FILE = "student_alertmanager.yml"
CHANNELS = ("pager", "chat")


# ---------------------------------------------------------------- temporary processes

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Running:
    url: str
    folder: Path
    process: subprocess.Popen

    def log(self) -> str:
        path = self.folder / "log.txt"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


@contextmanager
def _process(name: str, argv: Callable[[Path, int], list[str]], ready: str) -> Iterator[Running]:
    with tempfile.TemporaryDirectory(prefix=f"v3-{name}-") as folder_name:
        folder = Path(folder_name)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with (folder / "log.txt").open("wb") as log:
            process = subprocess.Popen(argv(folder, port), cwd=folder, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + READY_SECONDS
            while True:
                if process.poll() is not None:
                    running = Running(url, folder, process)
                    raise RuntimeError(f"the temporary {name} exited at start: {running.log()[-400:]}")
                try:
                    if httpx.get(url + ready, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the temporary {name} was not ready after {READY_SECONDS}s")
                time.sleep(0.05)
            yield Running(url, folder, process)
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@contextmanager
def temporary_alertmanager(config: Mapping) -> Iterator[Running]:
    def argv(folder: Path, port: int) -> list[str]:
        (folder / "alertmanager.yml").write_text(yaml.safe_dump(dict(config), sort_keys=False))
        return [find_binary("alertmanager"), "--config.file=alertmanager.yml", f"--storage.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}", f"--web.external-url=http://127.0.0.1:{port}",
                "--cluster.listen-address=", "--log.level=warn"]

    with _process("alertmanager", argv, "/-/ready") as running:
        yield running


@contextmanager
def temporary_prometheus(config: Mapping, rules: Mapping) -> Iterator[Running]:
    """Prometheus with `config` (its rule_files is set to the rules given here) on a free port."""
    def argv(folder: Path, port: int) -> list[str]:
        (folder / "rules.yml").write_text(yaml.safe_dump(dict(rules), sort_keys=False))
        (folder / "prometheus.yml").write_text(yaml.safe_dump({**config, "rule_files": ["rules.yml"]},
                                                              sort_keys=False))
        return [find_binary("prometheus"), "--config.file=prometheus.yml", f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}", "--rules.alert.resend-delay=1s", "--log.level=warn"]

    with _process("prometheus", argv, "/-/ready") as running:
        yield running


# ---------------------------------------------------------------- the student's config

def load_config(value: Any, variable: str = "ALERTMANAGER_CONFIG") -> dict:
    value = yaml_value(value, variable, "write your Alertmanager config in the exercise cell above and run it")
    if not isinstance(value, Mapping) or not isinstance(value.get("route"), Mapping):
        reject(f"{variable} has no route", "an Alertmanager config: route, receivers, inhibit_rules")
    return json.loads(json.dumps(value))  # plain dicts and lists, nothing a YAML dump would refuse


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([find_binary("amtool"), *args], capture_output=True, text=True, timeout=20)


def check_config(config: Mapping) -> None:
    complaint = complaint_about("amtool", ["check-config"], config, "alertmanager.yml")
    if complaint:
        reject(f"amtool check-config rejects ALERTMANAGER_CONFIG: {complaint[:300]}",
             "every receiver a route names must be defined; matchers are strings like 'severity=\"critical\"'")


def _hook_urls() -> dict[str, set[str]]:
    urls: dict[str, set[str]] = {channel: set() for channel in CHANNELS}
    for base in (False, True):
        if base:
            with topology.base_ports():
                receiver = topology.load()["receiver"].url
        else:
            receiver = topology.load()["receiver"].url
        for channel in CHANNELS:
            urls[channel].add(f"{receiver}/hook/{channel}")
    return urls


def _check_receivers(config: Mapping) -> None:
    receivers = {r.get("name"): r for r in config.get("receivers") or [] if isinstance(r, Mapping)}
    for channel, urls in _hook_urls().items():
        example = sorted(urls)[0]
        expect_receiver = receivers.get(channel)
        if expect_receiver is None:
            reject(f"ALERTMANAGER_CONFIG has no receiver named {channel!r}",
                 f"receivers: - name: {channel}, webhook_configs: [{{url: {example}}}]")
        hooks = [w.get("url") for w in expect_receiver.get("webhook_configs") or []]
        if not any(url in urls for url in hooks):
            reject(f"the receiver {channel!r} sends to {hooks or 'nowhere'}, not to the course receiver",
                 f"webhook_configs: [{{url: {example}}}] (the receiver from stack/topology.yaml)")


@dataclass(frozen=True)
class RouteCase:
    what: str
    labels: Mapping[str, str]
    receivers: tuple[str, ...]
    hidden: bool = False


ROUTE_CASES = (
    RouteCase("a critical TargetDown", {"alertname": "TargetDown", "severity": "critical", "job": "llmsim"},
              ("pager",)),
    RouteCase("a critical error ratio", {"alertname": "LLMHighErrorRatio", "severity": "critical",
                                         "model": "sim-fast"}, ("pager",)),
    RouteCase("a warning error ratio", {"alertname": "LLMHighErrorRatio", "severity": "warning",
                                        "model": "sim-fast"}, ("chat",)),
    RouteCase("a latency warning", {"alertname": "LLMLatencyP95High", "severity": "warning",
                                    "model": "sim-reasoning"}, ("chat",)),
    RouteCase("an alert without severity (someone forgot the label)", {"alertname": "Unlabelled"}, ("chat",),
              hidden=True),
    RouteCase("a critical budget burn", {"alertname": "LLMDailyBudgetBurn", "severity": "critical"}, ("pager",),
              hidden=True),
    RouteCase("a warning budget burn", {"alertname": "LLMDailyBudgetBurn", "severity": "warning"}, ("chat",),
              hidden=True),
)


def check_routing(value: Any, hidden: bool = False) -> dict:
    config = load_config(value)
    check_config(config)
    _check_receivers(config)
    with tempfile.TemporaryDirectory(prefix="v3-am-") as folder:
        path = Path(folder, "alertmanager.yml")
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        for case in ROUTE_CASES:
            if case.hidden != hidden:
                continue
            labels = [f"{k}={v}" for k, v in case.labels.items()]
            result = _amtool("config", "routes", "test", f"--config.file={path}", *labels)
            got = tuple(r.strip() for r in result.stdout.strip().split(",") if r.strip())
            if sorted(got) != sorted(case.receivers):
                hint = {
                    ("pager",): "route severity=\"critical\" to pager, and do not let it `continue` to chat",
                    ("chat",): "warnings go to chat (working hours), never to the pager: nobody wants to be woken "
                               "for a warning; the root route's receiver catches alerts without severity",
                }[case.receivers]
                reject(f"{case.what} ({', '.join(labels)}) goes to {list(got)}, expected {list(case.receivers)}",
                     hint)
    return config


STORM_MODELS = ("sim-fast", "sim-balanced", "sim-reasoning")
STORM_INSTANCES = tuple(f"gateway-{n}:8080" for n in range(1, 6))


def storm() -> list[dict]:
    """A provider falling over behind 5 gateway replicas: 46 alerts from 6 alert rules."""
    alerts = [{"alertname": "TargetDown", "severity": "critical", "job": "llmsim"}]
    for instance in STORM_INSTANCES:
        for model in STORM_MODELS:
            base = {"model": model, "instance": instance, "job": "gateway"}
            alerts += [{**base, "alertname": "LLMHighErrorRatio", "severity": "critical"},
                       {**base, "alertname": "LLMHighErrorRatio", "severity": "warning"},
                       {**base, "alertname": "LLMLatencyP95High", "severity": "warning"}]
    alerts += [{"alertname": "LLMErrorBudgetBurn", "severity": "critical"},
               {"alertname": "LLMErrorBudgetBurn", "severity": "warning"},
               {"alertname": "LLMCostAnomaly", "severity": "warning"} | {"department": "marketing"}]
    return alerts


def _post_alerts(url: str, alerts: Sequence[Mapping[str, str]], annotations: bool = True) -> None:
    now = datetime.now(timezone.utc)
    body = [{"labels": dict(labels), "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat(),
             "annotations": {"summary": "check"} if annotations else {}} for labels in alerts]
    response = httpx.post(f"{url}/api/v2/alerts", json=body, timeout=5)
    response.raise_for_status()


def _alerts(url: str, expected: int) -> list[dict]:
    deadline = time.monotonic() + 5
    while True:
        found = httpx.get(f"{url}/api/v2/alerts", timeout=5).json()
        if len(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _groups(url: str, expected_alerts: int) -> list[dict]:
    deadline = time.monotonic() + 5
    while True:
        groups = httpx.get(f"{url}/api/v2/alerts/groups", timeout=5).json()
        grouped = {a["fingerprint"] for g in groups for a in g["alerts"]}
        if len(grouped) >= expected_alerts or time.monotonic() > deadline:
            return groups
        time.sleep(0.05)


def check_grouping(value: Any) -> tuple[int, int]:
    """(alerts in the storm, notifications Alertmanager would send for it: one per alert group)."""
    config = load_config(value)
    check_config(config)
    alerts = storm()
    with temporary_alertmanager(config) as am:
        _post_alerts(am.url, alerts)
        groups = _groups(am.url, len(alerts))
    kinds = {(a["alertname"], a["severity"]) for a in alerts}
    notifications = len(groups)
    if notifications > len(kinds):
        by = (config.get("route") or {}).get("group_by")
        reject(f"the storm of {len(alerts)} alerts ({len(kinds)} alert names and severities, from "
             f"{len(STORM_INSTANCES)} gateway replicas and {len(STORM_MODELS)} models) makes {notifications} "
             f"notifications with group_by {by!r}",
             f"group_by: ['alertname', 'severity']: at most one notification per "
                                                     f"alert name and severity ({len(kinds)} here)")
    wait = seconds_of((config.get("route") or {}).get("group_wait", "30s"))
    if wait is None or wait <= 0:
        reject("route.group_wait is 0: the first notification goes out before the rest of the storm has arrived",
             f"group_wait: {TIMING.alertmanager.group_wait} (TIMING.alertmanager.group_wait)")
    return len(alerts), notifications


@dataclass(frozen=True)
class InhibitionCase:
    what: str
    labels: Mapping[str, str]
    inhibited: bool
    hint: str
    hidden: bool = False


INHIBITION_CASES = (
    InhibitionCase("the critical LLMHighErrorRatio for sim-fast",
                   {"alertname": "LLMHighErrorRatio", "severity": "critical", "model": "sim-fast"}, False,
                   "a critical alert is the source of the inhibition, never its target"),
    InhibitionCase("the warning LLMHighErrorRatio for sim-fast (its critical fires too)",
                   {"alertname": "LLMHighErrorRatio", "severity": "warning", "model": "sim-fast"}, True,
                   "inhibit_rules: source_matchers ['severity=\"critical\"'], target_matchers "
                   "['severity=\"warning\"'], equal ['alertname', 'model']: one notification per problem"),
    InhibitionCase("the warning LLMHighErrorRatio for sim-balanced (a different model, nothing critical about it)",
                   {"alertname": "LLMHighErrorRatio", "severity": "warning", "model": "sim-balanced"}, False,
                   "equal: ['alertname', 'model']: a critical for one model must not hide another model's warning"),
    InhibitionCase("the warning LLMLatencyP95High for sim-fast (a different alert)",
                   {"alertname": "LLMLatencyP95High", "severity": "warning", "model": "sim-fast"}, False,
                   "equal: ['alertname', 'model']: slow answers are a different problem from failed ones"),
    InhibitionCase("the critical LLMDailyBudgetBurn", {"alertname": "LLMDailyBudgetBurn", "severity": "critical"},
                   False, "a critical alert is never muted", hidden=True),
    InhibitionCase("the warning LLMDailyBudgetBurn (its critical fires too; neither has a model label)",
                   {"alertname": "LLMDailyBudgetBurn", "severity": "warning"}, True,
                   "equal ['alertname', 'model'] also matches when both lack the model label", hidden=True),
    InhibitionCase("the warning LLMMetricsAbsent while TargetDown (critical) fires for llmsim",
                   {"alertname": "LLMMetricsAbsent", "severity": "warning", "job": "gateway"}, False,
                   "equal: ['alertname', 'model']: without it, any critical mutes every warning", hidden=True),
)
INHIBITION_SOURCES = ({"alertname": "TargetDown", "severity": "critical", "job": "llmsim"},)
_INHIBITED: dict[str, dict[str, dict]] = {}  # the last config's inhibition states


def check_inhibition(value: Any, hidden: bool = False) -> None:
    config = load_config(value)
    check_config(config)
    rules = config.get("inhibit_rules") or []
    if not rules:
        reject("ALERTMANAGER_CONFIG has no inhibit_rules: a critical alert and its warning page and chat about the "
               "same problem", "inhibit_rules: source critical, target warning, equal ['alertname', 'model']")
    key = json.dumps(config, sort_keys=True)
    if key not in _INHIBITED:  # the visible check posts the hidden cases too, to the same Alertmanager
        labels = [dict(c.labels) for c in INHIBITION_CASES] + [dict(s) for s in INHIBITION_SOURCES]
        with temporary_alertmanager(config) as am:
            _post_alerts(am.url, labels)
            found = _alerts(am.url, len(labels))
        _INHIBITED.clear()
        _INHIBITED[key] = {json.dumps(a["labels"], sort_keys=True): a["status"] for a in found}
    status = _INHIBITED[key]
    for case in [c for c in INHIBITION_CASES if c.hidden == hidden]:
        state = status.get(json.dumps({**case.labels}, sort_keys=True))
        if state is None:
            fail(f"Alertmanager lost {case.what}", "the alert in /api/v2/alerts", "nothing")
        muted = bool(state.get("inhibitedBy"))
        if muted != case.inhibited:
            without_equal = any(not r.get("equal") for r in rules if isinstance(r, Mapping))
            if muted and without_equal:
                reject(f"{case.what} is muted: an inhibit rule without `equal` lets any critical alert mute every "
                     "warning", "equal: ['alertname', 'model']")
            verb = "is muted" if muted else "is not muted"
            reject(f"{case.what} {verb}", case.hint)


# ---------------------------------------------------------------- department budget tiers (exercise 10, budget)

BUDGET_ALERT = "LLMDepartmentBudget"
NOBODY = ()  # a receiver without integrations: the alert is kept (API, dashboards) but notifies nobody


@dataclass(frozen=True)
class TierCase:
    what: str
    labels: Mapping[str, str]
    receivers: tuple[str, ...]      # NOBODY: a receiver that notifies nobody
    hidden: bool = False


TIER_CASES = (
    TierCase("research at 80 % of its budget (info)", {"alertname": BUDGET_ALERT, "severity": "info",
                                                       "department": "research"}, NOBODY),
    TierCase("marketing at 90 % (warning)", {"alertname": BUDGET_ALERT, "severity": "warning",
                                             "department": "marketing"}, ("chat",)),
    TierCase("research at 100 % (critical)", {"alertname": BUDGET_ALERT, "severity": "critical",
                                              "department": "research"}, ("pager",)),
    TierCase("departments the catalog does not list, at 80 % (info)",
             {"alertname": BUDGET_ALERT, "severity": "info", "department": "other"}, NOBODY, hidden=True),
    TierCase("finance at 100 % (critical)", {"alertname": BUDGET_ALERT, "severity": "critical",
                                             "department": "finance"}, ("pager",), hidden=True),
)
# Posted together: (labels, muted?, hidden). Research is over budget (all three tiers fire), marketing and sales at
# 90 % (info and warning), finance at 80 %.
TIER_INHIBITION = (
    ({"alertname": BUDGET_ALERT, "severity": "critical", "department": "research"}, False, False),
    ({"alertname": BUDGET_ALERT, "severity": "warning", "department": "research"}, True, False),
    ({"alertname": BUDGET_ALERT, "severity": "warning", "department": "marketing"}, False, False),
    ({"alertname": BUDGET_ALERT, "severity": "info", "department": "research"}, False, True),
    ({"alertname": BUDGET_ALERT, "severity": "warning", "department": "sales"}, False, True),
    ({"alertname": BUDGET_ALERT, "severity": "info", "department": "finance"}, False, True),
)


def _routes(path: Path, labels: Mapping[str, str]) -> tuple[str, ...]:
    result = _amtool("config", "routes", "test", f"--config.file={path}", *(f"{k}={v}" for k, v in labels.items()))
    return tuple(sorted(r.strip() for r in result.stdout.strip().split(",") if r.strip()))


def _silent_receivers(config: Mapping) -> set[str]:
    """Receivers with no integration (no webhook_configs, slack_configs ...): they notify nobody."""
    return {r.get("name") for r in config.get("receivers") or [] if isinstance(r, Mapping)
            and not any(key.endswith("_configs") and r[key] for key in r)}


_TIER_INHIBITED: dict[str, dict[str, bool]] = {}  # the last config's inhibition states of TIER_INHIBITION


@reports_stubs
def check_budget_tiers(value: Any, hidden: bool = False) -> None:
    """LLMDepartmentBudget: info notifies nobody, warning chats, critical pages; the critical of a department mutes
    that department's warning, and nobody else's."""
    config = load_config(value)
    check_config(config)
    silent = _silent_receivers(config)
    with tempfile.TemporaryDirectory(prefix="v3-am-") as folder:
        path = Path(folder, "alertmanager.yml")
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        for case in [c for c in TIER_CASES if c.hidden == hidden]:
            got = _routes(path, case.labels)
            wrong = (not got or not set(got) <= silent) if case.receivers == NOBODY else got != case.receivers
            if not wrong:
                continue
            expected = "a receiver that notifies nobody" if case.receivers == NOBODY else str(list(case.receivers))
            if "pager" in got:
                hint = ("budget tiers are not all emergencies: info notifies nobody, warning goes to chat, only the "
                        "critical step (the money is gone, the gateway refuses or downgrades) pages")
            elif case.receivers == NOBODY:
                hint = ("an 80 % budget step is for dashboards: a receiver without integrations (receivers: - name: "
                        "'null') and a route severity=\"info\" -> 'null', above the default")
            else:
                hint = "route on severity, like every other alert"
            reject(f"{BUDGET_ALERT} for {case.what} goes to {list(got)}, expected {expected}", hint)
    key = json.dumps(config, sort_keys=True)
    if key not in _TIER_INHIBITED:
        alerts = [dict(labels) for labels, _, _ in TIER_INHIBITION]
        with temporary_alertmanager(config) as am:
            _post_alerts(am.url, alerts)
            found = _alerts(am.url, len(alerts))
        _TIER_INHIBITED.clear()
        _TIER_INHIBITED[key] = {json.dumps(a["labels"], sort_keys=True): bool(a["status"].get("inhibitedBy"))
                                for a in found}
    states = _TIER_INHIBITED[key]
    for labels, muted, secret in TIER_INHIBITION:
        if secret != hidden:
            continue
        seen = states.get(json.dumps(labels, sort_keys=True))
        where = f"the {labels['severity']} {BUDGET_ALERT} for {labels['department']}"
        if seen is None:
            fail(f"Alertmanager lost {where}", "the alert in /api/v2/alerts", "nothing")
        if muted and not seen:
            reject(f"{where} is not muted while its critical fires: the department hears about 90 % and 100 % at "
                   "once", "inhibit_rules: source severity=\"critical\", target severity=\"warning\", equal "
                          "including alertname and department")
        if seen and not muted:
            reject(f"{where} is muted by research's critical: equal ['alertname', 'model'] matches when both lack "
                   "the model label, so one department over budget hides every other department's warning",
                   "add department to `equal`: ['alertname', 'model', 'department']")


def maintenance_alerts() -> list[tuple[str, dict, bool]]:
    """(what, labels, should the maintenance silence mute it)."""
    return [
        ("TargetDown for llmsim", {"alertname": "TargetDown", "severity": "critical", "job": "llmsim"}, True),
        ("TargetDown for the gateway", {"alertname": "TargetDown", "severity": "critical", "job": "gateway"}, False),
        ("LLMProviderRateLimited from llmsim", {"alertname": "LLMProviderRateLimited", "severity": "warning",
                                                "job": "llmsim"}, True),
        ("LLMLatencyP95High from the gateway", {"alertname": "LLMLatencyP95High", "severity": "warning",
                                                "job": "gateway", "model": "sim-fast"}, False),
    ]


def _post_silences(make_silence: Callable[[datetime, datetime], Any]) -> dict:
    """Tonight's maintenance (started a minute ago, two hours long) and one in two days, posted to a temporary
    Alertmanager with the course's routing and maintenance_alerts() firing."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    start, end = now - timedelta(minutes=1), now + timedelta(hours=2)
    later = (now + timedelta(days=2), now + timedelta(days=2, hours=3))
    body = make_silence(start, end)
    if not isinstance(body, Mapping):
        reject(f"maintenance_silence(...) returned {type(body).__name__}", "the JSON body of POST /api/v2/silences, "
               "as a dict")
    for key in ("createdBy", "comment"):
        if not str(body.get(key) or "").strip():
            reject(f"the silence has no {key}", "createdBy: who planned the maintenance; comment: why (a change "
                   "ticket): Alertmanager refuses silences without them, and on-call reads them")
    alerts = maintenance_alerts()
    with temporary_alertmanager(standalone_config(TIMING)) as am:
        _post_alerts(am.url, [labels for _, labels, _ in alerts])
        response = httpx.post(f"{am.url}/api/v2/silences", json=dict(body), timeout=5)
        if response.status_code != 200:
            reject(f"Alertmanager refuses the silence (HTTP {response.status_code}): {response.text.strip()[:200]}",
                   "matchers: [{name, value, isRegex, isEqual}], startsAt and endsAt as RFC 3339 times")
        stored = httpx.get(f"{am.url}/api/v2/silence/{response.json().get('silenceID')}", timeout=5).json()
        found = _alerts(am.url, len(alerts))
        future = httpx.post(f"{am.url}/api/v2/silences", json=dict(make_silence(*later)), timeout=5)
        future_id = future.json().get("silenceID") if future.status_code == 200 else None
        pending = httpx.get(f"{am.url}/api/v2/silence/{future_id}", timeout=5).json() if future_id else {}
    return {"start": start, "end": end, "later": later[0], "stored": stored, "found": found, "alerts": alerts,
            "pending": pending, "future_status": future.status_code}


_SILENCED: dict[int, dict] = {}  # the last silence function's results (the hidden check reuses the visible one's)


@reports_stubs
def check_silence(make_silence: Callable[[datetime, datetime], Any], hidden: bool = False) -> dict:
    """POST the silence `make_silence(start, end)` returns to a temporary Alertmanager (the course's routing) and
    check which alerts it mutes, and that it covers exactly the maintenance window."""
    if id(make_silence) not in _SILENCED or not hidden:
        _SILENCED.clear()
        _SILENCED[id(make_silence)] = _post_silences(make_silence)
    seen = _SILENCED[id(make_silence)]
    window = "the maintenance window you were given, as RFC 3339 (isoformat() of the aware datetimes)"
    stored = seen["stored"]
    if hidden:
        pending = seen["pending"]
        state = (pending.get("status") or {}).get("state")
        if state != "pending":
            fail("a silence for maintenance in two days", "state pending (it starts later)",
                 state or f"refused ({seen['future_status']})", "startsAt is the start of the window, not now")
        starts = _time(pending.get("startsAt"))
        if starts is None or abs((starts - seen["later"]).total_seconds()) > 1:
            fail("the startsAt of a silence for maintenance in two days", seen["later"].isoformat(),
                 pending.get("startsAt"), window)
        return stored
    starts, ends = _time(stored.get("startsAt")), _time(stored.get("endsAt"))
    # Alertmanager moves a start in the past to the moment the silence is created.
    if starts is None or not seen["start"] - timedelta(seconds=1) <= starts <= datetime.now(timezone.utc):
        fail("the silence's startsAt", seen["start"].isoformat(), stored.get("startsAt"), window)
    if ends is None or abs((ends - seen["end"]).total_seconds()) > 1:
        fail("the silence's endsAt", seen["end"].isoformat(), stored.get("endsAt"), window)
    muted = {json.dumps(a["labels"], sort_keys=True): bool(a["status"].get("silencedBy")) for a in seen["found"]}
    for what, labels, should in seen["alerts"]:
        if muted.get(json.dumps(labels, sort_keys=True)) != should:
            if should:
                reject(f"the maintenance silence does not mute {what}",
                       'match the component under maintenance: a matcher job="llmsim" (isEqual true, isRegex false)')
            reject(f"the maintenance silence also mutes {what}, which has nothing to do with the maintenance",
                   'a silence as narrow as the work: job="llmsim" only; a broad silence hides real outages')
    return stored


def _time(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


# ---------------------------------------------------------------- the live check's copies

def live_rules(rules: Mapping, longest_for: int = 0) -> dict:
    """The student's rules with every `for` capped at `longest_for` seconds: the promtool scenarios grade the timing;
    the live check proves the rules load, match the live gateway's series and route through Alertmanager."""
    live = copy.deepcopy(dict(rules))
    for group in live.get("groups") or []:
        for rule in group.get("rules") or []:
            held = seconds_of(rule.get("for"))
            if held is not None and held > longest_for:
                rule["for"] = f"{longest_for}s"
    return live


def live_alertmanager(config: Mapping, group_wait: int = 0) -> dict:
    """The student's config with every receiver's notifications sent to the live receiver's /hook/<receiver> (other
    integrations removed) and every route's group_wait at most `group_wait` seconds."""
    live = copy.deepcopy(dict(config))
    receiver = topology.load()["receiver"].url
    for entry in live.get("receivers") or []:
        integrations = [key for key in list(entry) if key.endswith("_configs")]
        if integrations:
            for key in integrations:
                entry.pop(key)
            entry["webhook_configs"] = [{"url": f"{receiver}/hook/{entry['name']}", "send_resolved": False}]
    routes = [live.setdefault("route", {})]
    while routes:
        route = routes.pop()
        if "group_wait" in route or route is live["route"]:
            if (seconds_of(route.get("group_wait", "30s")) or 0) > group_wait:
                route["group_wait"] = f"{group_wait}s"
        routes += [child for child in route.get("routes") or [] if isinstance(child, dict)]
    live.pop("templates", None)
    return live
