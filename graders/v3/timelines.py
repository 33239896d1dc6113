"""Lab V3: timelines of the gateway's series (each a `World` of stack/prometheus/world.py, the library the stack's own
promtool tests use too) replayed through alert rules by the real `promtool test rules`.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import yaml

from stack.profiles import Duration
from stack.prometheus.world import World
from stack.runner.binaries import find as find_binary

STEP = Duration(1)  # the classroom profile scrapes and evaluates every second; so do the timelines
PROMTOOL_TIMEOUT_SECONDS = 25
EPISODE_LABELS = ("alertname", "severity", "model", "job", "requested_model", "served_model", "department")  # what
# tells one alert of a rule from another


class TimelineError(RuntimeError):
    """promtool could not run the timelines (not the student's fault unless the rules are broken)."""


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
    coarse = sorted(key for key, world in worlds.items() if world.interval != STEP)
    if coarse:
        raise TimelineError(f"timelines {coarse} are not sampled every {STEP}")
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
