"""Alert storm: every model fails at once, and the same alerts go through the tuned and a naive Alertmanager.

The stack's Alertmanager (stack/alertmanager/config.py) groups by alertname and severity and lets a critical alert
inhibit its warning twin. For the comparison the scenario starts a second, naive Alertmanager on a free loopback
port: one group per alert (`group_by: ['...']`), no inhibition, a short repeat_interval. Prometheus only knows the
stack's Alertmanager, so while the scenario runs it relays Prometheus' firing storm alerts (GET /api/v1/alerts) to
the naive one (POST /api/v2/alerts) every second, the way Prometheus itself re-sends them. The naive one notifies
receiver channels naive-pager and naive-chat; `counts()` puts both sides next to each other.

params: faults and traffic as for provider_fault; naive_alertmanager: its group_wait, group_interval,
repeat_interval. The naive process runs under `timeout`, so it cannot outlive the scenario by much.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import yaml

from stack import promapi, topology
from stack.scenarios import observe
from stack.profiles import Duration, ProfileError
from stack.runner import binaries
from stack.scenarios.kinds import provider_fault
from stack.scenarios.kinds.base import Context, ScenarioFailure, check_keys, validate_traffic
from stack.scenarios.model import Scenario

NAIVE_CHANNELS = {"critical": "naive-pager", "default": "naive-chat"}
TUNED_CHANNELS = ("pager", "chat")
NAIVE_TIMING_KEYS = ("group_wait", "group_interval", "repeat_interval")
RELAY_ENDS_AFTER_SECONDS = 15  # a relayed alert resolves this long after Prometheus stops reporting it firing
READY_TIMEOUT_SECONDS = 20
EXTRA_LIFETIME_SECONDS = 60  # the naive Alertmanager's hard limit: the scenario's duration plus this


def _folder(run: Path) -> Path:
    return run / "scenarios" / "naive-alertmanager"


def _pid_file(run: Path) -> Path:
    return _folder(run) / "pid"


def validate(params: Mapping[str, Any]) -> None:
    check_keys(params, {"faults", "traffic", "naive_alertmanager"}, {"faults", "traffic", "naive_alertmanager"})
    provider_fault.validate_faults(params["faults"])
    validate_traffic(params, required=True)
    naive = params["naive_alertmanager"]
    if not isinstance(naive, dict) or set(naive) != set(NAIVE_TIMING_KEYS):
        raise ValueError(f"naive_alertmanager must set exactly {', '.join(NAIVE_TIMING_KEYS)}")
    try:
        for key in NAIVE_TIMING_KEYS:
            Duration.parse(naive[key])
    except ProfileError as error:
        raise ValueError(f"naive_alertmanager: {error}") from None


def naive_config(params: Mapping[str, Any]) -> dict:
    """The naive Alertmanager's config: what a first attempt often looks like."""
    timing = {key: str(Duration.parse(params["naive_alertmanager"][key])) for key in NAIVE_TIMING_KEYS}
    receiver = topology.load()["receiver"].url
    return {
        "route": {
            "receiver": NAIVE_CHANNELS["default"],
            "group_by": ["..."],  # every alert its own group: one notification per alert
            **timing,
            "routes": [{"receiver": NAIVE_CHANNELS["critical"], "matchers": ['severity="critical"']}],
        },
        # no inhibit_rules: the warning twin of every critical alert notifies too
        "receivers": [
            {"name": name, "webhook_configs": [{"url": f"{receiver}/hook/{name}", "send_resolved": True}]}
            for name in NAIVE_CHANNELS.values()
        ],
    }


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def start_naive(run: Path, params: Mapping[str, Any], lifetime_seconds: float) -> tuple[int, str]:
    """Start the naive Alertmanager; returns its pid and URL once it is ready."""
    stop_naive(run)
    folder = _folder(run)
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "alertmanager.yml"
    config.write_text("# Written by stack/scenarios/kinds/alert_storm.py for the alert-storm scenario (naive on "
                      "purpose).\n" + yaml.safe_dump(naive_config(params), sort_keys=False))
    host = topology.load().host
    port = _free_port(host)
    argv = [binaries.find("alertmanager"), f"--config.file={config}", f"--storage.path={folder / 'data'}",
            f"--web.listen-address={host}:{port}", "--cluster.listen-address=", "--log.level=warn"]
    limiter = shutil.which("timeout")
    if limiter:
        argv = [limiter, "--kill-after=5", str(int(lifetime_seconds)), *argv]
    with (folder / "alertmanager.log").open("ab") as log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    _pid_file(run).write_text(f"{process.pid} {port}")
    address = f"http://{host}:{port}"
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ScenarioFailure(f"the naive Alertmanager exited at start-up; see {folder / 'alertmanager.log'}")
        try:
            if httpx.get(f"{address}/-/ready", timeout=1).status_code == 200:
                return process.pid, address
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_naive(run)
    raise ScenarioFailure(f"the naive Alertmanager was not ready within {READY_TIMEOUT_SECONDS}s; see "
                          f"{folder / 'alertmanager.log'}")


