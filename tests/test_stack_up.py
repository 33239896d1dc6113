"""`make up` brings up the whole stack: every target scraped, gateway metrics in Prometheus, status healthy."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from stack import promapi, topology
from stack.runner import control
from tests import live
from tests.conftest import LiveStack
from stack.traffic import chat_body

pytestmark = pytest.mark.stack
SCRAPED_JOBS = {"gateway", "llmsim", "receiver", "tracestore", "prometheus", "alertmanager"}
# Scraped too, but started by a lab notebook (topology.yaml lab_targets): down unless a V2 notebook runs.
LAB_JOBS = {"lab"}


def test_make_up_prints_every_service_url(live_stack: LiveStack) -> None:
    for service in topology.load().services.values():
        assert service.url in live_stack.up_output, f"`make up` output lacks {service.name} at {service.url}"
    assert "Stack up in" in live_stack.up_output


def test_every_component_binds_loopback_and_every_target_is_up(stack: LiveStack) -> None:
    targets = {t["labels"]["job"]: t for t in promapi.Prometheus().targets()}
    assert set(targets) == SCRAPED_JOBS | LAB_JOBS
    assert {job: targets[job]["health"] for job in SCRAPED_JOBS} == {job: "up" for job in SCRAPED_JOBS}
    assert all(t["scrapeUrl"].startswith("http://127.0.0.1:") for t in targets.values())
    for job in LAB_JOBS:  # at the (possibly shifted) lab port, whether or not a notebook serves it right now
        lab = topology.load()[job]
        assert targets[job]["scrapeUrl"] == lab.url + lab.metrics
    up = {s.labels["job"]: s.value for s in promapi.query("up")}
    assert {job: up.get(job) for job in SCRAPED_JOBS} == {job: 1.0 for job in SCRAPED_JOBS}
    assert set(up) == SCRAPED_JOBS | LAB_JOBS


def test_a_gateway_request_becomes_queryable_in_prometheus(stack: LiveStack) -> None:
    expr = 'sum(llm_requests_total{job="gateway",model="sim-fast",status="success"})'
    before = promapi.scalar(expr)
    assert before is not None, "llm_requests_total is not in Prometheus at all"
    response = httpx.post(f"{live.url('gateway')}/v1/chat/completions", json=chat_body("sim-fast", "u-up"),
                          timeout=30)
    assert response.status_code == 200, response.text
    live.eventually(lambda: (promapi.scalar(expr) or 0) >= before + 1, 15, "the request to show in Prometheus")
    tokens = promapi.query('llm_tokens_total{job="gateway",model="sim-fast"}')
    assert {s.labels["token_type"] for s in tokens} == {"input", "output"}
    cost = promapi.scalar('sum(llm_cost_usd_total{job="gateway",model="sim-fast",department="engineering"})')
    assert cost and cost > 0


def test_make_up_twice_is_harmless_and_status_is_healthy(stack: LiveStack) -> None:
    pids = {s.name: s.pid for s in control.status(None, stack.run)}
    again = subprocess.run(["make", "--no-print-directory", "up"], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    after = {s.name: s.pid for s in control.status(None, stack.run)}
    assert after == pids, "a second `make up` restarted services"
    status = subprocess.run([sys.executable, "-m", "stack.runner", "status"], capture_output=True, text=True,
                            timeout=30, env={**os.environ, "COLUMNS": "200"})
    assert status.returncode == 0, status.stdout
    for service in topology.load().services.values():
        assert service.name in status.stdout and service.url in status.stdout
    assert status.stdout.count("healthy") >= len(SCRAPED_JOBS)


def test_make_up_starts_the_trace_store_healthy_and_empty_of_errors(stack: LiveStack) -> None:
    statuses = {s.name: s for s in control.status(None, stack.run)}
    store = topology.load().services["tracestore"]
    assert statuses["tracestore"].healthy and statuses["tracestore"].pid, "`make up` starts the trace store"
    health = httpx.get(store.url + store.health, timeout=5).json()
    assert health["status"] == "ok" and health["capacity"] > 0
    listing = httpx.get(f"{store.url}/api/traces", params={"limit": 1}, timeout=5)
    assert listing.status_code == 200 and "stored_spans" in listing.json()


def test_make_up_starts_jupyterlab_on_the_labs_behind_a_token(stack: LiveStack) -> None:
    jupyter = topology.load()["jupyter"]
    login = next(line for line in stack.up_output.splitlines() if "Open the labs:" in line)
    token = login.rsplit("token=", 1)[1].strip()
    listing = httpx.get(f"{jupyter.url}/api/contents/labs", params={"token": token}, timeout=10)
    assert listing.status_code == 200, listing.text
    assert {item["name"] for item in listing.json()["content"]} >= {"v1_logging_cost"}
    assert httpx.get(f"{jupyter.url}/api/contents/labs", timeout=10).status_code == 403, "no token, no notebooks"
