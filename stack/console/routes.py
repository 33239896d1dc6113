"""The instructor console's routes, served on the receiver's port at /console (stack/console/app.py): trigger and heal
the failure scenarios from a page.

    GET  /console                                  the page (page.html): scenarios, their state, the feed
    GET  /console/api/scenarios                    every scenario of stack/scenarios/registry.yaml with its state
    GET  /console/api/scenarios/<name>             one of them
    POST /console/api/scenarios/<name>/break       trigger it; optional JSON body {"duration": seconds}
    POST /console/api/heal                         stop the running scenario and reset every fault knob

The buttons call stack.scenarios.engine exactly as `make break` / `make heal` do: the driver process it spawns
records the transitions (pending, firing, notification, resolved) in <run>/scenarios/state.json, which the page
polls. The notification feed is the receiver's own /api/notifications.

Mistakes are 4xx with a sentence: an unknown scenario is a 404 naming the known ones, a duration outside
10..900 s a 422. Only loopback clients may trigger or heal (403 otherwise; the receiver listens on 127.0.0.1
anyway), and a POST whose Origin is another site is refused too, so a web page open in the instructor's browser
cannot break the stack behind their back.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from stack import profiles, topology
from stack.paths import REPO_ROOT, run_dir
from stack.runner import control
from stack.scenarios import engine, registry
from stack.scenarios.kinds.base import ScenarioFailure
from stack.scenarios.model import MAX_DURATION_SECONDS, MIN_DURATION_SECONDS, RegistryError, Scenario
from stack.web import problem

PAGE = (Path(__file__).parent / "page.html").read_text()
RANGE_INPUT = "5m"  # the classic graph's time range in the signature links
BODY_FIELDS = ("duration",)
LOOPBACK_NAMES = frozenset({"localhost"})


# ---------------------------------------------------------------------------------------------- guards

def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def loopback_only(request: Request) -> None:
    """Triggering and healing are for the machine's own user: a loopback client, addressed by a loopback name
    (no DNS rebinding), and no request sent by another site's page (its Origin differs from the Host)."""
    client = request.client.host if request.client else ""
    if not _is_loopback(client):
        raise HTTPException(403, problem(403, f"the instructor console only takes loopback clients; "
                                              f"{client or 'unknown'} is not"))
    host = request.headers.get("host", "")
    if not _is_loopback(urlsplit(f"//{host}").hostname or ""):
        raise HTTPException(403, problem(403, f"the console answers to 127.0.0.1 or localhost, not {host!r}"))
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != host:
        raise HTTPException(403, problem(403, f"cross-site request from {origin} refused: trigger and heal "
                                              "scenarios from the console page itself or with curl"))


# ---------------------------------------------------------------------------------------------- links

def classic_graph_url(prometheus: str, *queries: str, tab: int = 0) -> str:
    """Prometheus' classic expression browser with one panel per query (g0., g1., ...). tab 0 is the graph, 1 the
    table ("Console"). The classic UI splits parameters on '=' and '&' before decoding, so everything is
    percent-encoded."""
    params = []
    for number, query in enumerate(queries):
        params += [f"g{number}.expr={quote(query, safe='')}", f"g{number}.tab={tab}",
                   f"g{number}.range_input={RANGE_INPUT}"]
    return f"{prometheus}/classic/graph?" + "&".join(params)


# ---------------------------------------------------------------------------------------------- state

def _profile(run: Path, state: dict | None) -> profiles.Profile:
    """The running stack's profile (its queries' windows): the scenario's, the runner's, the environment's."""
    for name in ((state or {}).get("profile"), control.running_profile(run), os.environ.get("LLMOBS_PROFILE")):
        if name in profiles.PROFILE_NAMES:
            return profiles.load(name)
    return profiles.load("classroom")


