"""The last line of defence of every service: an exception no handler expected still gets a JSON answer.

Starlette's own catch-all answers, then re-raises: uvicorn logs the traceback and closes the connection, so the next
request a client sends on it fails too. This middleware answers instead (500 with the request id, no traceback),
keeps the connection open, and logs one line with the request id, the exception and where it was raised."""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)
REQUEST_ID_KEY = "request_id"


def request_id_of(scope: Scope) -> str:
    """The id the guard gave this request (a new one outside the guard, e.g. in a unit test of a route)."""
    state = scope.setdefault("state", {})
    return state.setdefault(REQUEST_ID_KEY, uuid.uuid4().hex)


def _where(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "unknown"


class CrashGuard:
    def __init__(self, app: ASGIApp, respond: Callable[[str], ASGIApp]) -> None:
        self.app = app
        self.respond = respond  # the service's error response for a request id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as error:  # noqa: BLE001 - answering every exception is this class's job
            log.error("unhandled_error request_id=%s method=%s path=%s error=%s: %s at=%s", request_id,
                      scope.get("method"), scope.get("path"), type(error).__name__,
                      str(error).replace("\n", " ")[:300], _where(error))
            if started:  # half an answer is out: only closing the connection can tell the client
                raise
            await self.respond(request_id)(scope, receive, send)
