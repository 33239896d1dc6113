"""The load generator (stack/loadgen): its seeded traffic mix, its argument checks, and real runs on the stack.

The live tests run the CLI as a student does (`python -m stack.loadgen`, what `make load` calls) for a few
seconds each; the mix and argument tests need no stack.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from stack import catalog, topology
from stack.loadgen import report, run, target
from stack.loadgen.workload import (CHAT_PATH, FEEDBACK_PATH, STREAMED_SUFFIX, WORKFLOW_PATH, Mix, RequestPlanner, model_weights,
                                   population)
from stack.paths import REPO_ROOT
from tests import live
from tests.conftest import LiveStack

pytestmark = pytest.mark.stack

CLI_TIMEOUT_SECONDS = 60
_SAMPLE = re.compile(r'^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\} (?P<value>\S+)$')


def _cli(*args: str, timeout: float = CLI_TIMEOUT_SECONDS) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stack.loadgen", *args], cwd=REPO_ROOT, text=True,
                          capture_output=True, timeout=timeout, env={**os.environ, "COLUMNS": "160"})


def _by_label(exposition: str, metric: str, label: str, **match: str) -> Counter[str]:
    """Sum of `metric` per value of `label`, over samples whose other labels equal `match`."""
    totals: Counter[str] = Counter()
    for line in exposition.splitlines():
        sample = _SAMPLE.match(line)
        if not sample or sample["name"] != metric:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', sample["labels"]))
        if all(labels.get(k) == v for k, v in match.items()):
            totals[labels[label]] += float(sample["value"])
    return totals


def _grown(before: Counter[str], after: Counter[str]) -> set[str]:
    return {key for key, value in after.items() if value > before.get(key, 0)}


# --- the traffic mix, without the stack ---------------------------------------------------------------------

def _digest(requests: list) -> str:
    return hashlib.sha256(json.dumps([(r.path, r.body) for r in requests], sort_keys=True).encode()).hexdigest()


def test_the_mix_is_deterministic_for_a_seed_and_differs_between_seeds_and_users() -> None:
    first = RequestPlanner(Mix(seed=7), stream=3).take(400)
    assert _digest(first) == _digest(RequestPlanner(Mix(seed=7), stream=3).take(400))
    assert _digest(first) != _digest(RequestPlanner(Mix(seed=8), stream=3).take(400)), "the seed changes the mix"
    assert _digest(first) != _digest(RequestPlanner(Mix(seed=7), stream=4).take(400)), "each user has its own stream"
    assert population(Mix(seed=7)) == population(Mix(seed=7))


def test_the_mix_does_not_depend_on_the_python_process() -> None:
    """Seeds are strings; str hashing is randomised per process, the mix must not be."""
    code = ("from stack.loadgen.workload import Mix, RequestPlanner; import hashlib, json; "
            "r = RequestPlanner(Mix(seed=11), stream=2).take(200); "
            "print(hashlib.sha256(json.dumps([(x.path, x.body) for x in r], sort_keys=True).encode()).hexdigest())")
    digests = {subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip() for seed in ("1", "2")}
    assert digests == {_digest(RequestPlanner(Mix(seed=11), stream=2).take(200))}


def test_the_mix_is_weighted_toward_the_cheap_model_and_skewed_over_departments_and_applications() -> None:
    cat = catalog.load()
    requests = [r for stream in range(6) for r in RequestPlanner(Mix(seed=5), stream=stream).take(600)]
    by_price = sorted(cat.models.values(), key=lambda m: m.input_price_per_million + m.output_price_per_million)
    models = Counter(r.model for r in requests)
    counts = [models[m.name] for m in by_price]
    assert counts == sorted(counts, reverse=True) and counts[-1] > 0, f"cheapest model most, every model some: {models}"
    assert models[by_price[0].name] / len(requests) > 0.5, models
    assert list(model_weights(Mix())) == [m.name for m in by_price]

    departments = Counter(r.persona.department for r in requests)
    applications = Counter(r.persona.application for r in requests)
    assert set(departments) == set(cat.departments), "every department shows up"
    assert set(applications) == set(cat.applications), "every application shows up"
    for name, seen in (("departments", departments), ("applications", applications)):
        ranked = seen.most_common()
        assert ranked[0][1] >= 3 * ranked[-1][1], f"{name} should be skewed: {ranked}"
    users = Counter(r.persona.user_id for r in requests)
    assert users.most_common(1)[0][1] >= 5 * (len(requests) / len(users)) / 2, "a few heavy users"

    workflows = sum(r.path == WORKFLOW_PATH for r in requests) / len(requests)
    assert 0.02 < workflows < 0.1, f"occasional agent workflows (~{Mix().workflow_share:.0%}), got {workflows:.1%}"

    lengths = [len(r.body["messages"][-1]["content"]) for r in requests if r.path == CHAT_PATH]
    assert len(set(lengths)) > 200 and max(lengths) <= cat.max_prompt_chars
    assert sorted(lengths)[len(lengths) // 2] * 3 < max(lengths), "a long tail of long prompts"


def test_every_request_is_synthetic_and_fully_attributed_with_catalog_values() -> None:
    cat = catalog.load()
    for request in RequestPlanner(Mix(seed=3, workflow_share=0.3)).take(300):
        body = request.body
        assert body["synthetic"] is True
        assert body["model"] in cat.models
        attribution = body["attribution"]
        assert attribution["department"] in cat.departments and attribution["application"] in cat.applications
        assert attribution["user_id"]
        if request.path == WORKFLOW_PATH:
            assert body["question"] and len(body["question"]) <= cat.max_prompt_chars
        else:
            system, question = body["messages"]
            assert system["role"] == "system" and question["role"] == "user" and question["content"]


# --- arguments and targets ---------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["http://127.0.0.1:18700", "http://127.9.9.9", "http://localhost:1",
                                 "http://[::1]:80/"])
def test_loopback_targets_are_accepted(url: str) -> None:
    assert target.check_loopback(url) == url.rstrip("/")


@pytest.mark.parametrize("url", ["http://10.0.0.5:18700", "http://0.0.0.0:18700", "http://example.com",
                                 "http://localhost.example.com", "http://127.0.0.1.nip.io", "https://[2001:db8::1]",
                                 "ftp://127.0.0.1", "127.0.0.1:18700"])
def test_other_targets_are_refused(url: str) -> None:
    with pytest.raises(target.TargetError):
        target.check_loopback(url)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


BAD_ARGUMENTS = [
    # (what is wrong, arguments, words the error must contain)
    ("duration above the maximum", ["--duration", str(run.MAX_DURATION_SECONDS + 1)], ["--duration", "maximum"]),
    ("duration in hours", ["--duration", "2h"], ["--duration", str(run.MAX_DURATION_SECONDS)]),
    ("unreadable duration", ["--duration", "soon"], ["duration", "soon"]),
    ("zero users", ["--users", "0"], ["--users", "0"]),
    ("a remote host", ["--host", "http://203.0.113.7:18700"], ["refusing", "203.0.113.7", "127.0.0.1"]),
    ("a host name", ["--host", "http://gateway.example.com"], ["refusing", "gateway.example.com"]),
    ("zero rate", ["--rate", "0"], ["--rate"]),
    ("nothing listening", ["--host", f"http://127.0.0.1:{_free_port()}", "--duration", "1"],
     ["cannot reach the gateway", "make up"]),
]


@pytest.mark.parametrize(("problem", "args", "words"), BAD_ARGUMENTS, ids=[case[0] for case in BAD_ARGUMENTS])
def test_bad_arguments_give_a_clear_error_and_no_traceback(problem: str, args: list[str], words: list[str],
                                                           tmp_path: Path) -> None:
    result = _cli(*args, "--out", str(tmp_path))
    output = result.stdout + result.stderr
    assert result.returncode == 2, f"{problem}: exit {result.returncode}\n{output}"
    assert "Traceback" not in output, f"{problem}: {output}"
    assert "error" in result.stderr, f"{problem}: the error goes to stderr: {output}"
    for word in words:
        assert word in result.stderr, f"{problem}: the error does not mention {word!r}: {result.stderr}"
    assert not list(tmp_path.iterdir()), f"{problem}: nothing should run or be written"


def test_the_web_ui_binds_to_loopback_on_the_topology_port() -> None:
    argv = run.locust_argv(run.LoadSettings(ui=True), "http://127.0.0.1:1")
    service = topology.load().workbench["locust"]
    assert argv[argv.index("--web-host") + 1] == "127.0.0.1" == service.host
    assert argv[argv.index("--web-port") + 1] == str(service.port)
    assert "--headless" not in argv
    headless = run.locust_argv(run.LoadSettings(duration=7), "http://127.0.0.1:1")
    assert "--headless" in headless and headless[headless.index("--run-time") + 1] == "7s"


def test_make_load_passes_its_variables_to_the_cli() -> None:
    dry = subprocess.run(["make", "--no-print-directory", "-n", "load", "USERS=3", "DURATION=5", "RATE=4", "UI=1"],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
    command = " ".join(dry.stdout.replace("\\\n", " ").split())
    assert "-m stack.loadgen --users 3 --duration 5 --rate 4 --ui" in command, dry.stdout
    plain = subprocess.run(["make", "--no-print-directory", "-n", "load", "UI=0"], cwd=REPO_ROOT, capture_output=True,
                           text=True, timeout=30)
    assert "--ui" not in plain.stdout and "-m stack.loadgen" in plain.stdout


# --- on the live stack -------------------------------------------------------------------------------------

def test_a_headless_run_reports_its_requests_and_the_gateway_sees_them(stack: LiveStack, tmp_path: Path) -> None:
    before = live.gateway_metrics()
    started = time.time()
    result = _cli("--users", "12", "--spawn-rate", "12", "--rate", "20", "--duration", "5", "--seed", "1",
                  "--workflow-share", "0.15", "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr

    for name in ("load_stats.csv", "load_stats_history.csv", "load_failures.csv", "load_report.html", "locust.log"):
        assert (tmp_path / name).stat().st_size > 0, f"{name} missing or empty"
    stats = report.read(tmp_path / "load")
    assert stats.total.requests >= 20 and stats.total.failures == 0, stats.total
    assert {e.name for e in stats.endpoints} == {CHAT_PATH, CHAT_PATH + STREAMED_SUFFIX, WORKFLOW_PATH, FEEDBACK_PATH}
    ratings = next(e.requests for e in stats.endpoints if e.name == FEEDBACK_PATH)
    assert CHAT_PATH in (tmp_path / "load_report.html").read_text()
    assert "all endpoints" in result.stdout and "p95" in result.stdout, "the summary table is printed"
    streamed, chat = stats.chat_calls
    assert f"streamed: {streamed} of {chat} chat calls" in result.stdout
    assert stats.x_cache.get("HIT", 0) > 0 and stats.x_cache.get("MISS", 0) > 0, stats.x_cache
    assert stats.x_cache.get("BYPASS", 0) > 0, "one-off and no-cache questions bypass the response cache"
    assert "X-Cache:" in result.stdout and "hit ratio" in result.stdout

    after = live.gateway_metrics()
    models = _grown(_by_label(before, "llm_requests_total", "model", status="success"),
                    _by_label(after, "llm_requests_total", "model", status="success"))
    assert len(models) >= 2, f"traffic should reach several models, grew: {models}"
    assert not _grown(_by_label(before, "llm_requests_total", "model", status="error"),
                      _by_label(after, "llm_requests_total", "model", status="error"))
    departments = _grown(_by_label(before, "llm_cost_usd_total", "department"),
                         _by_label(after, "llm_cost_usd_total", "department"))
    assert len(departments) >= 3, f"traffic should be spread over departments, grew: {departments}"
    calls = live.metric_sum(after, "llm_requests_total") - live.metric_sum(before, "llm_requests_total")
    assert calls >= stats.total.requests - stats.x_cache.get("HIT", 0) - ratings, \
        "every request the response cache did not answer reached the provider (a workflow makes three calls; a " \
        "rating makes none)"

    with sqlite3.connect(stack.run / "gateway" / "attribution.db") as db:
        rows = db.execute("SELECT synthetic, department, application, step FROM llm_calls WHERE ts >= ?",
                          (started,)).fetchall()
    assert rows and all(synthetic == 1 for synthetic, *_ in rows), "load-test calls are marked synthetic"
    assert len({row[2] for row in rows}) >= 3, "several applications"
    assert {"chat", "classify", "answer", "format"} <= {row[3] for row in rows}


def test_the_web_ui_serves_on_loopback_runs_a_test_and_stops_by_itself(stack: LiveStack, tmp_path: Path) -> None:
    service = topology.load().workbench["locust"]
    child = subprocess.Popen([sys.executable, "-m", "stack.loadgen", "--ui", "--users", "3", "--duration", "6",
                              "--out", str(tmp_path)], cwd=REPO_ROOT, text=True, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env={**os.environ, "COLUMNS": "160"})
    try:
        live.eventually(lambda: httpx.get(service.url, timeout=2).status_code == 200, 20, "the locust web UI")
        started = httpx.post(f"{service.url}/swarm", data={"user_count": 3, "spawn_rate": 3}, timeout=5)
        assert started.json()["success"], started.text
        stdout, stderr = child.communicate(timeout=40)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, stdout + stderr
    assert service.url in stdout
    stats = report.read(tmp_path / "load")
    assert stats.total.requests > 0 and stats.total.failures == 0, stats.total
    assert (tmp_path / "load_report.html").stat().st_size > 0
    with pytest.raises(httpx.HTTPError):
        httpx.get(service.url, timeout=2)
