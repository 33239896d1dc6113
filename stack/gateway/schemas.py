"""Request bodies the gateway accepts."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from stack import catalog

ATTRIBUTION_FIELDS = ("user_id", "department", "application")
MAX_MESSAGES = catalog.load().max_messages_per_request


class Message(BaseModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: str


class Attribution(BaseModel):
    """Who pays for a call. Checked by the gateway itself so a missing field is a 400 that names it."""

    user_id: str | None = None
    department: str | None = None
    application: str | None = None


class ChatRequest(BaseModel):
    model: str
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int | None = Field(None, ge=1)
    seed: int | None = None
    attribution: Attribution | None = None
    synthetic: bool = Field(False, description="load-generator traffic, kept apart in reports")


class WorkflowRequest(BaseModel):
    question: str = Field(min_length=1)
    model: str = Field("sim-balanced", description="model for the answer step; classify and format use sim-fast")
    attribution: Attribution | None = None
    synthetic: bool = False
