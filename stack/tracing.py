"""OpenTelemetry tracing shared by the stack's services: one TracerProvider per process, OTLP/HTTP export when an
endpoint is configured, trace ids for log lines and exemplars.

Where spans go (the standard OpenTelemetry variables; the first that applies wins):

    OTEL_TRACES_EXPORTER=none                 nowhere
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=URL    exactly URL (e.g. http://127.0.0.1:4318/v1/traces)
    OTEL_EXPORTER_OTLP_ENDPOINT=URL           URL + /v1/traces (Phoenix, Jaeger, Tempo, an OpenTelemetry Collector)
    none of them                              nowhere

`make up` sets OTEL_EXPORTER_OTLP_ENDPOINT for the services it starts to the built-in trace store (stack/tracestore),
or to Phoenix with `make up TRACES=1` (unless you set one yourself: docs/tracing.md). Without an endpoint (a service
started by hand, OTEL_TRACES_EXPORTER=none) every request still gets its trace context, so log
lines and exemplars carry trace ids and the provider joins the trace, but spans are not recorded (nothing would
receive them). LLMOBS_TRACING=off (or GATEWAY_INSTRUMENTATION=off for the gateway)
switches tracing off altogether: no spans, no trace ids, no exemplars.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from importlib import metadata

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

NAMESPACE = "llmobs"
# Phoenix files spans into projects by this resource attribute (OpenInference); other backends ignore it.
PHOENIX_PROJECT = "llmobs"
# Export every second rather than the SDK's 5 s default: a trace shows up in the UI while you still look for it.
DEFAULT_SCHEDULE_DELAY_MS = 1000
EXPORT_TIMEOUT_SECONDS = 5.0
# Paths that are polled, not used: no trace per health check or scrape.
UNTRACED_PATHS = ("/health", "/ready", "/metrics", "/faults")


def _off(value: str | None) -> bool:
    return (value or "").strip().lower() in {"0", "off", "false", "no", "none"}


def exporter_endpoint(env: Mapping[str, str] | None = None) -> str | None:
    """The OTLP/HTTP traces URL spans are sent to, or None (see the module docstring)."""
    env = os.environ if env is None else env
    if _off(env.get("OTEL_TRACES_EXPORTER")):
        return None
    explicit = (env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or "").strip()
    if explicit:
        return explicit
    base = (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "").strip()
    return base.rstrip("/") + "/v1/traces" if base else None


def enabled_by_env(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    return not _off(env.get("LLMOBS_TRACING", "on"))


def _version() -> str:
    try:
        return metadata.version("llm-observability-labs")
    except metadata.PackageNotFoundError:
        return "dev"


def resource(service_name: str) -> Resource:
    return Resource.create({
        "service.name": service_name,
        "service.namespace": NAMESPACE,
        "service.version": _version(),
        "deployment.environment.name": os.environ.get("LLMOBS_PROFILE", "dev"),
        "openinference.project.name": PHOENIX_PROJECT,
    })


class _ServiceName(SpanProcessor):
    """Copies service.name onto every span: some backends (Phoenix among them) keep span attributes but not the
    resource, and a trace crossing two services should still say which span came from which."""

    def __init__(self, service_name: str) -> None:
        self.service_name = service_name

    def on_start(self, span, parent_context=None) -> None:  # noqa: ANN001 (SDK signature)
        span.set_attribute("service.name", self.service_name)


@dataclass
class Tracing:
    """A service's tracing: `provider` is None when tracing is off (every tracer is then a no-op)."""

    service_name: str
    provider: TracerProvider | None
    endpoint: str | None

    @property
    def enabled(self) -> bool:
        return self.provider is not None

    def tracer(self, name: str) -> trace.Tracer:
        if self.provider is None:
            return trace.NoOpTracer()
        return self.provider.get_tracer(name)

    def describe(self) -> str:
        if self.provider is None:
            return "off"
        return f"exported to {self.endpoint}" if self.endpoint else "trace ids only (no OTLP endpoint configured)"

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()


