"""`make bench`: measure, then rewrite docs/performance.md with the numbers, the machine and the date."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess

from rich.console import Console

from bench import classgrading, grading, loadgen, scenarios, stackbench, streaming, testsuite, throughput
from stack.paths import DOCS_DIR

console = Console()
REPORT = DOCS_DIR / "performance.md"


def _machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    prometheus = subprocess.run(["prometheus", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return (f"{os.cpu_count()} cores ({cpu}), {memory_gib:.0f} GiB RAM, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, {prometheus}")


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def render(tp: throughput.Throughput, sn: stackbench.StackNumbers, when: str, machine: str) -> str:
    med = stackbench.median
    alert_goal = sn.alert_for_seconds + 8
    rows = [
        ("gateway req/s, instrumentation on / off", f"{med(tp.instrumented):.0f} / {med(tp.uninstrumented):.0f} "
         f"(ratio {tp.on_off_ratio:.2f})", "ratio ≥ 0.95", _verdict(tp.on_off_ratio >= 0.95)),
        ("gateway req/s, instrumentation on + OTLP span export / off", f"{med(tp.exporting):.0f} / "
         f"{med(tp.uninstrumented):.0f} (ratio {tp.export_off_ratio:.2f})", "ratio ≥ 0.95",
         _verdict(tp.export_off_ratio >= 0.95)),
        ("gateway vs bare FastAPI hello-world", f"{med(tp.instrumented):.0f} / {med(tp.hello):.0f} req/s "
         f"(ratio {tp.gateway_hello_ratio:.2f})", "ratio ≥ 0.5", _verdict(tp.gateway_hello_ratio >= 0.5)),
        ("`make up` to every target up", f"{med(sn.start_seconds):.1f} s (runs: "
         f"{', '.join(f'{s:.1f}' for s in sn.start_seconds)})", "≤ 8 s", _verdict(med(sn.start_seconds) <= 8)),
        ("classroom alert latency, fault → pager", f"{med(sn.alert_seconds):.1f} s (runs: "
         f"{', '.join(f'{s:.1f}' for s in sn.alert_seconds)})", f"≤ for + 8 s = {alert_goal} s",
         _verdict(max(sn.alert_seconds) <= alert_goal)),
        ("resident memory of the embedded stack", f"{sn.rss_total_mib:.0f} MiB ("
         + ", ".join(f"{k} {v:.0f}" for k, v in sn.stack_rss_mib.items()) + ")", "≤ 300 MB",
         _verdict(sn.rss_total_mib * 1.048576 <= 300)),
        ("JupyterLab beside it (not in the budget)", f"{sn.rss_mib.get('jupyter', 0):.0f} MiB", "-", "-"),
    ]
    grade_times = sn.extras.get("grading")
    if isinstance(grade_times, list) and grade_times:
        rows.append(("`make grade` V1+V2 on solutions, warm", f"{med(grade_times):.1f} s (runs: "
                     f"{', '.join(f'{t:.1f}' for t in grade_times)})", "≤ 15 s", _verdict(med(grade_times) <= 15)))
    load = sn.extras.get("loadgen")
    if isinstance(load, loadgen.LoadgenNumbers):
        rows.append(("load generator, one locust process", f"{load.requests_per_second:.0f} req/s at "
                     f"{load.best.users} users; gateway p95 {load.prometheus_p95_ms or 0:.0f} ms (Prometheus), "
                     f"{load.locust_p95_ms or 0:.0f} ms (locust)", "-", "reported"))
    table = "\n".join(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows)
    scenario_table = _scenario_table(sn.extras.get("scenarios"))
    why_not_met = _why_not_met([row[0] for row in rows if row[3] == _verdict(False)])
    return f"""# Performance

Measured by `make bench` (bench/) on {when}, on: {machine}.
Re-run it after a change that could matter and commit the new numbers. Nothing here is asserted in tests.

| what | measured | goal | |
| --- | --- | --- | --- |
{table}
{scenario_table}
{why_not_met}## How each number is measured

- **Throughput**: `wrk` ({throughput.CONNECTIONS} connections, {throughput.ROUND_SECONDS} s rounds, {throughput.ROUNDS}
  interleaved rounds per server, median) posts a `sim-fast` chat request to three servers started side by side on
  free loopback ports: the gateway with instrumentation on, the same gateway with `GATEWAY_INSTRUMENTATION=off`,
  and a bare FastAPI app answering a constant (`bench/hello.py`). "On" is the gateway with
  Prometheus metrics with exemplars, and OpenTelemetry spans (trace ids in logs and exemplars) that no backend
  receives (`OTEL_TRACES_EXPORTER=none`); "on + OTLP span export" is the gateway as `make up` runs it: it also
  sends its spans over OTLP/HTTP (there to the built-in trace store, or Phoenix with `TRACES=1`), here to a sink in
  the benchmark process. All gateways call one llmsim with
  `LLMSIM_LATENCY_SCALE=0` and write their SQLite attribution rows, so the difference between them is the
  instrumentation alone. The hello-world does no upstream call and no write: the gap to it is the
  price of a real proxy hop (an HTTP call to the provider, a database row, a log line), not of monitoring.
  wrk, the servers and llmsim share the machine's cores.
- **Start-up**: wall time of `make up` (classroom profile, dependencies already installed) until Prometheus
  reports every target `up`, {stackbench.STARTS} starts with `make down` in between. Prometheus 2.42 scrapes a new
  target only 5–6 s after it starts, which dominates.
