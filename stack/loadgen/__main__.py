"""`python -m stack.loadgen`: synthetic traffic to the course gateway for a bounded time, with a summary.

Exit status: 0 the run finished and no request failed; 1 it finished but some requests failed (the summary
lists why); 2 it did not run (a bad argument, a host that is not this machine, the stack is down, the UI port
is busy); 130 it was interrupted with Ctrl+C (the summary and reports cover the part that ran).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from stack.loadgen import report
from stack.loadgen.run import (DEFAULT_DURATION_SECONDS, DEFAULT_UI_DURATION_SECONDS, DEFAULT_USERS,
                               MAX_DURATION_SECONDS, LoadError, LoadResult, LoadSettings, parse_duration, preflight,
                               run, ui_service, validate)
from stack.loadgen.target import TargetError
from stack.loadgen.workload import Mix

console = Console(width=None if sys.stdout.isatty() else 120, highlight=False)
errors = Console(stderr=True, highlight=False, soft_wrap=True)


def _wait(text: str) -> tuple[float, float]:
    low, _, high = text.partition(":")
    try:
        values = (float(low), float(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not MIN:MAX seconds (e.g. 1:3) or one number") from None
    return values


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except LoadError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m stack.loadgen",
        description="Send seeded, weighted, synthetic traffic (marked synthetic=true) to the gateway with locust, "
                    "for a bounded time, then print a summary and write CSV and HTML reports.",
        epilog=f"Examples: make load · make load USERS=50 DURATION=2m · make load UI=1. "
               f"Hard maximum run time: {MAX_DURATION_SECONDS} s.")
    p.add_argument("-u", "--users", type=int, default=DEFAULT_USERS,
                   help=f"simulated client applications running at once (default {DEFAULT_USERS})")
    p.add_argument("-r", "--spawn-rate", type=float, default=None,
                   help="users started per second (default: all of them within about 2 s)")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, default=None,
                      help="requests/s for the whole run, shared by the users (default: use --wait)")
    pace.add_argument("--wait", type=_wait, default=(1.0, 3.0), metavar="MIN:MAX",
                      help="seconds each user waits between requests (default 1:3; 0 for no wait)")
    p.add_argument("-d", "--duration", type=_duration, default=None,
                   help=f"run time: seconds or e.g. 90s, 5m (default {DEFAULT_DURATION_SECONDS} s; with --ui, how "
                        f"long the UI stays up, default {DEFAULT_UI_DURATION_SECONDS} s; at most "
                        f"{MAX_DURATION_SECONDS} s)")
    p.add_argument("--seed", type=int, default=Mix.seed, help=f"seed of the traffic mix (default {Mix.seed})")
    p.add_argument("--workflow-share", type=float, default=Mix.workflow_share,
                   help=f"share of requests that are agent workflows (default {Mix.workflow_share:g})")
    p.add_argument("--host", default=None,
                   help="gateway URL (default: from stack/topology.yaml); only 127.0.0.1/::1/localhost accepted")
    p.add_argument("--ui", action="store_true",
                   help="serve the locust web UI on 127.0.0.1 (port from stack/topology.yaml) instead of "
                        "running headless; start and stop the test there")
    p.add_argument("--out", type=Path, default=None, help="report folder (default build/load)")
    return p


def _shown(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def _mean_seconds(result: LoadResult) -> float:
    assert result.report is not None
    return (result.report.total.average_ms or 0) / 1000


def _print_result(result: LoadResult) -> None:
    assert result.report is not None
    title = (f"{result.settings.users} users · {result.elapsed_seconds:.0f} s · seed {result.settings.seed} · "
             f"{escape(result.url)}")
    console.print(report.table(result.report, title))
    console.print(report.mix_summary(result.report))
    if result.report.total.requests == 0:
        console.print("[yellow]no requests were sent[/]"
                      + (" (no test was started in the web UI)" if result.settings.ui else ""))
    for failure in result.report.failures[:5]:
        console.print(f"[red]{failure.occurrences}× {escape(failure.name)}[/]: {escape(failure.message)}")
    rate, reached = result.settings.rate, result.report.total.requests_per_second
    if rate and result.report.total.requests and reached < 0.7 * rate:
        console.print(f"[yellow]reached {reached:.1f} of the {rate:g} req/s asked for[/]: each user has one request "
                      f"under way at a time, so --users must be at least the rate × the mean latency "
                      f"({rate:g} × {_mean_seconds(result):.2f} s here); add users")
    if result.stopped_early:
        console.print("[yellow]stopped before the end of the run time[/]")
    console.print(f"Report: [bold]{_shown(result.html)}[/] · CSV: {_shown(result.csv_prefix)}_stats.csv "
                  f"(and _stats_history, _failures, _exceptions) · locust log: {_shown(result.log)}")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = LoadSettings(users=args.users, spawn_rate=args.spawn_rate, rate=args.rate, wait=args.wait,
                            duration=args.duration, seed=args.seed, workflow_share=args.workflow_share,
                            host=args.host, ui=args.ui, **({"out": args.out} if args.out else {}))
    pace = f"{settings.rate:g} req/s in total" if settings.rate else \
        f"{settings.wait[0]:g}–{settings.wait[1]:g} s between requests per user"
    try:
        preflight(validate(settings), settings.ui)  # run() checks again; this only keeps errors before the header
        if settings.ui:
            service = ui_service()
            console.print(f"locust web UI: [bold]{service.url}[/] (target {escape(settings.target)}); it stops after "
                          f"{settings.seconds:.0f} s or Ctrl+C")
            with console.status("web UI running…") as status:
                result = run(settings, progress=lambda m: status.update(f"web UI {service.url} · {m}"))
        else:
            console.print(f"{settings.users} users, {pace}, seed {settings.seed}, for {settings.seconds:.0f} s "
                          f"→ {escape(settings.target)}")
            with console.status("starting locust…") as status:
                result = run(settings, progress=lambda m: status.update(f"load running: {m}"))
    except (LoadError, TargetError) as error:
        errors.print(f"[red]error:[/] {escape(str(error))}")
        return 2
    except KeyboardInterrupt:  # before locust started; once it runs, run() handles Ctrl+C
        errors.print("interrupted")
        return 130
    _print_result(result)
    if result.interrupted:
        return 130
    return 0 if result.exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