def stop_naive(run: Path) -> bool:
    """Stop the naive Alertmanager this run folder started, if any. True if one was running."""
    try:
        pid = int(_pid_file(run).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    _pid_file(run).unlink(missing_ok=True)
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return False
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)
            if finished:
                break
        except ChildProcessError:  # not our child (started by another process): poll for it instead
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
        time.sleep(0.1)
    else:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return True


def storm_alertnames(scenario: Scenario) -> set[str]:
    return {matcher.alertname for matcher in scenario.expected_alerts}


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def relay(alertnames: set[str], naive_url: str) -> int:
    """Send Prometheus' firing storm alerts to the naive Alertmanager; returns how many."""
    firing = [a for a in promapi.alerts("firing") if a["labels"].get("alertname") in alertnames]
    if not firing:
        return 0
    ends = _iso(datetime.now(timezone.utc) + timedelta(seconds=RELAY_ENDS_AFTER_SECONDS))
    prometheus = topology.load().services["prometheus"].url
    body = [{"labels": a["labels"], "annotations": a.get("annotations", {}), "startsAt": a["activeAt"],
             "endsAt": ends, "generatorURL": f"{prometheus}/classic/alerts"} for a in firing]
    httpx.post(f"{naive_url}/api/v2/alerts", json=body, timeout=5).raise_for_status()
    return len(firing)


def start(ctx: Context) -> None:
    pid, address = start_naive(ctx.run, ctx.params, ctx.duration + EXTRA_LIFETIME_SECONDS)
    ctx.state["naive_url"] = address
    ctx.note(f"naive Alertmanager up at {address} (pid {pid}): no grouping, no inhibition, repeat "
             f"{ctx.params['naive_alertmanager']['repeat_interval']}")
    provider_fault.start(ctx)


def tick(ctx: Context) -> None:
    address = ctx.state.get("naive_url")
    if not address:
        return
    try:
        relayed = relay(storm_alertnames(ctx.scenario), address)
    except (httpx.HTTPError, promapi.PrometheusError):
        return  # the next tick tries again
    if relayed and not ctx.state.get("relaying"):
        ctx.state["relaying"] = True
        ctx.note(f"relaying Prometheus' firing storm alerts to the naive Alertmanager ({relayed} so far)")


def heal(ctx: Context) -> None:
    try:
        c = counts(ctx.scenario, ctx.started_at, observe.notifications_since(ctx.started_at), promapi.alerts())
        ctx.note(f"at the heal: {c.alerts_firing} storm alerts firing; tuned Alertmanager sent "
                 f"{c.tuned_notifications} notifications, the naive one {c.naive_notifications}")
    except (httpx.HTTPError, promapi.PrometheusError, KeyError, ValueError):
        pass
    # No recovery traffic: healthy calls to every model, sim-reasoning included, would cost enough to trip the
    # cost alerts. The storm's alerts resolve as the failures leave the rate window.
    ctx.stop_traffic()
    provider_fault.heal(ctx)
    if stop_naive(ctx.run):
        ctx.note("naive Alertmanager stopped")
    ctx.state.pop("naive_url", None)


def reset(run: Path) -> None:
    provider_fault.reset(run)
    stop_naive(run)


@dataclass(frozen=True)
class StormCounts:
    """N alerts firing in Prometheus; the notifications each Alertmanager sent for them since `since`."""

    alerts_firing: int
    tuned_notifications: int
    naive_notifications: int
    tuned_alerts_carried: int
    naive_alerts_carried: int


def counts(scenario: Scenario, since: float, notifications: list[dict], alerts: list[dict],
           until: float | None = None) -> StormCounts:
    """`notifications`: the receiver's list; `alerts`: Prometheus' /api/v1/alerts. Notifications after `until` (the
    heal, when the naive Alertmanager stops) are left out so both sides are counted over the same time."""
    names = storm_alertnames(scenario)
    firing = [a for a in alerts if a["state"] == "firing" and a["labels"].get("alertname") in names]
    recent = [n for n in notifications if n["received_at"] >= since and n["status"] == "firing"
              and (until is None or n["received_at"] <= until)]
    tuned = [n for n in recent if n["channel"] in TUNED_CHANNELS and names & set(n["alertnames"])]
    naive = [n for n in recent if n["channel"] in NAIVE_CHANNELS.values()]
    return StormCounts(len(firing), len(tuned), len(naive), sum(n["alert_count"] for n in tuned),
                       sum(n["alert_count"] for n in naive))