def setup(service_name: str, enabled: bool = True, exporter: SpanExporter | None = None,
          env: Mapping[str, str] | None = None) -> Tracing:
    """A TracerProvider for one service; spans go to `exporter` if given, else to the configured OTLP endpoint."""
    if not (enabled and enabled_by_env(env)):
        return Tracing(service_name, None, None)
    endpoint = exporter_endpoint(env)
    if exporter is None and endpoint:
        # Imported only when spans are exported: the OTLP exporter pulls in protobuf and requests (~0.25 s to import).
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=endpoint, timeout=EXPORT_TIMEOUT_SECONDS)
    if exporter is None:
        # Nothing would receive the spans: keep the trace context (ids for logs, exemplars and the provider) but
        # record nothing. Spans are then non-recording, which costs a few microseconds instead of tens.
        return Tracing(service_name, TracerProvider(resource=resource(service_name), sampler=ALWAYS_OFF), None)
    provider = TracerProvider(resource=resource(service_name))
    provider.add_span_processor(_ServiceName(service_name))
    delay = None if os.environ.get("OTEL_BSP_SCHEDULE_DELAY") else DEFAULT_SCHEDULE_DELAY_MS
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=delay))
    return Tracing(service_name, provider, endpoint or type(exporter).__name__)


def instrument_fastapi(app, tracing: Tracing, lean: bool = False) -> None:  # noqa: ANN001 (a FastAPI app)
    """One SERVER span per request (context taken from the caller's traceparent header), none for polled paths.

    lean=False: opentelemetry-instrumentation-fastapi (every HTTP semantic-convention attribute, ~125 µs a request).
    lean=True: `ServerSpanMiddleware` below (the attributes that matter here, ~20 µs): the gateway uses it to keep
    instrumentation within 5 % of its uninstrumented throughput (docs/performance.md)."""
    if not tracing.enabled:
        return
    if lean:
        app.add_middleware(ServerSpanMiddleware, tracer=tracing.tracer("stack.tracing.server"))
        return
    # Imported only for lean=False (llmsim): the gateway's lean middleware needs none of the contrib package.
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.metrics import NoOpMeterProvider

    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=tracing.provider, meter_provider=NoOpMeterProvider(),
        excluded_urls=",".join(UNTRACED_PATHS), exclude_spans=["receive", "send"])


_PROPAGATION_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})


class ServerSpanMiddleware:
    """ASGI middleware: a SERVER span `{method} {route}` per HTTP request, joined to the caller's trace, with the
    stable HTTP semantic-convention attributes (method, route, status code) and ERROR status on 5xx. The
    context comes from the request headers only (an empty carrier starts a new trace), even when the caller runs in
    the same process (tests, notebooks)."""

    def __init__(self, app, tracer: trace.Tracer, untraced: tuple[str, ...] = UNTRACED_PATHS) -> None:  # noqa: ANN001
        self.app, self.tracer, self.untraced = app, tracer, untraced

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001 (ASGI)
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(self.untraced):
            await self.app(scope, receive, send)
            return
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
                   if k in _PROPAGATION_HEADERS}
        method = scope["method"]
        status = 0

        async def send_status(message) -> None:  # noqa: ANN001
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with self.tracer.start_as_current_span(
                f"{method} {path}", context=propagate.extract(carrier), kind=trace.SpanKind.SERVER,
                attributes={"http.request.method": method},
        ) as span:
            await self.app(scope, receive, send_status)
            if span.is_recording():
                route = getattr(scope.get("route"), "path", None)
                if route:
                    span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route or path)
                if status:
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(trace.Status(trace.StatusCode.ERROR))


def current_ids(span: trace.Span | None = None) -> tuple[str, str] | None:
    """(trace_id, span_id) of `span` (default: the current span) as lowercase hex (W3C form), or None outside a
    recorded span."""
    context = (span or trace.get_current_span()).get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def exemplar(span: trace.Span | None = None) -> dict[str, str] | None:
    """Exemplar labels linking a metric sample to `span`'s trace (default: the current span's); OpenMetrics
    exposition shows them."""
    ids = current_ids(span)
    return {"trace_id": ids[0], "span_id": ids[1]} if ids else None


def add_trace_ids(_logger: object, _method: str, event: MutableMapping[str, object]) -> MutableMapping[str, object]:
    """structlog processor: trace_id and span_id on every line logged inside a span."""
    ids = current_ids()
    if ids:
        event["trace_id"], event["span_id"] = ids
    return event


def inject(headers: MutableMapping[str, str], span: trace.Span | None = None) -> MutableMapping[str, str]:
    """Add the trace context (W3C traceparent) of `span` (default: the current one) to outgoing HTTP headers."""
    propagate.inject(headers, context=trace.set_span_in_context(span) if span is not None else None)
    return headers
