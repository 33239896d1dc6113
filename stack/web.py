"""Error responses shared by the stack's HTTP services: every user mistake gets a status and a sentence."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import anyio

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import disable_created_metrics
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from starlette.exceptions import HTTPException as StarletteHTTPException

from stack import catalog
from stack.crash_guard import CrashGuard
from stack.request_guard import Refusal, RequestGuard


class ClosingStreamingResponse(StreamingResponse):
    """A stream that is closed however the response ends - finished, failed, or the client hung up (whatever the
    server's ASGI version) - so the generator's own `finally` runs at once, then `on_close`."""

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], Awaitable[None]],
                 **kwargs: object) -> None:
        super().__init__(content, **kwargs)  # type: ignore[arg-type]
        self._content = content
        self._on_close = on_close

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001 (ASGI)
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._content.aclose()  # type: ignore[attr-defined]
                await self._on_close()


def describe_validation_error(error: dict) -> str:
    if error.get("type") == "json_invalid":
        return f"body is not valid JSON ({error.get('ctx', {}).get('error', 'parse error')}); send a JSON object"
    location = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
    return f"{location}: {error.get('msg', 'invalid value')}"


def problem(status: int, message: str, **extra: object) -> dict:
    """The inside of an error response: status, a sentence for people, and fields for programs."""
    return {"status": status, "message": message, **extra}


def error_body(status: int, message: str, **extra: object) -> dict:
    return {"error": problem(status, message, **extra)}


def refusal_response(refusal: Refusal) -> JSONResponse:
    return JSONResponse(status_code=refusal.status,
                        content=error_body(refusal.status, refusal.message, fields=refusal.fields, **refusal.extra))


def crash_response(request_id: str) -> JSONResponse:
    message = f"internal error while handling request {request_id}; nothing is wrong with the request itself"
    return JSONResponse(status_code=500, content=error_body(500, message, request_id=request_id),
                        headers={"X-Request-ID": request_id})


def install_error_handlers(app: FastAPI, service: str,
                           on_invalid_body: Callable[[str, list[str]], None] | None = None,
                           text_bodies: bool = True) -> None:
    """Error responses for `service` (a key of the catalog's limits.max_body_bytes), and its request guard: every body
    is bounded and (unless text_bodies=False, for a service that receives binary bodies) checked for invalid text
    before a handler runs (stack/request_guard.py); an unexpected exception is a JSON 500 with the request id that
    keeps the connection open (stack/crash_guard.py)."""
    limits = catalog.load()
    app.add_middleware(RequestGuard, respond=refusal_response, max_body_bytes=limits.max_body_bytes[service],
                       max_depth=limits.max_json_depth, on_refused=on_invalid_body, text_bodies=text_bodies)

    @app.exception_handler(RequestValidationError)
    async def _invalid_body(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [describe_validation_error(dict(e)) for e in exc.errors()]
        message = "invalid request body: " + "; ".join(problems)
        fields = [".".join(str(p) for p in e.get("loc", ()) if p != "body") for e in exc.errors()]
        if on_invalid_body:
            on_invalid_body(message, fields)
        return JSONResponse(status_code=422, content=error_body(422, message, fields=fields))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.detail, dict):
            return JSONResponse(status_code=exc.status_code, content={"error": exc.detail}, headers=exc.headers)
        return JSONResponse(
            status_code=exc.status_code, content=error_body(exc.status_code, str(exc.detail)), headers=exc.headers
        )

    # Outermost of the service's own middleware: an exception from a handler or a guard is answered here.
    app.add_middleware(CrashGuard, respond=crash_response)


# An idle keep-alive connection must outlive every client's pool expiry (httpx: 5 s; Go's net/http in Prometheus and
# Alertmanager: 90 s). With uvicorn's own 5 s the server can close a connection at the instant a client reuses it,
# and that request fails with a ReadError.
KEEP_ALIVE_SECONDS = 120
CLIENT_KEEPALIVE_EXPIRY_SECONDS = 30.0


def serve(app_path: str, port: int, host: str, factory: bool = False) -> None:
    """Run a service with uvicorn on the loopback address; access logs off (services log one line each).
    factory=True: `app_path` names a function that builds the app (nothing is built when its module is imported)."""
    import uvicorn

    uvicorn.run(app_path, host=host, port=port, access_log=False, log_level="warning", lifespan="on",
                timeout_keep_alive=KEEP_ALIVE_SECONDS, factory=factory)


def add_metrics_route(
    app: FastAPI, registry: CollectorRegistry, before_scrape: Callable[[], None] | None = None
) -> None:
    """Serve /metrics, in OpenMetrics when the scraper asks for it (Prometheus does; exemplars need it).

    Every service drops the `_created` twin of each counter: it doubles the series and no rule reads it."""
    disable_created_metrics()

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        if before_scrape:
            before_scrape()
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(content=encoder(registry), media_type=content_type)