- **Alert latency**: with 4 requests/s to `sim-fast` flowing, `error_rate=0.6` is injected into llmsim and the
  clock stops when the receiver's pager channel holds the `LLMHighErrorRatio` notification. The floor is the
  classroom `for` ({sn.alert_for_seconds} s) plus the rate window filling, evaluation (1 s) and Alertmanager's
  `group_wait` (2 s).
- **Grading**: `python -m graders --lab v1,v2 --notebooks solutions --strict` on the running stack, one warm-up
  run then {grading.RUNS} timed runs (each builds a fresh gradebook, autogrades both notebooks in a new kernel,
  writes feedback HTML and runs the V2 stack checks).
- **Load generator**: `bench/loadgen.py` steps the users of one headless locust process up against the gateway
  and keeps the step with the most requests/s and no failures; p95 from locust and from Prometheus'
  `histogram_quantile` over the gateway histogram. See docs/load.md.
- **Scenarios**: every scenario of stack/scenarios/registry.yaml in turn on the running stack (classroom profile),
  triggered through the same engine as `make break`, watched through the same live view as the CLI (0.5 s polls),
  healed as `make heal` does once every expected alert fires, then watched until green. Times are seconds after the
  trigger; "first notification" is the first one naming an expected alert (a warning of the same alert can arrive
  before its critical fires); "green" is seconds after the heal until no expected alert is pending or firing and
  the key signal is back to normal.
- **Memory**: VmRSS of the stack's processes after the alert runs (Prometheus holding a few minutes of
  1 s scrapes), before the scenarios and the load test. The optional trace backend (Phoenix, `make up TRACES=1`,
  about 450 MiB) is not included.
"""


WHY_NOT_MET = {
    "gateway req/s, instrumentation on / off":
        "the two gateways differ only by the instrumentation but share the two cores with wrk and llmsim, and the "
        "ratio moves with that: five `make bench` runs of the same gateway code on 2026-12-05 gave 0.91, 0.95, "
        "0.99, 1.01 and 1.03. A single run below 0.95 is within that noise; raise `ROUNDS` in "
        "bench/throughput.py for a tighter figure.",
    "gateway req/s, instrumentation on + OTLP span export / off":
        "the batch span processor encodes every span to protobuf in the gateway's own process, and at several "
        "hundred requests per second on two shared cores that is CPU taken from serving. Real LLM traffic is tens "
        "of requests per second per gateway, where the same overhead is invisible; sampling "
        "(`OTEL_TRACES_SAMPLER=parentbased_traceidratio`) is the lever if it ever matters.",
    "gateway vs bare FastAPI hello-world":
        "the gateway does a real proxy hop per request (an httpx call to llmsim, itself a FastAPI app on the same "
        "two cores, a SQLite row and a JSON log line); the hello-world answers a constant. The instrumentation's own "
        "cost is the on/off row.",
    "resident memory of the embedded stack":
        "four of the six processes are Python services, and importing FastAPI with pydantic costs each about "
        "30 MiB before it serves anything (`import fastapi` in a bare interpreter); Prometheus grows with the "
        "series and samples it holds.",
    "classroom alert latency, fault → pager":
        "the floor is `for` plus the rate window filling, an evaluation and `group_wait`; a run that lands just "
        "after an evaluation, or an alert joining a group Alertmanager still holds (it then waits for "
        "`group_interval`), pays a few seconds more.",
}


def _why_not_met(missed: list[str]) -> str:
    if not missed:
        return ""
    lines = ["## Goals not met, and why", ""]
    lines += [f"- **{what}**: {WHY_NOT_MET.get(what, 'no explanation recorded yet: investigate.')}" for what in missed]
    return "\n".join(lines) + "\n\n"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _scenario_table(timings: object) -> str:
    if not isinstance(timings, list) or not timings:
        return ""
    lines = ["", "## Failure scenarios: trigger to alert (classroom profile)", "",
             "| scenario | expected alert | key signal broken | alert firing | first notification | green after heal |",
             "| --- | --- | --- | --- | --- | --- |"]
    for t in timings:
        firing = _seconds(t.firing_after) if t.problem is None else f"**{t.problem[:80]}**"
        lines.append(f"| {t.name} | {t.expected} | {_seconds(t.key_broken_after)} | {firing} | "
                     f"{_seconds(t.notified_after)} | {_seconds(t.green_after_heal)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    when = datetime.date.today().isoformat()
    with console.status("benchmarking throughput…") as status:
        tp = throughput.measure(progress=lambda m: status.update(m))
    console.print(f"throughput on/off ratio {tp.on_off_ratio:.2f}, vs hello-world {tp.gateway_hello_ratio:.2f}")
    with console.status("benchmarking the embedded stack…") as status:
        sn = stackbench.measure(progress=lambda m: status.update(m), on_running_stack={
            # scenarios before the load test: its traffic would inflate the 3 min cost baseline of cost-runaway
            "grading": grading.measure, "class": classgrading.measure, "scenarios": scenarios.measure,
            "loadgen": lambda progress: loadgen.measure_running_stack(progress)})
    with console.status("benchmarking streaming and the response cache…") as status:
        stream_numbers = streaming.measure(progress=lambda m: status.update(m))
    kept = testsuite.SECTION.kept(REPORT.read_text()) if REPORT.exists() else ""  # `make bench-tests` writes it
    class_numbers = sn.extras["class"]
    assert isinstance(class_numbers, classgrading.ClassNumbers)
    REPORT.write_text(render(tp, sn, when, _machine()) + "\n" + streaming.section(stream_numbers, when)
                      + "\n" + classgrading.section(class_numbers, when) + ("\n" + kept if kept else ""))
    console.print(f"wrote {REPORT}")
    console.print(REPORT.read_text())


if __name__ == "__main__":
    main()
