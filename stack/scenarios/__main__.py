"""`python -m stack.scenarios list|show|break|heal|status|watch`: the instructor's failure scenarios (make wraps it).

    list                       every scenario: what it breaks, the alert that should catch it, how long it runs
    show NAME                  one scenario in full: signature queries, alerts, runbooks, the instructor page
    break NAME [--duration S]  trigger it, then follow it live until it has healed (Ctrl-C leaves the view only;
                               the scenario runs on, in the background, until its duration is over)
           [--no-watch]        trigger and return at once
    heal                       stop the running scenario now and reset every fault knob the scenarios use
    status [--json]            the running (or last) scenario and its timeline
    watch                      the live view of the running (or last) scenario

The stack must be up (`make up`). LLMOBS_RUN_DIR and LLMOBS_PORT_OFFSET select the stack, as for the runner.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from stack import topology
from stack.paths import REPO_ROOT, run_dir
from stack.scenarios import engine, registry, view
from stack.scenarios.kinds.base import ScenarioFailure
from stack.scenarios.model import RegistryError

console = Console(width=None if sys.stdout.isatty() else 140)


def _runbook(alertname: str) -> str:
    return f"{topology.load()['receiver'].url}/runbooks/{alertname}"


def cmd_list(_: argparse.Namespace) -> int:
    table = Table(title=f"Failure scenarios ({registry.REGISTRY_FILE.relative_to(REPO_ROOT)})", show_lines=True)
    table.add_column("name", no_wrap=True, style="bold")
    table.add_column("what it breaks")
    table.add_column("should be caught by", overflow="fold")
    table.add_column("heals after", no_wrap=True, justify="right")
    for scenario in registry.load().values():
        caught = escape("\n".join(str(m) for m in scenario.expected_alerts))
        if scenario.quiet_alerts:
            caught += "\n[dim]not by:[/] " + escape(", ".join(str(m) for m in scenario.quiet_alerts))
        table.add_row(scenario.name, f"[bold]{escape(scenario.title)}[/]\n{escape(scenario.breaks)}", caught,
                      f"{scenario.duration_seconds:g}s")
    console.print(table)
    console.print("Trigger one with [bold]make break SCENARIO=<name>[/] (DURATION=<seconds> to change how long), stop "
                  "it early with [bold]make heal[/]; [bold]python -m stack.scenarios show <name>[/] for the details.")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    scenario = registry.get(args.name)
    console.rule(f"[bold]{scenario.name}[/] — {escape(scenario.title)}")
    console.print(escape(scenario.description), "\n")
    console.print(f"[bold]breaks:[/] {escape(scenario.breaks)}")
    console.print(f"[bold]kind:[/] {scenario.kind}   [bold]heals by itself after:[/] {scenario.duration_seconds:g}s")
    console.print("[bold]signature[/] (first = key signal):")
    for signal in scenario.signature:
        broken = f"  [dim]broken when {escape(signal.broken.text)}[/]" if signal.broken else ""
        console.print(f"  • {escape(signal.label)}{broken}\n    [cyan]{escape(signal.query)}[/]", highlight=False)
    for title, matchers in (("expected alerts", scenario.expected_alerts), ("may fire too", scenario.also_fires),
                            ("must stay quiet", scenario.quiet_alerts)):
        if matchers:
            console.print(f"[bold]{title}:[/] " + escape(", ".join(str(m) for m in matchers)))
    console.print("[bold]runbooks:[/] " + "  ".join(_runbook(name) for name in scenario.alertnames))
    console.print(f"[bold]instructor page:[/] {scenario.doc.relative_to(REPO_ROOT)}")
    return 0


def cmd_break(args: argparse.Namespace) -> int:
    run = run_dir()
    scenario = registry.get(args.name)
    with console.status(f"triggering {scenario.name}…") as spinner:
        state = engine.start(scenario.name, run, args.duration, on_progress=lambda m: spinner.update(m))
    if state.get("already_running"):
        left = max(0.0, (state.get("ends_at") or time.time()) - time.time())
        console.print(f"{scenario.name} is already running (heals by itself in {left:.0f}s); nothing changed")
    else:
        console.print(f"[bold red]{scenario.name}[/] triggered: {escape(scenario.breaks)}. It heals by itself after "
                      f"{state['duration']:g}s; `make heal` stops it now.")
    if args.no_watch:
        return 0
    return view.watch(run, console)


def cmd_heal(_: argparse.Namespace) -> int:
    run = run_dir()
    before = engine.read_state(run)
    was_active = engine.is_active(before, run)
    with console.status("healing…") as spinner:
        state = engine.heal(run, on_progress=lambda m: spinner.update(m))
    if was_active and state:
        ran = (state.get("healed_at") or time.time()) - (state.get("t0") or state.get("requested_at") or time.time())
        console.print(f"healed [bold]{state['name']}[/] after {ran:.0f}s; every fault knob is reset "
                      "(its traffic runs on for up to 20 s while the signal recovers: `make break` of another "
                      "scenario or a second `make heal` ends it)")
    else:
        console.print("no scenario was running; every fault knob is reset anyway")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    run = run_dir()
    state = engine.read_state(run)
    if args.json:
        print(json.dumps(state, indent=1))
        return 0
    if not state:
        console.print("no scenario has run in this run folder yet; `make scenarios` lists them")
        return 0
    active = engine.is_active(state, run)
    ends = state.get("ends_at")
    line = f"[bold]{state['name']}[/]: {state.get('phase')}"
    if active and ends:
        line += f", heals by itself in {max(0.0, ends - time.time()):.0f}s"
    if state.get("error"):
        line += f" [red]({state['error']})[/]"
    console.print(line)
    for event in state.get("events", []):
        console.print(f"  {view.clock(event.get('at'))} +{event['t']:6.1f}s  {escape(event['what'])}", highlight=False)
    if state.get("progress"):
        view.print_summary(state, console)
    return 0


def cmd_watch(_: argparse.Namespace) -> int:
    return view.watch(run_dir(), console)


def cmd_drive(args: argparse.Namespace) -> int:
    return engine.drive(args.name, args.duration, run_dir())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.scenarios", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{list,show,break,heal,status,watch}")
    sub.add_parser("list", help="every scenario, what it breaks and which alert should catch it").set_defaults(
        run=cmd_list)
    show = sub.add_parser("show", help="one scenario in full")
    show.add_argument("name")
    show.set_defaults(run=cmd_show)
    trigger = sub.add_parser("break", help="trigger a scenario and follow it live")
    trigger.add_argument("name")
    trigger.add_argument("--duration", type=float, help="seconds before it heals by itself (default: the registry's)")
    trigger.add_argument("--no-watch", action="store_true", help="return once it is triggered")
    trigger.set_defaults(run=cmd_break)
    sub.add_parser("heal", help="stop the running scenario and reset every fault knob").set_defaults(run=cmd_heal)
    status = sub.add_parser("status", help="the running (or last) scenario and its timeline")
    status.add_argument("--json", action="store_true")
    status.set_defaults(run=cmd_status)
    sub.add_parser("watch", help="the live view of the running (or last) scenario").set_defaults(run=cmd_watch)
    drive = sub.add_parser("_drive")  # internal: the detached driver process engine.start spawns
    drive.add_argument("name")
    drive.add_argument("--duration", type=float, required=True)
    drive.set_defaults(run=cmd_drive)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (RegistryError, engine.StackNotRunning) as error:
        console.print(f"[red]error:[/] {error}")
        return 2
    except ScenarioFailure as error:
        console.print(f"[red]error:[/] {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
