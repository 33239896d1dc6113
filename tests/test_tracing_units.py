"""Tracing without the live stack: where spans go (configuration), the gateway in-process with an in-memory exporter
(span tree, exemplar, log ids), GATEWAY_INSTRUMENTATION=off switching tracing off, and how the runner starts the
trace backend (offline, loopback only)."""

from __future__ import annotations

import io
import json
import shutil
from contextlib import redirect_stdout
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from graders import course, stackchecks, trace_backends
from stack import genai, topology, tracing
from stack.gateway import provider as provider_module
from stack.gateway.app import create_app
from stack.gateway.settings import Settings
from stack.runner import control, services

REPLY = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "sim-fast",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}
BODY = {"model": "sim-fast", "messages": [{"role": "user", "content": "hi"}],
        "attribution": {"user_id": "secret-user", "department": "support", "application": "chatbot"}}


@pytest.mark.parametrize(("env", "expected"), [
    ({}, None),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "http://127.0.0.1:4318/v1/traces"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318/"}, "http://127.0.0.1:4318/v1/traces"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:1", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:2/x"}, "http://b:2/x"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:1", "OTEL_TRACES_EXPORTER": "none"}, None),
])
def test_exporter_endpoint_follows_the_opentelemetry_variables(env: dict, expected: str | None) -> None:
    assert tracing.exporter_endpoint(env) == expected


def test_tracing_off_makes_no_ids_and_no_endpoint_makes_ids_but_records_nothing() -> None:
    off = tracing.setup("gateway", env={"LLMOBS_TRACING": "off"})
    assert not off.enabled and off.describe() == "off"
    with off.tracer("t").start_as_current_span("x"):
        assert tracing.current_ids() is None and tracing.exemplar() is None
    ids_only = tracing.setup("gateway", env={})
    assert ids_only.enabled and ids_only.endpoint is None and "trace ids only" in ids_only.describe()
    with ids_only.tracer("t").start_as_current_span("x") as span:
        assert not span.is_recording(), "nothing would receive the span: it is not recorded"
        assert tracing.current_ids() is not None and tracing.exemplar() is not None, "but it has its ids"


