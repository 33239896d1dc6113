"""Lab V3: timelines of the gateway's series (built with stack/prometheus/series.py) replayed through alert rules by
the real `promtool test rules`.

A timeline is what Prometheus would have scraped, second by second: request counters per model and status, latency
histograms, cost counters, the budget gauge and `up` of every target. A scrape gap is what a failed scrape leaves:
`up` is 0 and every series of that target gets a staleness marker.

`replay` runs every timeline through a rules file in one promtool process. Each timeline is a unit-test group whose
only check asks, at the timeline's end, for the first and last evaluation at which each alert was firing and how
many evaluations it fired (from the ALERTS series the rule manager writes). The check expects nothing, so promtool
prints what it got; those lines are parsed into `Episode`s. The rule evaluation is promtool's own: `for`, staleness
and the rest behave exactly as in Prometheus.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import yaml

from stack import topology
from stack.gateway.metrics import LATENCY_BUCKETS_SECONDS
from stack.profiles import Duration
from stack.prometheus.series import InputSeries, Phase, counter, gauge, histogram, number, selector
from stack.prometheus.scrape import SCRAPED_SERVICES, lab_jobs
from stack.runner.binaries import find as find_binary

STEP = Duration(1)  # the classroom profile scrapes and evaluates every second; so do the timelines
PROMTOOL_TIMEOUT_SECONDS = 25
EPISODE_LABELS = ("alertname", "severity", "model", "job")  # what tells one alert of a rule from another


def target(job: str, instance: str | None = None) -> dict[str, str]:
    """The job and instance labels Prometheus gives a target's series (base ports: they never match on them)."""
    with topology.base_ports():
        address = topology.load()[job].address if job in {*SCRAPED_SERVICES, *lab_jobs()} else f"{job}:9090"
    return {"job": job, "instance": instance or address}


GATEWAY = target("gateway")


class TimelineError(RuntimeError):
    """promtool could not run the timelines (not the student's fault unless the rules are broken)."""


