"""`python -m stack.runner up|down|status|logs`: the embedded stack from the command line (make wraps it)."""

from __future__ import annotations

import argparse
import sys
import time

from rich.console import Console
from rich.table import Table

from stack.paths import run_dir
from stack.runner import binaries, control, processes
from stack import topology
from stack.runner.services import PROFILES

console = Console(width=None if sys.stdout.isatty() else 140)


def _table(statuses: list[control.ServiceStatus], profile: str | None) -> Table:
    table = Table(title=f"LLM observability stack ({profile or 'not running'} profile)")
    table.add_column("service", no_wrap=True)
    table.add_column("url", no_wrap=True)
    table.add_column("pid", no_wrap=True)
    table.add_column("health", no_wrap=True)
    table.add_column("what it is")
    for s in statuses:
        state = "[green]healthy[/]" if s.healthy else ("[yellow]starting/unhealthy[/]" if s.pid else "[red]down[/]")
        table.add_row(s.name, s.url, str(s.pid or "-"), state, s.description)
    return table


def cmd_up(args: argparse.Namespace) -> int:
    run = run_dir()
    started = time.monotonic()
    with console.status("starting the stack…") as spinner:
        statuses = control.up(args.profile, run, on_progress=lambda m: spinner.update(m),
                              notebooks=not args.no_notebooks, traces=args.traces)
    console.print(_table(statuses, args.profile))
    console.print(control.traces_note(run))
    console.print(f"Stack up in {time.monotonic() - started:.1f}s. Alerts show up at "
                  f"[bold]{next(s.url for s in statuses if s.name == 'receiver')}[/]; logs in {run / 'logs'}; "
                  "stop with [bold]make down[/].")
    jupyter = next((s for s in statuses if s.name == "jupyter"), None)
    if jupyter:
        console.print(f"Open the labs: [bold]{jupyter.url}[/]")
    return 0


def cmd_down(_: argparse.Namespace) -> int:
    stopped = control.down(run_dir(), on_progress=console.print)
    console.print("nothing was running" if not stopped else f"stopped {len(stopped)} service(s); ports are free")
    return 0


def cmd_status(_: argparse.Namespace) -> int:
    run = run_dir()
    profile = control.running_profile(run)
    statuses = control.status(profile, run)
    console.print(_table(statuses, profile))
    console.print(control.traces_note(run))
    return 0 if all(s.healthy for s in statuses) else 3


def cmd_logs(args: argparse.Namespace) -> int:
    names = [args.service] if args.service else sorted([*topology.load().services, *topology.load().workbench])
    names += [] if args.service else [n for n in topology.load().optional if processes.log_file(run_dir(), n).exists()]
    found = 0
    for name in names:
        path = processes.log_file(run_dir(), name)
        if not path.exists():
            console.print(f"[yellow]no log for {name} yet[/] (expected at {path}; has `make up` run?)")
            continue
        found += 1
        console.rule(f"{name}: last {args.lines} lines of {path}")
        print("\n".join(path.read_text(errors="replace").splitlines()[-args.lines:]))
    return 0 if found else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.runner", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start every service and wait until Prometheus scrapes them all")
    up.add_argument("--profile", choices=PROFILES, default="classroom",
                    help="classroom: alerts fire within seconds; production: real-world timings")
    up.add_argument("--no-notebooks", action="store_true", help="do not start JupyterLab")
    up.add_argument("--traces", action="store_true",
                    help="also start the trace backend (Arize Phoenix) and send the services' spans to it")
    up.set_defaults(run=cmd_up)
    sub.add_parser("down", help="stop everything this run folder started").set_defaults(run=cmd_down)
    sub.add_parser("status", help="each service with its URL and health").set_defaults(run=cmd_status)
    logs = sub.add_parser("logs", help="the last lines of one service's log")
    logs.add_argument("service", nargs="?", choices=sorted([*topology.load().services, *topology.load().workbench,
                                                            *topology.load().optional]),
                      help="one service (default: all of them)")
    logs.add_argument("-n", "--lines", type=int, default=40)
    logs.set_defaults(run=cmd_logs)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (control.StackError, binaries.MissingBinary) as error:
        console.print(f"[red]error:[/] {error}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