@pytest.fixture
def mocked_provider(monkeypatch: pytest.MonkeyPatch) -> list[httpx.Request]:
    """The gateway's provider client answers from memory and remembers each request."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=REPLY)

    def init(self, base_url: str, timeout: float) -> None:  # noqa: ANN001
        self._client = httpx.AsyncClient(base_url=base_url, transport=httpx.MockTransport(handler))

    monkeypatch.setattr(provider_module.ProviderClient, "__init__", init)
    return seen


def _gateway(tmp_path: Path, instrumentation: bool, exporter: InMemorySpanExporter) -> TestClient:
    provider = TracerProvider(resource=tracing.resource("gateway"))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = Settings(provider_url="http://llmsim.invalid", provider_timeout_seconds=5, data_dir=tmp_path,
                        instrumentation=instrumentation, user_hash_salt="s")
    return TestClient(create_app(settings, tracing=tracing.Tracing("gateway", provider, None)))


def test_gateway_call_is_a_server_span_holding_a_genai_client_span(tmp_path: Path, mocked_provider: list) -> None:
    exporter = InMemorySpanExporter()
    output = io.StringIO()
    with redirect_stdout(output), _gateway(tmp_path, True, exporter) as client:
        response = client.post("/v1/chat/completions", json=BODY)
        metrics = client.get("/metrics", headers={"Accept": "application/openmetrics-text"}).text
    assert response.status_code == 200, response.text
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"POST /v1/chat/completions", "chat sim-fast"}, set(spans)
    server, chat = spans["POST /v1/chat/completions"], spans["chat sim-fast"]
    assert server.parent is None and chat.parent.span_id == server.context.span_id
    assert chat.attributes["gen_ai.usage.input_tokens"] == 11 and chat.attributes["llm.department"] == "support"
    assert {key: chat.attributes[key] for key in (genai.OPERATION_NAME, genai.PROVIDER_NAME, genai.REQUEST_MODEL,
                                                  genai.RESPONSE_MODEL, genai.USAGE_OUTPUT_TOKENS)} == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "llmsim", "gen_ai.request.model": "sim-fast",
        "gen_ai.response.model": "sim-fast", "gen_ai.usage.output_tokens": 7}
    assert tuple(chat.attributes["gen_ai.response.finish_reasons"]) == ("stop",)
    assert not [s.name for s in spans.values() if "gen_ai.system" in s.attributes], "renamed in semconv 1.37"
    assert all("secret-user" not in str(v) for s in spans.values() for v in s.attributes.values())
    trace_id = format(chat.context.trace_id, "032x")
    sent = mocked_provider[0].headers["traceparent"]
    assert sent.split("-")[1:3] == [trace_id, format(chat.context.span_id, "016x")], "context sent to the provider"
    assert f'trace_id="{trace_id}"' in metrics, "the latency histogram keeps the trace id as an exemplar"
    lines = [json.loads(line) for line in output.getvalue().splitlines() if '"llm_call"' in line]
    assert [(line["trace_id"], line["span_id"]) for line in lines] == [(trace_id, format(chat.context.span_id,
                                                                                        "016x"))]


def test_genai_names_come_from_the_semconv_package_and_the_old_system_name_is_gone() -> None:
    assert (genai.PROVIDER_NAME, genai.RESPONSE_FINISH_REASONS) == ("gen_ai.provider.name",
                                                                     "gen_ai.response.finish_reasons")
    assert genai.DEPRECATED_SYSTEM == "gen_ai.system"
    assert tuple(int(p) for p in genai.SEMCONV_VERSION.split(".")) >= (1, 37, 0), genai.SEMCONV_VERSION
    assert genai.finish_reasons(REPLY) == ["stop"] and genai.finish_reasons({"choices": "x"}) == []
    sources = [Path(genai.__file__).parent / name for name in ("gateway/calls.py", "gateway/workflow.py",
                                                               "llmsim/app.py")]
    assert not [str(p) for p in sources if '"gen_ai.' in p.read_text()], "names come from stack/genai.py"


def test_llmsim_and_workflow_spans_follow_the_genai_conventions(tmp_path: Path, mocked_provider: list) -> None:
    """No span either service makes in-process carries gen_ai.system; both name the provider."""
    from stack.llmsim.app import create_app as create_llmsim

    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=tracing.resource("llmsim"))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    llmsim = create_llmsim(tracing=tracing.Tracing("llmsim", provider, None))
    with redirect_stdout(io.StringIO()), TestClient(llmsim) as client:
        assert client.post("/v1/chat/completions", json={k: BODY[k] for k in ("model", "messages")}).status_code == 200
    with redirect_stdout(io.StringIO()), _gateway(tmp_path, True, exporter) as client:
        assert client.post("/v1/agent/workflow", json={"question": "why?", "model": "sim-fast",
                                                       "attribution": BODY["attribution"]}).status_code == 200
    spans = exporter.get_finished_spans()
    generation = next(s for s in spans
                      if s.resource.attributes["service.name"] == "llmsim" and s.name == "generate sim-fast")
    assert generation.kind.name == "INTERNAL"
    assert generation.attributes["gen_ai.provider.name"] == "llmsim"
    assert generation.attributes["gen_ai.operation.name"] == "chat"
    assert tuple(generation.attributes["gen_ai.response.finish_reasons"]) in (("stop",), ("length",))
    agent = next(s for s in spans if s.name == "invoke_agent workflow")
    assert agent.attributes["gen_ai.provider.name"] == "llmsim" and agent.attributes["gen_ai.agent.name"] == "workflow"
    assert not [s.name for s in spans if "gen_ai.system" in s.attributes]
    assert len([s for s in spans if genai.OPERATION_NAME in s.attributes]) == 6  # llmsim chat, agent, retrieval, 3 chats


def test_instrumentation_off_switches_tracing_off_too(tmp_path: Path, mocked_provider: list) -> None:
    exporter = InMemorySpanExporter()
    output = io.StringIO()
    with redirect_stdout(output), _gateway(tmp_path, False, exporter) as client:
        assert client.post("/v1/chat/completions", json=BODY).status_code == 200
        metrics = client.get("/metrics", headers={"Accept": "application/openmetrics-text"}).text
    assert exporter.get_finished_spans() == ()
    assert "traceparent" not in mocked_provider[0].headers
    assert "trace_id" not in metrics and "trace_id" not in output.getvalue()


def test_server_span_comes_from_the_headers_only() -> None:
    """A caller in the same process does not make the server span its child: only a traceparent header does."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = FastAPI()

    @app.get("/x")
    async def x() -> dict:
        return {}

    tracing.instrument_fastapi(app, tracing.Tracing("t", provider, None), lean=True)
    tracer = provider.get_tracer("caller")
    with TestClient(app) as client, tracer.start_as_current_span("caller") as caller:
        client.get("/x")
        client.get("/x", headers=tracing.inject({}))
    servers = [s for s in exporter.get_finished_spans() if s.name == "GET /x"]
    assert [s.parent.span_id if s.parent else None for s in servers] == [None, caller.get_span_context().span_id]


