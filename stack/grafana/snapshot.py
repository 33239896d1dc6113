"""Render each dashboard to a PNG with matplotlib, from the live Prometheus: dashboards for students without
Docker (Grafana only runs in docker-compose) and the pictures in docs/dashboards.md.

    python -m stack.grafana.snapshot                 # every dashboard -> docs/img/dashboards/<uid>.png
    python -m stack.grafana.snapshot --demo 240      # first 4 minutes of scripted traffic and faults
    python -m stack.grafana.snapshot --out /tmp/snaps stack/grafana/dashboards/slo/llmobs-slo.json

Panels are laid out on Grafana's 24-column grid with their titles and units; queries run like Grafana runs them
(variables at their default selection, $__rate_interval and friends computed per panel). Timeseries panels are
drawn over the dashboard's time range, shortened to the time Prometheus has been running.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from stack.grafana import variables as gv
from stack.grafana.drawing import draw_dashboard
from stack.grafana.live import LiveContext, resolve_variables
from stack.grafana.panel_data import PanelData
from stack.grafana.panels import dashboard_time_range, load
from stack.grafana.provisioning import DASHBOARDS_DIR, dashboard_files, scrape_interval
from stack.grafana.seed import demo_traffic, seed_load
from stack.paths import DOCS_DIR, REPO_ROOT
from stack.promapi import Prometheus, PrometheusUnreachable, QueryError

OUT_DIR = DOCS_DIR / "img" / "dashboards"


@dataclass(frozen=True)
class Snapshot:
    """One dashboard drawn: where, which dashboard, how many data panels, which of them had no data."""
    path: Path
    dashboard: str
    panels: int                  # data panels drawn
    empty_panels: tuple[str, ...]  # titles of those that showed "No data"


# ---------------------------------------------------------------- whole dashboards


def prometheus_started(prometheus: Prometheus) -> float | None:
    """When Prometheus started (unix seconds): there is no data before."""
    try:
        return prometheus.scalar('min(process_start_time_seconds{job="prometheus"})')
    except QueryError:
        return None


def render(source: Path | str | Mapping, out: Path, *, prometheus: Prometheus | None = None,
           now: float | None = None, range_seconds: float | None = None) -> Snapshot:
    """Draw one dashboard to `out` (a PNG); say which panels had no data."""
    dashboard, name = load(source)
    client = prometheus or Prometheus()
    try:
        now = time.time() if now is None else now
        start, end = dashboard_time_range(dashboard, now)
        if range_seconds:
            start = end - range_seconds
        started = prometheus_started(client)
        if started and started + 60 > start:
            start = min(started + 5, end - 60)
        scrape = gv.parse_duration(scrape_interval())
        context = LiveContext(client, start, end, scrape)
        selections = resolve_variables(dashboard, context)
        data = PanelData(client, start, end, scrape, selections)
        drawn, empty = draw_dashboard(dashboard, data, out)
    finally:
        if prometheus is None:
            client.close()
    return Snapshot(out, name, drawn, tuple(empty))


def output_name(source: Path | Mapping) -> str:
    """The PNG's file name: the dashboard's uid."""
    dashboard, _ = load(source)
    return f"{dashboard.get('uid') or Path(str(source)).stem}.png"


def render_all(paths: list[Path] | None = None, out_dir: Path = OUT_DIR, *,
               range_seconds: float | None = None) -> list[Snapshot]:
    """Draw every dashboard (or the given ones) to `out_dir`/<uid>.png with one Prometheus connection."""
    files = paths if paths is not None else dashboard_files()
    prometheus = Prometheus()
    now = time.time()
    try:
        return [render(path, out_dir / output_name(path), prometheus=prometheus, now=now,
                       range_seconds=range_seconds) for path in files]
    finally:
        prometheus.close()


# ---------------------------------------------------------------- command line (`make snapshot`)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.grafana.snapshot", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path,
                        help=f"dashboard JSON files or folders (default: {DASHBOARDS_DIR.relative_to(REPO_ROOT)})")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="folder for the PNGs (default: %(default)s)")
    parser.add_argument("--range", dest="range_", default=None,
                        help="time range to draw, e.g. 15m (default: each dashboard's own, cut to Prometheus's uptime)")
    parser.add_argument("--demo", type=float, default=0, metavar="SECONDS",
                        help="first send SECONDS of scripted traffic with faults (for the docs pictures)")
    parser.add_argument("--seed", action="store_true", help="first send a few seconds of seeded traffic")
    args = parser.parse_args(argv)
    files: list[Path] = []
    for path in args.paths or [DASHBOARDS_DIR]:
        files += dashboard_files(path) if path.is_dir() else [path]
    try:
        if args.demo:
            print(f"demo traffic for {args.demo:.0f}s ...")
            demo_traffic(args.demo)
            seed_load(2)
        elif args.seed:
            seed_load()
        written = render_all(files, args.out, range_seconds=gv.parse_duration(args.range_) if args.range_ else None)
    except PrometheusUnreachable as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for snapshot in written:
        path = snapshot.path
        try:
            shown = path.resolve().relative_to(REPO_ROOT)
        except ValueError:
            shown = path
        print(f"wrote {shown} ({path.stat().st_size // 1024} KiB, {snapshot.panels} panels)")
        if snapshot.empty_panels:
            print(f"  no data: {', '.join(snapshot.empty_panels)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
