"""Gateway requests/s with instrumentation on vs off (same run, interleaved rounds) and a bare FastAPI app.

"on" is the gateway with Prometheus metrics, exemplars, and tracing that makes spans (trace ids in logs and
exemplars) without exporting them. "on + export" is the gateway as `make up` runs it: it also sends every span over
OTLP/HTTP (`make up` sends them to the built-in trace store), here to a sink collector in this process
(tests/otlp_collector.py; it receives, never decodes)."""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.servers import uvicorn_app
from tests.otlp_collector import OtlpCollector
from stack.traffic import chat_body

ROUND_SECONDS = 8
ROUNDS = 3
CONNECTIONS = 16
_REQUESTS_PER_SEC = re.compile(r"Requests/sec:\s+([\d.]+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


@dataclass(frozen=True)
class Throughput:
    instrumented: list[float]
    uninstrumented: list[float]
    hello: list[float]
    exporting: list[float]

    @property
    def on_off_ratio(self) -> float:
        return statistics.median(self.instrumented) / statistics.median(self.uninstrumented)

    @property
    def export_off_ratio(self) -> float:
        return statistics.median(self.exporting) / statistics.median(self.uninstrumented)

    @property
    def gateway_hello_ratio(self) -> float:
        return statistics.median(self.instrumented) / statistics.median(self.hello)


def _wrk_script(folder: Path) -> Path:
    body = json.dumps(chat_body("sim-fast", "bench-user"))
    script = folder / "post.lua"
    script.write_text(f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                      f"wrk.body = {json.dumps(body)}\n")
    return script


def requests_per_second(url: str, script: Path, seconds: int = ROUND_SECONDS) -> float:
    result = subprocess.run(["wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", f"{seconds}s", "-s", str(script),
                             f"{url}/v1/chat/completions"], capture_output=True, text=True, check=True)
    errors = _NON_2XX.search(result.stdout)
    if errors:
        raise RuntimeError(f"{errors.group(1)} requests failed during the benchmark of {url}:\n{result.stdout}")
    return float(_REQUESTS_PER_SEC.search(result.stdout).group(1))  # type: ignore[union-attr]


def measure(progress=print) -> Throughput:
    no_export = {"OTEL_TRACES_EXPORTER": "none"}  # whatever the shell exports
    with tempfile.TemporaryDirectory(prefix="llmobs-bench-") as tmp, OtlpCollector(decode_spans=False) as sink:
        folder = Path(tmp)
        script = _wrk_script(folder)
        llmsim_env = {"LLMSIM_LATENCY_SCALE": "0", **no_export}
        gateway = {"OTEL_TRACES_EXPORTER": "otlp"}
        with uvicorn_app("stack.llmsim.app:app", llmsim_env, folder / "llmsim.log") as llmsim, \
             uvicorn_app("stack.gateway.app:app", {**gateway, "GATEWAY_PROVIDER_URL": llmsim, **no_export,
                                                   "GATEWAY_INSTRUMENTATION": "on",
                                                   "GATEWAY_DATA_DIR": str(folder / "on")}, folder / "on.log") as on, \
             uvicorn_app("stack.gateway.app:app", {**gateway, "GATEWAY_PROVIDER_URL": llmsim,
                                                   "OTEL_EXPORTER_OTLP_ENDPOINT": sink.url,
                                                   "GATEWAY_INSTRUMENTATION": "on",
                                                   "GATEWAY_DATA_DIR": str(folder / "export")},
                         folder / "export.log") as export, \
             uvicorn_app("stack.gateway.app:app", {**gateway, "GATEWAY_PROVIDER_URL": llmsim, **no_export,
                                                   "GATEWAY_INSTRUMENTATION": "off",
                                                   "GATEWAY_DATA_DIR": str(folder / "off")}, folder / "off.log") as off, \
             uvicorn_app("bench.hello:app", {}, folder / "hello.log") as hello:
            for url in (on, export, off):
                requests_per_second(url, script, 2)  # warm-up: first SQLite pages, connection pools
            results: dict[str, list[float]] = {"on": [], "export": [], "off": [], "hello": []}
            for round_number in range(1, ROUNDS + 1):
                for name, url in (("on", on), ("export", export), ("off", off), ("hello", hello)):
                    results[name].append(requests_per_second(url, script))
                    progress(f"throughput round {round_number}/{ROUNDS}: {name} {results[name][-1]:.0f} req/s")
        if not sink.payloads:
            raise RuntimeError("the exporting gateway sent no spans to the sink collector; see export.log")
    return Throughput(results["on"], results["off"], results["hello"], results["export"])