def test_the_runner_starts_phoenix_offline_on_the_topology_address(tmp_path: Path) -> None:
    spec = services.phoenix_spec(tmp_path, "/usr/bin/python3")
    phoenix = topology.load().optional["phoenix"]
    assert spec.argv == ["/usr/bin/python3", str(services.PHOENIX_LAUNCHER)]
    assert (spec.env["PHOENIX_HOST"], spec.env["PHOENIX_PORT"]) == (phoenix.host, str(phoenix.port))
    assert spec.env["PHOENIX_TELEMETRY_ENABLED"] == spec.env["PHOENIX_ALLOW_EXTERNAL_RESOURCES"] == "false"
    assert spec.env["PHOENIX_WORKING_DIR"].startswith(str(tmp_path))
    assert "disabled" in services.PHOENIX_LAUNCHER.read_text(), "the launcher switches Phoenix's gRPC port off"


def test_services_export_to_the_trace_store_or_to_phoenix_when_it_runs_unless_you_chose(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    phoenix = topology.load().optional["phoenix"]
    store = topology.load().services["tracestore"]
    assert services.trace_export_env(traces=False) == {"OTEL_EXPORTER_OTLP_ENDPOINT": store.url}
    assert services.trace_export_env(traces=True) == {"OTEL_EXPORTER_OTLP_ENDPOINT": phoenix.url}
    plain = {spec.name: spec for spec in services.specs("classroom", Path("/tmp/run"), notebooks=False)}
    assert plain["tracestore"].health_url == store.url + "/health", "plain `make up` starts the trace store"
    assert all(tracing.exporter_endpoint(services.child_env(plain[name])) == store.url + "/v1/traces"
               for name in services.TRACED_SERVICES)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert services.trace_export_env(traces=True) == {}, "your own exporter setting wins"
    assert services.trace_export_env(traces=False) == {}, "your own exporter setting wins"
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert services.trace_export_env(traces=False) == {}, "OTEL_TRACES_EXPORTER=none keeps spans from the store"
    names = [spec.name for spec in services.specs("classroom", Path("/tmp/run"), notebooks=False, traces=True)]
    assert names[-1] == "phoenix"


def test_status_note_says_when_no_backend_runs(tmp_path: Path) -> None:
    (tmp_path / control.STATE_FILE).write_text(json.dumps({"profile": "classroom", "traces": False,
                                                           "trace_endpoint": None}))
    note = control.traces_note(tmp_path)
    assert "no trace backend is running" in note and "make up TRACES=1" in note


def test_status_note_points_at_the_trace_store_when_spans_go_there(tmp_path: Path) -> None:
    store = topology.load().services["tracestore"]
    (tmp_path / control.STATE_FILE).write_text(json.dumps({"profile": "classroom", "traces": False,
                                                           "trace_endpoint": store.url + "/v1/traces"}))
    note = control.traces_note(tmp_path)
    assert "built-in trace store" in note and f"{store.url}/api/traces" in note and "make up TRACES=1" in note


def test_the_v4_check_asks_the_backend_the_stack_sends_to_first_and_says_where_spans_went() -> None:
    store = topology.load().services["tracestore"]
    phoenix = topology.load().optional["phoenix"]
    asked = trace_backends.to_ask(phoenix.url + "/v1/traces")
    assert asked[0].service == phoenix and asked[0].label == f"Phoenix at {phoenix.url}"
    assert trace_backends.to_ask(store.url + "/v1/traces")[0].label == f"the built-in trace store at {store.url}"
    assert "re-run the exercise 3 batch cell" in trace_backends.hint(store.url + "/v1/traces")
    own = trace_backends.hint("http://127.0.0.1:4318/v1/traces")
    assert "http://127.0.0.1:4318/v1/traces" in own and "unset it" in own
    assert "sends its spans nowhere" in trace_backends.hint(None)


def test_the_v4_live_check_gives_no_points_for_an_untouched_exercise_3(tmp_path: Path) -> None:
    """The exercise 3 batch cell is locked and writes the trace file for everyone: the points need exercise 3 done."""
    v4 = course.select("v4")[0]
    (tmp_path / "student_v4_trace.json").write_text(json.dumps({"request_id": "r", "trace_id": "ab" * 16}))
    shutil.copy(course.LABS_DIR / v4.id / f"{v4.id}.ipynb", tmp_path)
    [released] = stackchecks.run(v4, tmp_path)
    assert released.points == 0 and released.message.startswith("not attempted yet: implement exercise 3"), released
    shutil.copy(v4.source / f"{v4.id}.ipynb", tmp_path)
    [solved] = stackchecks.run(v4, tmp_path)
    assert "not attempted" not in solved.message, solved