@dataclass
class World:
    """The series of one timeline, `seconds` long (samples at 0, 1, ..., seconds)."""

    seconds: int
    series: list[InputSeries] = field(default_factory=list)
    gaps: list[tuple[str, int, int]] = field(default_factory=list)  # (job, first missed scrape, how many)
    ends: dict[str, int] = field(default_factory=dict)              # series -> last sample, then a staleness marker

    def _phases(self, phases: Sequence[tuple[int, float]]) -> list[Phase]:
        total = sum(seconds for seconds, _ in phases)
        if total != self.seconds:
            raise TimelineError(f"phases last {total}s, the timeline {self.seconds}s")
        return [Phase(Duration(seconds), value) for seconds, value in phases]

    def requests(self, model: str, phases: Sequence[tuple[int, float, float]], where: Mapping[str, str] = GATEWAY,
                 name: str = "llm_requests_total") -> World:
        """Requests of one model from phases of (seconds, requests/s, share that fails)."""
        for status in ("success", "error"):
            per_second = [(s, rate * (share if status == "error" else 1 - share)) for s, rate, share in phases]
            self.series.append(counter(name, {**where, "model": model, "status": status}, STEP,
                                       self._phases(per_second)))
        return self

    def idle(self, model: str, where: Mapping[str, str] = GATEWAY) -> World:
        """An idle model: both children exported at 0 (the gateway pre-initialises them)."""
        for status in ("success", "error"):
            self.series.append(gauge("llm_requests_total", {**where, "model": model, "status": status}, STEP,
                                     self._phases([(self.seconds, 0)])))
        return self

    def latency(self, model: str, rate: float, phases: Sequence[tuple[int, Mapping[float, float]]],
                where: Mapping[str, str] = GATEWAY) -> World:
        """llm_request_duration_seconds of one model: `rate` requests/s spread over buckets by share, per phase."""
        total = sum(seconds for seconds, _ in phases)
        if total != self.seconds:
            raise TimelineError(f"latency phases last {total}s, the timeline {self.seconds}s")
        per_second = [(Duration(seconds), {bound: share * rate for bound, share in shares.items()})
                      for seconds, shares in phases]
        self.series += histogram(STEP, "llm_request_duration_seconds", {**where, "model": model},
                                 LATENCY_BUCKETS_SECONDS, per_second)
        return self

    def cost(self, model: str, department: str, phases: Sequence[tuple[int, float]]) -> World:
        """llm_cost_usd_total of one model and department from phases of (seconds, USD per hour)."""
        self.series.append(counter("llm_cost_usd_total", {**GATEWAY, "model": model, "department": department},
                                   STEP, self._phases([(s, usd / 3600) for s, usd in phases])))
        return self

    def budget(self, usd_per_day: float) -> World:
        self.series.append(gauge("llm_daily_budget_usd", GATEWAY, STEP, self._phases([(self.seconds, usd_per_day)])))
        return self

    def up(self, down: Mapping[str, Sequence[tuple[int, int]]] = ()) -> World:
        """`up` of every scraped job (1) and of the lab exporter (0: no notebook runs); `down` maps a job to
        (first second, seconds) periods it fails its scrapes."""
        levels = {**{job: 1 for job in SCRAPED_SERVICES}, **{job: 0 for job in lab_jobs()}}
        for job, level in levels.items():
            values = [level] * (self.seconds + 1)
            for start, seconds in dict(down).get(job, ()):
                values[start:start + seconds] = [0] * len(values[start:start + seconds])
            self.series.append(_Explicit("up", target(job), tuple(float(v) for v in values)))
        return self

    def gap(self, job: str, start: int, seconds: int) -> World:
        """`job` fails its scrapes for `seconds` from `start`: `up` is 0 and its other series are stale then."""
        self.gaps.append((job, start, seconds))
        return self

    def end(self, name: str, at: int) -> World:
        """Series called `name` are exported until `at`, then vanish (a staleness marker, then nothing)."""
        self.ends[name] = at
        return self

    def input_series(self) -> list[dict[str, str]]:
        rendered = []
        for s in self.series:
            gaps = [(start, seconds) for job, start, seconds in self.gaps if s.labels.get("job") == job]
            end = self.ends.get(s.name)
            if not gaps and end is None:
                rendered.append(s.as_dict())
                continue
            values: list[str] = [number(v) for v in s.samples]
            for start, seconds in gaps:  # a failed scrape: `up` is 0, every other series of the target is stale
                missed = "0" if s.name == "up" else "stale"
                values[start:start + seconds] = [missed] * len(values[start:start + seconds])
            if end is not None:
                values = values[:end + 1] + ["stale"]
            rendered.append({"series": s.series, "values": " ".join(values)})
        return rendered


@dataclass(frozen=True)
class _Explicit:
    """A series written sample by sample (for `up` with outages)."""

    name: str
    labels: Mapping[str, str]
    samples: tuple[float, ...]

    @property
    def series(self) -> str:
        return selector(self.name, self.labels)

    def as_dict(self) -> dict[str, str]:
        return {"series": self.series, "values": " ".join(number(v) for v in self.samples)}


@dataclass(frozen=True)
class Episode:
    """One alert (alertname, severity and its model or job) in one timeline: the first and last evaluation at which
    it was firing, and at how many evaluations it fired (last - first + 1 when it never stopped in between)."""

    timeline: str
    labels: tuple[tuple[str, str], ...]
    first: float
    last: float
    count: float

    @property
    def alertname(self) -> str:
        return dict(self.labels).get("alertname", "")

    @property
    def severity(self) -> str:
        return dict(self.labels).get("severity", "")

    @property
    def subject(self) -> dict[str, str]:
        """The labels that say what the alert is about (model, job), without alertname and severity."""
        return {k: v for k, v in self.labels if k not in ("alertname", "severity")}

    @property
    def continuous(self) -> bool:
        return self.count >= self.last - self.first + 1

    def describe(self) -> str:
        subject = ",".join(f'{k}="{v}"' for k, v in self.subject.items())
        return f"{self.alertname} ({self.severity or 'no severity'}{', ' + subject if subject else ''})"