def scenario_state(name: str, current: dict | None, run: Path, now: float) -> dict:
    """idle, starting, running, healing, healed (its recovery may still be recorded), failed or interrupted (its
    driver died before healing; Heal resets every knob), with the engine's recorded transitions."""
    if not current or current.get("name") != name:
        return {"phase": "idle", "active": False}
    phase = current.get("phase") or "idle"
    active = engine.is_active(current, run)
    just_requested = phase == "starting" and now - (current.get("requested_at") or 0) < engine.START_TIMEOUT_SECONDS
    if phase in engine.ACTIVE_PHASES and not active and not just_requested:
        phase = "interrupted"
    t0 = current.get("t0") or current.get("requested_at")
    view = {
        "phase": phase,
        "active": active or just_requested,
        "recording": bool(current.get("recording")) and engine.driver_pid(run) is not None,
        "requested_at": current.get("requested_at"),
        "t0": current.get("t0"),
        "since_trigger_seconds": None if t0 is None else round(now - t0, 1),
        "duration": current.get("duration"),
        "ends_in_seconds": None,
        "healed_at": current.get("healed_at"),
        "healed_after_seconds": None,
        "heal_reason": current.get("heal_reason"),
        "error": current.get("error"),
        "profile": current.get("profile"),
        "events": current.get("events") or [],
        "progress": current.get("progress") or {},
    }
    if phase == "running" and current.get("ends_at"):
        view["ends_in_seconds"] = round(max(0.0, current["ends_at"] - now), 1)
    if current.get("healed_at") and t0:
        view["healed_after_seconds"] = round(current["healed_at"] - t0, 1)
    return view


def describe(scenario: Scenario, profile: profiles.Profile, state: dict, prometheus: str, receiver: str) -> dict:
    signals = []
    for signal in scenario.signature:
        query = signal.render(profile)
        signals.append({"label": signal.label, "query": query,
                        "broken": signal.broken.text if signal.broken else None,
                        "graph_url": classic_graph_url(prometheus, query),
                        "table_url": classic_graph_url(prometheus, query, tab=1)})
    return {
        "name": scenario.name,
        "title": scenario.title,
        "description": scenario.description,
        "breaks": scenario.breaks,
        "kind": scenario.kind,
        "duration_seconds": scenario.duration_seconds,
        "expected_alerts": [str(m) for m in scenario.expected_alerts],
        "also_fires": [str(m) for m in scenario.also_fires],
        "quiet_alerts": [str(m) for m in scenario.quiet_alerts],
        "signature": signals,
        "all_signals_url": classic_graph_url(prometheus, *(s["query"] for s in signals)),
        "runbooks": {name: f"{receiver}/runbooks/{name}" for name in scenario.alertnames},
        "doc": str(scenario.doc.relative_to(REPO_ROOT)),
        "state": state,
    }


# ---------------------------------------------------------------------------------------------- the router

