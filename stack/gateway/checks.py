"""Checks at the gateway's boundary. Each failure is an HTTP error that says what is wrong and how to fix it."""

from __future__ import annotations

from fastapi import HTTPException

from stack.catalog import Catalog
from stack.gateway.schemas import ATTRIBUTION_FIELDS, Attribution, Message
from stack.tokens import count_prompt_tokens
from stack.web import problem

MAX_ATTRIBUTION_VALUE_CHARS = 128


class Rejection(HTTPException):
    def __init__(self, status: int, reason: str, message: str, **extra: object) -> None:
        super().__init__(status, problem(status, message, reason=reason, **extra))
        self.reason = reason


def require_attribution(attribution: Attribution | None) -> dict[str, str]:
    values = {name: (getattr(attribution, name, None) or "").strip() for name in ATTRIBUTION_FIELDS}
    missing = [f"attribution.{name}" for name, value in values.items() if not value]
    if missing:
        raise Rejection(
            400, "missing_attribution",
            f"missing attribution: {', '.join(missing)} required; every call is booked to a user, a department "
            'and an application, e.g. "attribution": {"user_id": "u-42", "department": "support", '
            '"application": "chatbot"}',
            missing=missing,
        )
    too_long = [f"attribution.{name}" for name, value in values.items() if len(value) > MAX_ATTRIBUTION_VALUE_CHARS]
    if too_long:
        raise Rejection(400, "missing_attribution",
                        f"{', '.join(too_long)} longer than {MAX_ATTRIBUTION_VALUE_CHARS} characters",
                        fields=too_long)
    return values


def require_model(model: str, catalog: Catalog) -> None:
    if model not in catalog.models:
        raise Rejection(400, "unknown_model",
                        f"unknown model {model!r}; known models: {', '.join(catalog.model_names)}",
                        known_models=catalog.model_names)


def require_prompt_size(messages: list[Message], catalog: Catalog) -> None:
    """Bounded in characters (what a person can shorten) and in tokens as the provider bills them (which also
    bounds many short or empty messages)."""
    size = sum(len(m.content) for m in messages)
    if size > catalog.max_prompt_chars:
        raise Rejection(413, "prompt_too_large",
                        f"messages: prompt is {size} characters; the limit is {catalog.max_prompt_chars}. "
                        "Shorten or split it.",
                        fields=["messages"], prompt_chars=size, limit_chars=catalog.max_prompt_chars)
    tokens = count_prompt_tokens(m.content for m in messages)
    if tokens > catalog.max_prompt_tokens:
        raise Rejection(413, "prompt_too_large",
                        f"messages: prompt is {tokens} tokens ({len(messages)} messages); the limit is "
                        f"{catalog.max_prompt_tokens} tokens. Send fewer or shorter messages.",
                        fields=["messages"], prompt_tokens=tokens, limit_tokens=catalog.max_prompt_tokens)


def require_max_tokens(max_tokens: int | None, catalog: Catalog) -> None:
    if max_tokens is not None and max_tokens > catalog.max_output_tokens:
        raise Rejection(400, "invalid_body",
                        f"max_tokens is {max_tokens}; the limit is {catalog.max_output_tokens}",
                        fields=["max_tokens"])