def _summary_expr(key: str, seconds: int) -> str:
    by = ", ".join(EPISODE_LABELS)
    firing = 'ALERTS{alertstate="firing"}'
    parts = {
        "first": f"min by ({by}) (min_over_time(timestamp({firing})[{seconds}s:{STEP}]))",
        "last": f"max by ({by}) (max_over_time(timestamp({firing})[{seconds}s:{STEP}]))",
        "count": f"max by ({by}) (count_over_time({firing}[{seconds}s]))",
    }
    stats = " or ".join(f'label_replace({expr}, "stat", "{stat}", "", "")' for stat, expr in parts.items())
    return f'label_replace({stats}, "timeline", "{key}", "", "")'


_SAMPLE = re.compile(r"\{([^{}]*)\} (\S+?)(?=, \{|$)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _parse(output: str) -> dict[str, list[Episode]]:
    stats: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, float]] = {}
    for line in output.splitlines():
        line = line.strip()
        if not line.startswith("got:"):
            continue
        for labels_text, value in _SAMPLE.findall(line[len("got:"):].strip()):
            labels = dict(_LABEL.findall(labels_text))
            timeline, stat = labels.pop("timeline", ""), labels.pop("stat", "")
            stats.setdefault((timeline, tuple(sorted(labels.items()))), {})[stat] = float(value)
    episodes: dict[str, list[Episode]] = {}
    for (timeline, labels), values in sorted(stats.items()):
        if {"first", "last", "count"} - set(values):
            raise TimelineError(f"could not read promtool's answer for {timeline}: {values}")
        episodes.setdefault(timeline, []).append(
            Episode(timeline, labels, values["first"], values["last"], values["count"]))
    return episodes


def _tests(worlds: Mapping[str, World]) -> list[dict]:
    return [{"name": key, "interval": str(STEP), "input_series": world.input_series(),
             "promql_expr_test": [{"expr": _summary_expr(key, world.seconds), "eval_time": f"{world.seconds}s",
                                   "exp_samples": []}]}
            for key, world in worlds.items()]


def _chunks(worlds: Mapping[str, World], count: int) -> list[dict[str, World]]:
    """Split the timelines into `count` parts of about the same length (promtool's work grows with the seconds)."""
    parts: list[dict[str, World]] = [{} for _ in range(max(1, min(count, len(worlds))))]
    for key, world in sorted(worlds.items(), key=lambda item: -item[1].seconds):
        min(parts, key=lambda part: sum(w.seconds for w in part.values()))[key] = world
    return [part for part in parts if part]


def replay(rules: Mapping, worlds: Mapping[str, World]) -> dict[str, list[Episode]]:
    """Replay each named timeline through `rules` (a rules-file dict) with promtool: timeline -> its episodes.
    Long batches are split over a few promtool processes running side by side (one per CPU, at most 4)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    parts = _chunks(worlds, min(cpus, 4) if sum(w.seconds for w in worlds.values()) > 300 else 1)
    with tempfile.TemporaryDirectory(prefix="v3-promtool-") as folder:
        Path(folder, "rules.yml").write_text(yaml.safe_dump(dict(rules), sort_keys=False))
        processes = []
        for index, part in enumerate(parts):
            name = f"tests-{index}.yml"
            Path(folder, name).write_text(yaml.safe_dump(
                {"rule_files": ["rules.yml"], "evaluation_interval": str(STEP), "tests": _tests(part)},
                sort_keys=False))
            processes.append(subprocess.Popen([find_binary("promtool"), "test", "rules", name], cwd=folder,
                                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        outputs, failed = [], False
        deadline = time.monotonic() + PROMTOOL_TIMEOUT_SECONDS
        try:
            for process in processes:
                output, _ = process.communicate(timeout=max(0.1, deadline - time.monotonic()))
                outputs.append(output)
                failed = failed or process.returncode != 0
        except subprocess.TimeoutExpired:
            raise TimelineError(f"promtool test rules took over {PROMTOOL_TIMEOUT_SECONDS}s") from None
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
    output = "\n".join(outputs)
    episodes = _parse(output)
    if failed and not episodes:
        lines = [line.strip() for line in output.splitlines() if line.strip() and "Unit Testing" not in line]
        raise TimelineError(f"promtool test rules failed: {' '.join(lines[:3])[:300]}")
    return {key: episodes.get(key, []) for key in worlds}