def router(run: Callable[[], Path] = run_dir) -> APIRouter:
    """The console's routes; `run` gives the stack's run folder (LLMOBS_RUN_DIR, set by the runner)."""
    routes = APIRouter(prefix="/console", tags=["instructor console"])
    spawned: set[int] = set()  # driver processes this receiver started: reaped here, or they stay zombies

    def reap() -> None:
        for pid in list(spawned):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                spawned.discard(pid)

    def scenarios() -> dict[str, Scenario]:
        try:
            return registry.load()
        except RegistryError as error:
            raise HTTPException(500, problem(500, f"the scenario registry cannot be loaded: {error}")) from None

    def known(name: str) -> Scenario:
        found = scenarios()
        if name not in found:
            raise HTTPException(404, problem(404, f"no scenario named {name!r}; scenarios: {', '.join(found)}",
                                             scenarios=list(found)))
        return found[name]

    def overview(only: str | None = None) -> dict:
        reap()
        folder, now = run(), time.time()
        current = engine.read_state(folder)
        profile = _profile(folder, current)
        services = topology.load().services
        prometheus, receiver = services["prometheus"].url, services["receiver"].url
        items = [describe(s, profile, scenario_state(s.name, current, folder, now), prometheus, receiver)
                 for s in scenarios().values() if only in (None, s.name)]
        active = next((s["name"] for s in items if s["state"]["active"]), None)
        return {
            "now": now,
            "profile": profile.name,
            "active": active,
            "current": current and current.get("name"),
            "limits": {"min_duration_seconds": MIN_DURATION_SECONDS, "max_duration_seconds": MAX_DURATION_SECONDS},
            "links": {"prometheus": f"{prometheus}/classic/graph", "alerts": f"{prometheus}/classic/alerts",
                      "targets": f"{prometheus}/classic/targets", "channels": "/", "runbooks": "/runbooks",
                      "notifications": "/api/notifications"},
            "scenarios": items,
        }

    @routes.get("", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return PAGE

    @routes.get("/api/scenarios")
    def list_scenarios() -> dict:
        return overview()

    @routes.get("/api/scenarios/{name}")
    def one_scenario(name: str) -> dict:
        known(name)
        view = overview(only=name)
        return {**view["scenarios"][0], "now": view["now"], "profile": view["profile"]}

    @routes.post("/api/scenarios/{name}/break", dependencies=[Depends(loopback_only)])
    async def trigger(name: str, request: Request) -> dict:
        scenario = known(name)
        duration = _duration(await request.body(), scenario.duration_seconds)
        folder = run()
        try:
            state = await run_in_threadpool(engine.start, name, folder, duration)
        except RegistryError as error:
            raise HTTPException(422, problem(422, str(error))) from None
        except engine.StackNotRunning as error:
            raise HTTPException(503, problem(503, str(error))) from None
        except ScenarioFailure as error:
            raise HTTPException(502, problem(502, str(error))) from None
        if state.get("pid"):
            spawned.add(int(state["pid"]))
        already = bool(state.get("already_running"))
        message = (f"{name} is already running; nothing changed" if already else
                   f"{name} triggered for {state.get('duration', duration):g}s: {scenario.breaks}")
        return {"triggered": not already, "already_running": already, "message": message,
                "scenario": one_scenario(name)}

    @routes.post("/api/heal", dependencies=[Depends(loopback_only)])
    async def heal() -> dict:
        folder = run()
        before = engine.read_state(folder)
        was_active = engine.is_active(before, folder)
        progress: list[str] = []
        try:
            state = await run_in_threadpool(engine.heal, folder, progress.append)
        except ScenarioFailure as error:
            raise HTTPException(502, problem(502, str(error))) from None
        reap()
        name = (state or {}).get("name") if was_active else None
        message = (f"healed {name}; every fault knob is reset" if name else
                   "no scenario was running; every fault knob is reset anyway")
        problems = [line for line in progress if not line.startswith("healing ")]
        return {"healed": name, "was_active": was_active, "message": message, "problems": problems,
                "state": scenario_state(state["name"], state, folder, time.time()) if state else None}

    return routes


def _duration(body: bytes, default: float) -> float | None:
    """The optional duration of a trigger: a JSON body {"duration": seconds}, 10..900; none means the registry's."""
    if not body.strip():
        return None
    try:
        fields = json.loads(body)
    except ValueError as error:
        raise HTTPException(422, problem(422, f"body is not valid JSON ({error}); send {{\"duration\": seconds}} "
                                              "or nothing", fields=["body"])) from None
    if not isinstance(fields, dict):
        raise HTTPException(422, problem(422, "body must be a JSON object like {\"duration\": 60}", fields=["body"]))
    unknown = sorted(set(fields) - set(BODY_FIELDS))
    if unknown:
        raise HTTPException(422, problem(422, f"unknown field(s) {', '.join(unknown)}; the body takes "
                                              f"{', '.join(BODY_FIELDS)}", fields=unknown))
    value = fields.get("duration")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise HTTPException(422, problem(422, f"duration must be a number of seconds, got {json.dumps(value)}",
                                         fields=["duration"]))
    if not MIN_DURATION_SECONDS <= value <= MAX_DURATION_SECONDS:
        raise HTTPException(422, problem(
            422, f"duration {value:g}s is outside {MIN_DURATION_SECONDS:g}..{MAX_DURATION_SECONDS:g}s; leave it out "
                 f"for the scenario's default ({default:g}s)", fields=["duration"]))
    return float(value)
