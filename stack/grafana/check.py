"""Prove a Grafana dashboard without Grafana: its structure, its datasource, and every panel query against the
live Prometheus.

    from stack.grafana.check import check_dashboard
    problems = check_dashboard("my-dashboard.json")            # structure + live queries
    problems = check_dashboard(data, live=False)                # structure only (no stack needed)
    for p in problems: print(p)                                 # "LLM operations / panel 'Error ratio': ..."

Each `Problem` (stack/grafana/problems.py) names the dashboard, the panel title (None for dashboard-wide
problems), a `kind` and a message written for the person who has to fix it. An empty list means the dashboard
passed. What is checked: stack/grafana/structure.py (no Prometheus needed) and stack/grafana/live.py (every query
against Prometheus, through stack.promapi); the dashboard JSON is read by stack/grafana/panels.py.

`python -m stack.grafana.check` (what `make dashboards-check` runs) drives a few seconds of seeded traffic
through the gateway first (stack/grafana/seed.py), then checks every dashboard under stack/grafana/dashboards/.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from stack.grafana.live import check_live
from stack.grafana.panels import all_panels, is_data_panel, load
from stack.grafana.problems import STRUCTURE, UNREACHABLE, Problem
from stack.grafana.provisioning import DASHBOARDS_DIR, dashboard_files
from stack.grafana.seed import seed_load
from stack.grafana.structure import check_structure
from stack.paths import REPO_ROOT
from stack.promapi import Prometheus, PrometheusError, PrometheusUnreachable


def check_dashboard(dashboard: Path | str | Mapping, *, live: bool = True, datasource_uid: str | None = None,
                    prometheus: Prometheus | str | None = None, now: float | None = None) -> list[Problem]:
    """Every problem of one dashboard (a path, a JSON string or a parsed dict); [] means it passed.

    live=False checks only what needs no Prometheus (and then also reports PromQL syntax errors found by the
    built-in parser). live=True also runs every query against `prometheus` (a Prometheus object or URL; by
    default the running stack's, from stack/topology.yaml and LLMOBS_PORT_OFFSET).
    """
    try:
        data, name = load(dashboard)
    except (OSError, ValueError) as error:
        return [Problem(str(dashboard), None, STRUCTURE, f"cannot read the dashboard: {error}")]
    problems = check_structure(data, name, expected_uid=datasource_uid, parse_errors=not live)
    if not live or not isinstance(data, Mapping) or not isinstance(data.get("panels"), list):
        return problems
    client = prometheus if isinstance(prometheus, Prometheus) else Prometheus(prometheus)
    try:
        problems += check_live(data, name, prometheus=client, now=now)
    except PrometheusUnreachable as error:
        problems.append(Problem(name, None, UNREACHABLE, str(error)))
    finally:
        if client is not prometheus:
            client.close()
    return problems


def check_dashboards(paths: Iterable[Path] | None = None, *, live: bool = True,
                     prometheus: Prometheus | str | None = None) -> list[Problem]:
    """check_dashboard for every dashboard JSON under stack/grafana/dashboards (or the given paths)."""
    files = list(paths) if paths is not None else dashboard_files()
    client = prometheus if isinstance(prometheus, Prometheus) or not live else Prometheus(prometheus)
    problems: list[Problem] = []
    now = time.time()
    try:
        for path in files:
            problems += check_dashboard(path, live=live, prometheus=client, now=now)
    finally:
        if isinstance(client, Prometheus) and client is not prometheus:
            client.close()
    return problems


# ---------------------------------------------------------------- command line (`make dashboards-check`)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stack.grafana.check",
        description="Check Grafana dashboards: structure, datasource uid, and every query against the live "
                    "Prometheus (`make up` first).")
    parser.add_argument("paths", nargs="*", type=Path,
                        help=f"dashboard JSON files or folders (default: {DASHBOARDS_DIR.relative_to(REPO_ROOT)})")
    parser.add_argument("--offline", action="store_true", help="structure only; no Prometheus needed")
    parser.add_argument("--no-seed", action="store_true", help="do not send seeded traffic through the gateway first")
    parser.add_argument("--seed-seconds", type=float, default=None, help="seconds of seeded traffic")
    args = parser.parse_args(argv)
    files: list[Path] = []
    for path in args.paths or [DASHBOARDS_DIR]:
        files += dashboard_files(path) if path.is_dir() else [path]
    if not files:
        print("no dashboard JSON found", file=sys.stderr)
        return 1
    if not args.offline and not args.no_seed:
        try:
            statuses = seed_load(args.seed_seconds)
        except PrometheusError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"seeded traffic: {sum(statuses.values())} requests {dict(sorted(statuses.items()))}")
    problems = check_dashboards(files, live=not args.offline)
    if any(p.kind == UNREACHABLE for p in problems):
        print(f"error: {next(p for p in problems if p.kind == UNREACHABLE).message}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem)
    mode = "structure only" if args.offline else "structure and live queries"
    if problems:
        print(f"\n{len(problems)} problem(s) in {len(files)} dashboard(s) ({mode})", file=sys.stderr)
        return 1
    panels = sum(1 for f in files for p in all_panels(load(f)[0].get("panels") or []) if is_data_panel(p))
    print(f"{len(files)} dashboards, {panels} panels: all OK ({mode})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
