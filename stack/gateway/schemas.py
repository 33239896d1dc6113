"""Request bodies the gateway accepts."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationInfo, field_validator

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


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt option is a 422 naming it

    include_usage: StrictBool = False


class CacheControl(BaseModel):
    """`"cache": {"no-cache": true}` skips the response cache for one request (LiteLLM's spelling)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    no_cache: StrictBool = Field(False, alias="no-cache")


class ChatRequest(BaseModel):
    model: str
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int | None = Field(None, ge=1)
    seed: int | None = Field(None, description="deterministic: answered from the response "
                                                                   "cache when the same request was answered recently")
    stream: StrictBool = Field(False, description="answer as server-sent events (OpenAI chunks, then [DONE])")
    stream_options: StreamOptions | None = None
    cache: CacheControl | None = None
    attribution: Attribution | None = None
    synthetic: bool = Field(False, description="load-generator traffic, kept apart in reports")

    @field_validator("stream_options")
    @classmethod
    def _only_when_streaming(cls, value: StreamOptions | None, info: ValidationInfo) -> StreamOptions | None:
        if value is not None and not info.data.get("stream"):
            raise ValueError("stream_options is only allowed when stream is true")
        return value


class WorkflowRequest(BaseModel):
    question: str = Field(min_length=1)
    model: str = Field("sim-balanced", description="model for the answer step; classify and format use sim-fast")
    attribution: Attribution | None = None
    synthetic: bool = False
    stream: StrictBool = False

    @field_validator("stream")
    @classmethod
    def _not_streamed(cls, value: bool) -> bool:
        if value:
            raise ValueError("the agent workflow cannot stream: its answer is built from three provider calls and "
                             "returned whole; leave stream out, or stream a single call on /v1/chat/completions")
        return value


class FeedbackRequest(BaseModel):
    """POST /v1/feedback: the caller's rating of one answer (the X-Request-ID of the request it answered)."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=128)
    rating: Literal["up", "down"]
    comment: str | None = Field(None, max_length=2000)
