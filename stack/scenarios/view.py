"""The live view of a scenario (rich): signature values, alert states, notifications, and the driver's timeline.

In a terminal it redraws every second; otherwise (a pipe, CI, a log) it prints each new timeline event as a line.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from stack import profiles
from stack.scenarios import engine, observe, registry
from stack.scenarios.kinds import alert_storm
from stack.scenarios.observe import Snapshot, format_number
from stack.scenarios.model import Scenario

STATE_STYLE = {"inactive": "green", "pending": "yellow", "firing": "bold red"}
NOTIFICATIONS_SHOWN = 10
EVENTS_SHOWN = 10
REFRESH_SECONDS = 1.0
LINGER_AFTER_HEAL_SECONDS = 90.0  # the view follows the recovery this long at most after the heal


def clock(at: float | None) -> str:
    return "-" if at is None else datetime.fromtimestamp(at).strftime("%H:%M:%S")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"+{value:.1f}s"


def _header(state: dict, scenario: Scenario, now: float) -> Panel:
    t0 = state.get("t0") or state.get("requested_at") or now
    phase = state.get("phase", "?")
    parts = [f"[bold]{phase}[/]", f"triggered {clock(t0)}", f"+{now - t0:.0f}s"]
    if phase == "running" and state.get("ends_at"):
        parts.append(f"heals by itself in {max(0.0, state['ends_at'] - now):.0f}s")
    if state.get("healed_at"):
        parts.append(f"healed {clock(state['healed_at'])} ({state.get('heal_reason', '')})")
    body = Text.from_markup(" · ".join(parts) + f"\n[dim]breaks:[/] {escape(scenario.breaks)}")
    return Panel(body, title=f"[bold]{scenario.name}[/] — {escape(scenario.title)}", title_align="left")


def _signature(snapshot: Snapshot) -> Table:
    table = Table(title="signature (Prometheus)", title_justify="left", expand=True)
    table.add_column("signal", no_wrap=True)
    table.add_column("value", no_wrap=True)
    table.add_column("query", style="dim", overflow="fold")
    for number, reading in enumerate(snapshot.readings):
        if reading.values is None:
            value = Text("query failed", style="red")
        elif not reading.values:
            value = Text("no data", style="dim")
        else:
            shown = []
            for labels, number_value in reading.values[:4]:
                tag = ",".join(v for k, v in sorted(labels.items()) if k not in ("__name__", "job", "instance"))
                shown.append(f"{tag}={format_number(number_value)}" if tag and len(reading.values) > 1
                             else format_number(number_value))
            value = Text(" ".join(shown) + (" …" if len(reading.values) > 4 else ""))
        if reading.broken:
            value.stylize("bold red")
        label = escape(reading.signal.label)
        label = f"[bold]{label}[/]" if number == 0 else label
        if reading.signal.broken:
            label += f" [dim](broken: {escape(reading.signal.broken.text)})[/]"
        table.add_row(Text.from_markup(label), value, Text(reading.query))
    return table


def _alerts(scenario: Scenario, snapshot: Snapshot, state: dict) -> Table:
    progress = state.get("progress") or {}
    table = Table(title="alerts (Prometheus /api/v1/alerts; times after the trigger)", title_justify="left",
                  expand=True)
    for column in ("alert", "role", "state now", "pending", "firing", "resolved"):
        table.add_column(column, no_wrap=column != "alert")
    roles = [(m, "expected") for m in scenario.expected_alerts] + [(m, "may fire too") for m in scenario.also_fires] \
        + [(m, "must stay quiet") for m in scenario.quiet_alerts]
    for matcher, role in roles:
        name = str(matcher)
        now = observe.alert_state(matcher, snapshot.alerts)
        instances = len(observe.matching(matcher, snapshot.alerts))
        shown = now + (f" ×{instances}" if instances > 1 else "")
        style = STATE_STYLE[now] if role != "must stay quiet" or now == "inactive" else "bold red reverse"
        table.add_row(Text(name), role, Text(shown, style=style), _seconds(progress.get("first_pending", {}).get(name)),
                      _seconds(progress.get("first_firing", {}).get(name)),
                      _seconds(progress.get("resolved", {}).get(name)))
    watched = {m.alertname for m in scenario.watched_alerts} | {"Watchdog"}
    others = sorted({f"{a['labels']['alertname']} ({a['state']})" for a in snapshot.alerts
                     if a["labels"].get("alertname") not in watched})
    if others:
        table.caption = escape("other alerts: " + ", ".join(others))
    return table


def _notifications(snapshot: Snapshot, t0: float) -> Table:
    shown = [n for n in snapshot.notifications if n["channel"] != "watchdog"]
    table = Table(title=f"notifications received since the trigger: {len(shown)} (watchdog heartbeats left out)",
                  title_justify="left", expand=True)
    for column in ("time", "after", "channel", "status", "alerts"):
        table.add_column(column, no_wrap=column != "alerts")
    for n in shown[-NOTIFICATIONS_SHOWN:]:
        status = Text(n["status"], style="red" if n["status"] == "firing" else "green")
        plural = "s" if n["alert_count"] != 1 else ""
        table.add_row(clock(n["received_at"]), f"+{n['received_at'] - t0:.1f}s", Text(n["channel"]), status,
                      Text(f"{', '.join(n['alertnames'])} ({n['alert_count']} alert{plural})"))
    return table


def _storm(scenario: Scenario, snapshot: Snapshot, t0: float, healed_at: float | None) -> Panel:
    c = alert_storm.counts(scenario, t0, snapshot.notifications, snapshot.alerts, until=healed_at)
    table = Table.grid(padding=(0, 3))
    for _ in range(3):
        table.add_column(justify="center")
    table.add_row("[bold]alerts firing (Prometheus)[/]", "[bold]tuned Alertmanager[/]", "[bold]naive Alertmanager[/]")
    table.add_row(f"[bold red]{c.alerts_firing}[/]",
                  f"[bold green]{c.tuned_notifications}[/] notifications ({c.tuned_alerts_carried} alerts carried)",
                  f"[bold red]{c.naive_notifications}[/] notifications ({c.naive_alerts_carried} alerts carried)")
    table.add_row("", "channels pager, chat: grouped by alertname+severity, critical inhibits warning, repeat 1h",
                  "channels naive-pager, naive-chat: one group per alert, no inhibition, short repeat")
    title = "N alerts → M notifications" + (" (counted until the heal)" if healed_at else "")
    return Panel(table, title=title, title_align="left")


def _events(state: dict) -> Table:
    table = Table(title="timeline (recorded by the scenario's driver)", title_justify="left", expand=True)
    table.add_column("time", no_wrap=True)
    table.add_column("after", no_wrap=True)
    table.add_column("event")
    for event in state.get("events", [])[-EVENTS_SHOWN:]:
        table.add_row(clock(event.get("at")), f"+{event['t']:.1f}s", Text(event["what"]))
    return table


def render(state: dict, scenario: Scenario, snapshot: Snapshot) -> Group:
    t0 = state.get("t0") or state.get("requested_at") or snapshot.at
    parts: list = [_header(state, scenario, snapshot.at), _signature(snapshot), _alerts(scenario, snapshot, state)]
    if scenario.kind == "alert_storm":
        parts.append(_storm(scenario, snapshot, t0, state.get("healed_at")))
    parts.append(_notifications(snapshot, t0))
    if snapshot.target_errors:
        parts.append(Text.from_markup("[bold red]scrape failures:[/] " + escape("; ".join(
            f"{job}: {error}" for job, error in sorted(snapshot.target_errors.items())))))
    parts.append(_events(state))
    if snapshot.problems:
        parts.append(Text("cannot read: " + "; ".join(snapshot.problems), style="yellow"))
    parts.append(Text("Ctrl-C leaves this view (the scenario goes on until it heals itself); `make heal` stops it now.",
                      style="dim"))
    return Group(*parts)


def _finished(state: dict | None, started: dict, now: float) -> bool:
    if not state or state.get("requested_at") != started.get("requested_at"):
        return True  # another scenario replaced it
    if state.get("phase") == "failed":
        return True
    if state.get("phase") == "healed":
        return not state.get("recording") or now - state.get("healed_at", now) > LINGER_AFTER_HEAL_SECONDS
    return False


def watch(run: Path, console: Console) -> int:
    """Follow the current (or last) scenario until it is healed and back to green, or Ctrl-C."""
    state = engine.read_state(run)
    if not state:
        console.print("no scenario has run in this run folder yet; `make scenarios` lists them")
        return 1
    scenario = registry.get(state["name"])
    profile = profiles.load(state.get("profile") or "classroom")
    t0 = state.get("t0") or state.get("requested_at")
    started = state
    try:
        if console.is_terminal:
            with Live(console=console, auto_refresh=False, screen=False) as live:
                while True:
                    state = engine.read_state(run) or state
                    live.update(render(state, scenario, observe.take(scenario, profile, t0)), refresh=True)
                    if _finished(engine.read_state(run), started, time.time()):
                        break
                    time.sleep(REFRESH_SECONDS)
        else:
            printed = 0
            while True:
                state = engine.read_state(run) or state
                for event in state.get("events", [])[printed:]:
                    console.print(f"{clock(event.get('at'))} +{event['t']:6.1f}s  {escape(event['what'])}",
                                  highlight=False)
                printed = len(state.get("events", []))
                if _finished(engine.read_state(run), started, time.time()):
                    break
                time.sleep(REFRESH_SECONDS)
    except KeyboardInterrupt:
        console.print("\nleft the view; the scenario keeps running until it heals itself "
                      "(`make heal` stops it now, `python -m stack.scenarios watch` comes back)")
        return 0
    print_summary(engine.read_state(run) or state, console)
    return 0


def print_summary(state: dict, console: Console) -> None:
    progress = state.get("progress") or {}
    table = Table(title=f"{state['name']}: {state.get('phase')} — times after the trigger", title_justify="left")
    table.add_column("what")
    table.add_column("after", no_wrap=True)
    rows = [("key signal broken", progress.get("key_broken_after"))]
    rows += [(f"{name} firing", t) for name, t in (progress.get("first_firing") or {}).items()]
    rows += [(f"first notification {what}", t) for what, t in (progress.get("first_notification") or {}).items()]
    rows += [("healed", progress.get("healed_at"))]
    rows += [(f"{name} resolved", t) for name, t in (progress.get("resolved") or {}).items()]
    rows += [("key signal back to normal", progress.get("key_back_after"))]
    for what, t in rows:
        table.add_row(Text(what), _seconds(t))
    console.print(table)
