"""The first look every service takes at a request body, before any handler sees it.

A body larger than the service's limit is refused with 413 (from its Content-Length when it has one, else as soon as
the bytes read pass the limit, so a 20 MB body is never read in full). A body that is not UTF-8, or whose JSON holds a
lone UTF-16 surrogate (`"\\ud800"`: valid JSON, invalid Unicode, which SQLite, the logs and every encoder refuse
later), or nests deeper than the limit, is refused with 400/422 naming the field. The checked body is then handed
to the application unchanged."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# A JSON escape of a UTF-16 surrogate; only bodies holding one are parsed here (valid pairs, e.g. an escaped emoji,
# pass after the parse), so the common case costs one regex scan.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str
    fields: list[str]
    extra: dict[str, object] = field(default_factory=dict)


def _path(parts: tuple[object, ...]) -> str:
    return ".".join(str(part) for part in parts) or "body"


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")


def find_invalid_text(value: object, max_depth: int) -> Refusal | None:
    """The first string (value or key) holding a lone surrogate, or the first container nested too deep."""
    stack: list[tuple[object, tuple[object, ...]]] = [(value, ())]
    while stack:
        item, parts = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return _surrogate_refusal(_path(parts))
            continue
        if isinstance(item, (dict, list)) and len(parts) >= max_depth:
            where = _path(parts)
            return Refusal(422, f"{where}: nested deeper than {max_depth} levels; the limit is {max_depth}",
                           [where], {"limit": max_depth})
        if isinstance(item, dict):
            for key, child in item.items():
                if _SURROGATE.search(key):
                    return _surrogate_refusal(_path((*parts, _printable(key))) + " (a key)")
                stack.append((child, (*parts, key)))
        elif isinstance(item, list):
            stack.extend((child, (*parts, index)) for index, child in enumerate(item))
    return None


def _surrogate_refusal(where: str) -> Refusal:
    return Refusal(422, f"{where}: invalid Unicode (a lone UTF-16 surrogate such as \\ud800); send valid UTF-8 text",
                   [where])


def _probably_too_deep(raw: bytes, max_depth: int) -> bool:
    """Cheap pre-check: a body needs at least max_depth openers to nest that deep."""
    return raw.count(b"[") + raw.count(b"{") > max_depth


def check_body(raw: bytes, max_depth: int) -> Refusal | None:
    """None when the body may go on to the application (which still reports bad JSON and wrong types itself)."""
    if not raw:
        return None
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return Refusal(400, f"body is not valid UTF-8 (byte {error.start}); send UTF-8 JSON", ["body"])
    if not _SURROGATE_ESCAPE.search(raw) and not _probably_too_deep(raw, max_depth):
        return None
    try:
        parsed = json.loads(raw)
    except RecursionError:
        return Refusal(422, f"body: nested deeper than {max_depth} levels; the limit is {max_depth}", ["body"],
                       {"limit": max_depth})
    except ValueError:
        return None  # not JSON: the application answers with its own parse error
    return find_invalid_text(parsed, max_depth)


def _too_large(size: int | str, limit: int) -> Refusal:
    return Refusal(413, f"body is {size} bytes; the limit is {limit} bytes", ["body"], {"limit_bytes": limit})


OnRefused = Callable[[str, list[str]], None]


class RequestGuard:
    """ASGI middleware applying check_body (and the size limit) to every request that has a body."""

    def __init__(self, app: ASGIApp, respond: Callable[[Refusal], ASGIApp], max_body_bytes: int, max_depth: int,
                 on_refused: OnRefused | None = None, text_bodies: bool = True) -> None:
        self.app = app
        self.text_bodies = text_bodies  # False: bodies are binary (OTLP protobuf), only their size is checked
        self.respond = respond  # turns a Refusal into the service's error response
        self.max_body_bytes = max_body_bytes
        self.max_depth = max_depth
        self.on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        refusal, raw = await self._read(scope, receive)
        if refusal is None and self.text_bodies:
            refusal = check_body(raw, self.max_depth)
        if refusal is not None:
            if self.on_refused:
                self.on_refused(refusal.message, refusal.fields)
            await self.respond(refusal)(scope, receive, send)
            return
        await self.app(scope, _replay(raw, receive), send)

    async def _read(self, scope: Scope, receive: Receive) -> tuple[Refusal | None, bytes]:
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return _too_large(int(declared), self.max_body_bytes), b""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return _too_large(f"more than {self.max_body_bytes}", self.max_body_bytes), b""
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return None, b"".join(chunks)


def _replay(raw: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return await receive()

    return replay
