"""Lab V2, exercise 2: the student's scrape job (valid for promtool, and the one the running Prometheus uses for the
lab exporter) and their exporter (serves the registry it is given, survives a re-run, and Prometheus scrapes it).
These checks need the running stack: Prometheus and the lab target of stack/topology.yaml."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client import CollectorRegistry, Counter

from graders.labcheck import expect, expect_equal, fail, not_attempted
from graders.v2.promql import PromQuery
from stack import promapi, topology
from stack.runner.binaries import find as find_binary

SCRAPE_WAIT_SECONDS = 20


def _one_job(job: Any) -> dict:
    if isinstance(job, str):
        try:
            job = yaml.safe_load(job)
        except yaml.YAMLError as error:
            fail("SCRAPE_JOB is not valid YAML", "a YAML mapping", str(error).splitlines()[0], "check the indentation")
    if isinstance(job, list) and len(job) == 1:
        job = job[0]
    expect(isinstance(job, dict) and "job_name" in job, "SCRAPE_JOB is not one scrape job",
           "a mapping with job_name, metrics_path and static_configs (a list of {targets: [...]})")
    return job


def check_scrape_job(scrape_job: Any, hidden: bool = False) -> str:
    """promtool accepts Prometheus' own config with the student's job in it, and the job is the lab job Prometheus
    runs. Returns the live job's targets, for the check cell's message."""
    lab = topology.load()["lab"]
    if scrape_job is None:
        not_attempted("set SCRAPE_JOB to your scrape job (exercise 2 (a))")
    job = _one_job(scrape_job)
    live = yaml.safe_load(promapi.Prometheus(timeout=10).config_yaml())
    merged = dict(live, scrape_configs=[j for j in live["scrape_configs"] if j["job_name"] != job["job_name"]] + [job])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "prometheus.yml"
        path.write_text(yaml.safe_dump(merged, sort_keys=False))
        promtool = subprocess.run([find_binary("promtool"), "check", "config", str(path)], capture_output=True,
                                  text=True, timeout=20)
    complaint = (promtool.stderr or promtool.stdout).strip().splitlines()
    expect(promtool.returncode == 0,
           f"promtool check config rejects Prometheus' config with your job: {complaint[-1] if complaint else '?'}",
           "static_configs is a list of mappings, each with a list of targets (host:port, no http://)")
    lab_job = next(j for j in live["scrape_configs"] if j["job_name"] == lab.name)
    expect_equal(job["job_name"], lab.name, "job_name", f"Prometheus scrapes the lab exporter in the job {lab.name!r}")
    targets = [t for group in job.get("static_configs") or [] for t in group.get("targets") or []]
    live_targets = [t for group in lab_job["static_configs"] for t in group["targets"]]
    expect_equal(targets, live_targets, "the job's targets",
                 f"the exporter listens on {lab.address}: use LAB.address (from stack/topology.yaml), host:port only")
    expect_equal(job.get("metrics_path", "/metrics"), lab_job["metrics_path"], "metrics_path", "LAB.metrics")
    if hidden:
        expect_equal(job.get("scheme", "http"), "http", "scheme", "the exporter speaks plain HTTP on 127.0.0.1")
        expect(not job.get("relabel_configs") and not job.get("metric_relabel_configs"),
               "the job relabels series",
               "no relabelling needed: the job and instance labels are what the queries use")
    return ", ".join(live_targets)


def check_exporter_scraped(start_exporter: Callable[[CollectorRegistry], Any], prom_query: PromQuery,
                           hidden: bool = False) -> None:
    """start_exporter serves the registry it is given, survives a re-run, and Prometheus scrapes it. A registry of
    this check's own, so exercise 1 does not matter here; its value differs between kernels, so a stale exporter
    cannot pass."""
    lab = topology.load()["lab"]
    probe = CollectorRegistry()
    probe_value = float(os.getpid() % 997 + 1)
    Counter("lab_v2_probe", "Written by the exercise 2 check.", registry=probe).inc(probe_value)
    for attempt in ("first", "second"):
        try:
            start_exporter(probe)
        except NotImplementedError:
            not_attempted("implement start_exporter (exercise 2 (b))")
        except Exception as error:  # noqa: BLE001 - the message is for the student
            fail(f"start_exporter raised on its {attempt} call", "the server, also when called again",
                 f"{type(error).__name__}: {error}"[:160], "remember the server in a global and reuse it on a re-run")
    try:
        page = httpx.get(lab.url + lab.metrics, timeout=5).text
    except httpx.HTTPError as error:
        fail(f"nothing answers at {lab.url}{lab.metrics}", "your exporter", repr(error),
             "start_http_server(LAB.port, ...)")
    expect("lab_v2_probe_total" in page, f"{lab.url}{lab.metrics} does not serve the registry passed to start_exporter",
           "serve the `registry` argument (start_http_server(..., registry=registry) or server.set_app(...))")
    deadline, scraped = time.monotonic() + SCRAPE_WAIT_SECONDS, []
    while time.monotonic() < deadline:
        scraped = prom_query(f'lab_v2_probe_total{{job="{lab.name}"}}')
        if scraped and scraped[0][1] == probe_value:
            break
        time.sleep(0.2)
    if not (scraped and scraped[0][1] == probe_value):
        targets = promapi.Prometheus(timeout=10).targets()
        state = [(t["health"], t["lastError"]) for t in targets if t["labels"]["job"] == lab.name]
        fail(f'Prometheus did not scrape your exporter (job="{lab.name}") within {SCRAPE_WAIT_SECONDS} s',
             probe_value, scraped[0][1] if scraped else state, f"Prometheus scrapes {lab.url}{lab.metrics}")
    if hidden:
        expect_equal(prom_query(f'up{{job="{lab.name}"}}')[0][1], 1.0, f'up{{job="{lab.name}"}}')
