"""HTTP surface of the gateway: chat completions, the three-step agent workflow, health, readiness, metrics."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from opentelemetry import trace
from prometheus_client import disable_created_metrics

from stack import catalog as catalog_module
from stack import tracing as tracing_module
from stack.gateway import faults, health as health_module, logs
from stack.gateway.budget import DepartmentBudgets, OverBudget
from stack.gateway.calls import Caller, CallRecorder
from stack.gateway.chat import ChatCompletions
from stack.gateway.checks import Rejection, require_attribution, require_max_tokens, require_model, require_prompt_size
from stack.gateway.metrics import GatewayMetrics
from stack.gateway.provider import ProviderClient, ProviderError
from stack.gateway.response_cache import ResponseCache
from stack.gateway.routing import OPENED, TIER_NAMES, Router
from stack.gateway.schemas import Attribution, ChatRequest, FeedbackRequest, Message, WorkflowRequest
from stack.gateway.settings import Settings
from stack.gateway.store import AttributionStore, FeedbackExists, StoreUnavailable
from stack.gateway.workflow import run_workflow
from stack.crash_guard import request_id_of
from stack.web import add_metrics_route, error_body, install_error_handlers


@dataclass
class Gateway:
    settings: Settings
    metrics: GatewayMetrics
    provider: ProviderClient
    store: AttributionStore
    recorder: CallRecorder
    chat: ChatCompletions
    budgets: DepartmentBudgets


def create_app(settings: Settings | None = None, tracing: tracing_module.Tracing | None = None) -> FastAPI:
    """`tracing`: where spans go (tests pass an in-memory exporter); default from the environment (stack/tracing.py).
    GATEWAY_INSTRUMENTATION=off switches metrics and tracing off together."""
    settings = settings or Settings.from_env()
    catalog = catalog_module.load()
    logs.configure()
    log = logs.get_logger()
    disable_created_metrics()
    metrics = GatewayMetrics(catalog, enabled=settings.instrumentation)
    if tracing is None or not settings.instrumentation:
        tracing = tracing_module.setup("gateway", enabled=settings.instrumentation)
    tracer = tracing.tracer("stack.gateway")
    state: dict[str, Gateway] = {}
    response_cache = ResponseCache(catalog.response_cache)
    metrics.cache_entries.set_function(lambda: len(response_cache))

    def failing(model: str) -> bool:
        gateway = state.get("gateway")
        outcomes = gateway.recorder.model_outcomes if gateway else {}
        return model in outcomes and outcomes[model].problem() is not None

    def breaker_changed(model: str, old: str, new: str) -> None:
        tier = router.tier(failing)
        metrics.record_breaker(model, new)
        log_breaker = log.warning if new == OPENED else log.info
        log_breaker("circuit_breaker", model=model, from_state=old, to_state=new, tier=tier,
                    tier_name=TIER_NAMES[tier], open_breakers=router.open_breakers())

    router = Router(catalog, on_transition=breaker_changed)
    if metrics.enabled:
        metrics.degradation_tier.set_function(lambda: router.tier(failing))

    @asynccontextmanager
    async def lifespan(application: FastAPI):
        provider = ProviderClient(settings.provider_url, settings.provider_timeout_seconds)
        provider.on_ratelimit = metrics.record_ratelimit
        store = AttributionStore(settings.data_dir / "attribution.db")
        budgets.rebuild(store)  # month-to-date spend from the store's rows of this month
        recorder = CallRecorder(provider, metrics, store, settings.salt(), tracer, budgets=budgets)
        chat_completions = ChatCompletions(recorder, response_cache, knobs, router, budgets)
        state["gateway"] = application.state.gateway = Gateway(settings, metrics, provider, store, recorder,
                                                               chat_completions, budgets)
        log.info("gateway_started", provider_url=settings.provider_url, store=str(store.path),
                 instrumentation=settings.instrumentation, tracing=tracing.describe())
        yield
        await provider.aclose()
        store.close()
        tracing.shutdown()

    def reject(message: str, reason: str, request_id: str | None = None, **fields: object) -> None:
        metrics.record_rejection(reason)
        log.warning("request_rejected", reason=reason, message=message, request_id=request_id, **fields)

    def on_invalid_body(message: str, fields: list[str]) -> None:
        reject(message, "invalid_body", invalid_fields=fields)

    app = FastAPI(title="LLM gateway", version="1.0", lifespan=lifespan)
    install_error_handlers(app, "gateway", on_invalid_body=on_invalid_body)
    # Loopback-only fault knobs for the failure scenarios (stack/faults.py); /metrics renders through them.
    knobs = faults.install(app, metrics.registry, catalog.model_names)
    add_metrics_route(app, knobs.exposed(metrics.registry))
    budgets = DepartmentBudgets(catalog.monthly_budgets, catalog.cheapest_model, prespent=knobs.budget_spent_usd,
                                on_action=metrics.record_budget_action)
    metrics.watch_budgets(budgets.budgets, budgets.status)

    @app.exception_handler(Rejection)
    async def _rejected(request: Request, exc: Rejection) -> JSONResponse:
        reject(exc.detail["message"], exc.reason, path=request.url.path)
        return JSONResponse(status_code=exc.status_code, content={"error": exc.detail})

    @app.exception_handler(StoreUnavailable)
    async def _not_booked(request: Request, exc: StoreUnavailable) -> JSONResponse:
        request_id = request_id_of(request.scope)
        log.error("call_not_booked", request_id=request_id, store=str(exc.path), error=str(exc))
        message = f"the call could not be booked, so its answer is withheld: {exc}; nothing was counted"
        return JSONResponse(status_code=503, headers={"X-Request-ID": request_id},
                            content=error_body(503, message, store=str(exc.path), request_id=request_id))

    @app.exception_handler(OverBudget)
    async def _over_budget(request: Request, exc: OverBudget) -> JSONResponse:
        return JSONResponse(status_code=exc.status, headers={"X-Request-ID": exc.request_id},
                            content={"error": exc.error})

    def caller_for(request: Request, attribution: Attribution | None, synthetic: bool) -> Caller:
        values = require_attribution(attribution)
        caller = Caller(request_id=request_id_of(request.scope), synthetic=synthetic, **values)
        server_span = trace.get_current_span()  # the request's SERVER span (a no-op one when tracing is off)
        if server_span.is_recording():  # who pays is on the provider-call spans; the root names the request
            server_span.set_attribute("llm.request_id", caller.request_id)
        return caller

    def provider_failure(error: ProviderError, caller: Caller, step: str) -> JSONResponse:
        headers = {"X-Request-ID": caller.request_id}
        if error.retry_after:
            headers["Retry-After"] = error.retry_after
        body = error_body(error.http_status, f"provider call failed at step '{step}': {error}",
                          error_type=error.error_type, request_id=caller.request_id, step=step)
        return JSONResponse(status_code=error.http_status, content=body, headers=headers)

    @app.get("/")
    async def index() -> dict:
        return {
            "service": "llm-gateway",
            "endpoints": ["POST /v1/chat/completions", "POST /v1/agent/workflow", "POST /v1/feedback", "GET /health",
                          "GET /health/detailed",
                          "GET /ready",
                          "GET /metrics"],
            "models": catalog.model_names,
        }

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/health/detailed")
    async def health_detailed() -> JSONResponse:
        """One entry per dependency and an overall ok / degraded / down (HTTP 200 / 200 / 503); definitions in
        stack/gateway/health.py. Answers within 2 s whatever the dependencies do, never a 500."""
        gateway = state["gateway"]
        probe: dict[str, tuple[str | None, float]] = {}
        probe_lock = asyncio.Lock()

        async def provider_health() -> tuple[str | None, float]:
            async with probe_lock:  # one /health probe shared by every model's entry
                if "result" not in probe:
                    probe["result"] = await gateway.provider.probe(health_module.CHECK_TIMEOUT_SECONDS)
                return probe["result"]

        def provider_check(model: str):  # noqa: ANN202
            async def check() -> health_module.Check:
                problem, latency = await provider_health()
                latency_ms = round(latency * 1000, 1)
                if problem:
                    return health_module.Check(health_module.DOWN, problem, latency_ms)
                if router.states.get(model) == OPENED:
                    return health_module.Check(health_module.DOWN, "reachable, but its circuit breaker is open: "
                                               "calls go to its fallbacks", latency_ms)
                calls_problem = gateway.recorder.model_outcomes[model].problem() \
                    if model in gateway.recorder.model_outcomes else None
                if calls_problem:
                    return health_module.Check(health_module.DOWN, f"reachable, but {calls_problem}", latency_ms)
                if latency > health_module.SLOW_PROVIDER_SECONDS:
                    return health_module.Check(health_module.DEGRADED, "reachable but slow to answer /health",
                                               latency_ms)
                return health_module.Check(health_module.OK, "reachable; recent calls mostly succeed", latency_ms)
            return check

        async def store_check() -> health_module.Check:
            writable, rows = gateway.store.health()
            if not writable:
                return health_module.Check(health_module.DOWN, f"{gateway.store.path} refuses writes: calls "
                                           "cannot be booked and are answered 503", rows=rows)
            return health_module.Check(health_module.OK, f"{gateway.store.path} writable", rows=rows)

        async def exporter_check() -> health_module.Check:
            if not tracing.enabled:
                return health_module.Check(health_module.OK, "tracing off")
            if tracing.endpoint is None:
                return health_module.Check(health_module.OK, "not configured: trace ids only, no spans exported")
            return health_module.Check(health_module.OK, "configured: spans exported by OTLP/HTTP",
                                       endpoint=tracing.endpoint)

        async def cache_check() -> health_module.Check:
            ratio = response_cache.hit_ratio()
            shown = "no lookups yet" if ratio is None else f"hit ratio {ratio:.1%} since start"
            return health_module.Check(health_module.OK, f"in memory, at most {response_cache.max_entries} answers "
                                       f"for {response_cache.ttl_seconds:g} s each; {shown}",
                                       entries=len(response_cache),
                                       hit_ratio=None if ratio is None else round(ratio, 4))

        checks = {f"provider:{model}": provider_check(model) for model in catalog.model_names}
        checks["store"] = store_check
        checks["trace_exporter"] = exporter_check
        checks["cache"] = cache_check
        results = await health_module.run(checks)
        status = health_module.overall(results)
        return JSONResponse(status_code=503 if status == health_module.DOWN else 200,
                            content={"status": status, "checks": {n: c.as_dict() for n, c in results.items()}})

    @app.get("/ready")
    async def ready() -> JSONResponse:
        gateway = state["gateway"]
        reasons = []
        provider_problem = await gateway.provider.reachable()
        if provider_problem:
            reasons.append(provider_problem)
        calls_problem = gateway.recorder.outcomes.problem()
        if calls_problem:
            reasons.append(calls_problem)
        if not gateway.store.writable():
            reasons.append(f"attribution store {gateway.store.path} is not writable")
        if reasons:
            return JSONResponse(status_code=503, content={"ready": False, "reasons": reasons})
        return JSONResponse({"ready": True, "reasons": []})

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest, request: Request) -> Response:
        """`"stream": true` answers server-sent events; `"seed"` makes a request cacheable (stack/gateway/chat.py)."""
        caller = caller_for(request, body.attribution, body.synthetic)
        require_model(body.model, catalog)
        require_prompt_size(body.messages, catalog)
        require_max_tokens(body.max_tokens, catalog)
        knobs.observe_request(caller.request_id, body.model)
        try:
            return await state["gateway"].chat.answer(caller, body)
        except ProviderError as error:
            return provider_failure(error, caller, "chat")

    @app.post("/v1/agent/workflow")
    async def workflow(body: WorkflowRequest, request: Request) -> JSONResponse:
        caller = caller_for(request, body.attribution, body.synthetic)
        require_model(body.model, catalog)
        require_prompt_size([Message(role="user", content=body.question)], catalog)
        knobs.observe_request(caller.request_id, body.model)
        decision = state["gateway"].budgets.admit(caller.department, body.model, caller.request_id)
        try:
            outcome = await run_workflow(state["gateway"].recorder, router, caller, body.question,
                                         decision.model)
        except ProviderError as error:
            return provider_failure(error, caller, error.step or "workflow")
        return JSONResponse({**outcome, **decision.report()},
                            headers={"X-Request-ID": caller.request_id, **decision.headers()})

    @app.post("/v1/feedback")
    async def feedback(body: FeedbackRequest) -> JSONResponse:
        """One rating per answered request, stored beside its rows (table llm_feedback) and counted by the model
        that served it."""
        gateway = state["gateway"]
        model = gateway.store.served_model(body.request_id)
        if model is None:
            return JSONResponse(status_code=404, content=error_body(
                404, f"no answered request with request_id {body.request_id!r}: rate the X-Request-ID of a request "
                     "the gateway answered", request_id=body.request_id))
        try:
            gateway.store.add_feedback(body.request_id, body.rating, body.comment)
        except FeedbackExists:
            return JSONResponse(status_code=409, content=error_body(
                409, f"request {body.request_id!r} already has its rating; each answer takes one",
                request_id=body.request_id))
        metrics.record_feedback(model, body.rating)
        log.info("feedback", request_id=body.request_id, model=model, rating=body.rating,
                 comment_chars=len(body.comment or ""))
        return JSONResponse({"request_id": body.request_id, "model": model, "rating": body.rating})

    tracing_module.instrument_fastapi(app, tracing, lean=True)  # the hot path: see docs/performance.md
    return app


app = create_app()
