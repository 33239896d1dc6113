"""One streamed provider call: opened before the route answers (a provider error is still a plain JSON error with its
status), then relayed chunk by chunk to the client and booked exactly once, however it ends:

- completed: tokens, cached tokens and cost from the final usage chunk (the gateway always asks the provider for
  it), booked before the client receives `data: [DONE]`;
- the client hung up: booked with finish_reason `cancelled` and the tokens received so far (counted with
  stack/tokens.py, the provider's own rule, since no usage arrived), and counted in llm_client_disconnects_total;
- the provider failed mid-stream: booked as an error; the client gets an error event (no [DONE]).

Time to first token and time per output token are measured here (definitions in stack/gateway/streaming.py); the
span `chat {model}` gets a `llm.first_token` event when the first content chunk arrives and
gen_ai.response.time_to_first_chunk when it ends."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import anyio
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from stack import catalog as catalog_module
from stack import genai, tracing
from stack.gateway.calls import Caller, CallRecorder, Outcome, mark_failed, reply_attributes, request_attributes
from stack.gateway.logs import get_logger
from stack.gateway.provider import ProviderError, ProviderStream
from stack.gateway.response_cache import CachedAnswer
from stack.gateway.store import StoreUnavailable
from stack.gateway.streaming import DONE, StreamTally, is_usage_only, sse, sse_error
from stack.web import ClosingStreamingResponse
from stack.tokens import count_prompt_tokens, count_text_tokens

FIRST_TOKEN_EVENT = "llm.first_token"
CANCELLED = "cancelled"


class StreamedCall:
    def __init__(self, recorder: CallRecorder, caller: Caller, step: str, payload: dict, span: trace.Span,
                 started: float, upstream: ProviderStream, requested_model: str | None = None) -> None:
        self.messages: list[dict] = payload["messages"]
        self.recorder, self.caller, self.step, self.span = recorder, caller, step, span
        self.model: str = payload["model"]
        self.prompt_contents = [m.get("content") for m in payload["messages"]]
        self.started = started
        self.upstream = upstream
        self.booked = False
        self.requested_model = requested_model

    async def relay(self, include_usage: bool,
                    on_complete: Callable[[CachedAnswer], None] | None = None) -> AsyncIterator[bytes]:
        """The client's events. `include_usage`: pass the usage chunk on (the client asked for it).
        `on_complete`: given the answer when the stream completed and was booked (the response cache keeps it)."""
        tally = StreamTally(self.started)
        try:
            try:
                async for event in self.upstream.events():
                    first = tally.first_chunk_at is None
                    if tally.observe(event.chunk, time.perf_counter()) and first and self.span.is_recording():
                        self.span.add_event(FIRST_TOKEN_EVENT)
                    if is_usage_only(event.chunk) and not include_usage:
                        continue
                    yield sse(event.data)
            except ProviderError as error:
                self._finish(tally, error=error)
                yield sse_error(f"the provider stream failed: {error}", error.error_type, self.caller.request_id)
                return
            answer = self._finish(tally)
            if answer is None:
                yield sse_error("the call could not be booked (the attribution store refused the row); nothing was "
                                "counted", "not_booked", self.caller.request_id)
                return
            if on_complete is not None:
                on_complete(answer)
            yield DONE
        finally:
            if not self.booked:  # the client hung up (the server closed this generator at a yield or an await)
                self._finish(tally, cancelled=True)
            with anyio.CancelScope(shield=True):
                await self.upstream.aclose()

    async def close(self) -> None:
        """After the response ended however it did: a stream whose relay never ran (the client hung up before the
        first byte) is booked as cancelled; the provider's stream is closed. Idempotent."""
        if not self.booked:
            self._finish(StreamTally(self.started), cancelled=True)
        with anyio.CancelScope(shield=True):
            await self.upstream.aclose()

    def _finish(self, tally: StreamTally, error: ProviderError | None = None,
                cancelled: bool = False) -> CachedAnswer | None:
        """Book the call (once). Returns the answer as the cache would keep it, None when the store refused the row
        (logged; nothing counted, as for a call that is not streamed)."""
        self.booked = True
        duration = time.perf_counter() - self.started
        usage = tally.usage
        if usage is not None:
            input_tokens, output_tokens, cached = usage.input_tokens, usage.output_tokens, usage.cached_input_tokens
        else:
            input_tokens = count_prompt_tokens(self.prompt_contents)
            output_tokens, cached = count_text_tokens(tally.text), 0
        delivered = bool(tally.parts) or usage is not None
        if not delivered:  # nothing reached the client: nothing billed, as for a failed call that is not streamed
            input_tokens = output_tokens = cached = 0
        cost = catalog_module.cost_usd(self.model, input_tokens, output_tokens, cached)
        finish_reason = CANCELLED if cancelled else (None if error else tally.finish_reason)
        outcome = Outcome(
            duration, input_tokens, output_tokens, cached, cost, error=error, finish_reason=finish_reason,
            streamed=True, time_to_first_token_seconds=tally.time_to_first_token,
            time_per_output_token_seconds=tally.time_per_output_token(output_tokens),
            client_disconnected=cancelled, tokens_estimated=usage is None and delivered,
            requested_model=self.requested_model,
        )
        recorder = self.recorder
        try:
            recorder.record_provider_outcome(self.model, ok=error is None)
            recorder.book(self.caller, self.step, self.model, outcome, self.span)
            if error is None and not cancelled:
                recorder.evaluate(self.caller, self.step, self.model, self.messages, tally.text, self.span)
        except StoreUnavailable as exc:
            get_logger().error("call_not_booked", request_id=self.caller.request_id, store=str(exc.path),
                               error=str(exc), streamed=True)
            return None
        finally:
            if recorder.metrics.enabled:
                recorder.metrics.in_flight.dec()
            self._end_span(tally, outcome)
        return CachedAnswer(model=self.model, text=tally.text, finish_reason=tally.finish_reason or "stop",
                            input_tokens=input_tokens, output_tokens=output_tokens, cached_input_tokens=cached,
                            cost_usd=cost)

    def _end_span(self, tally: StreamTally, outcome: Outcome) -> None:
        span = self.span
        if span.is_recording():
            completion = {"model": tally.model or self.model,
                          "choices": [{"finish_reason": outcome.finish_reason}] if outcome.finish_reason else []}
            span.set_attributes(reply_attributes(completion, outcome.input_tokens, outcome.output_tokens,
                                                 outcome.cached_input_tokens, outcome.cost_usd))
            if outcome.time_to_first_token_seconds is not None:
                span.set_attribute(genai.RESPONSE_TIME_TO_FIRST_CHUNK, outcome.time_to_first_token_seconds)
            if outcome.error is not None:
                mark_failed(span, outcome.error)
        span.end()


async def open_stream(recorder: CallRecorder, caller: Caller, step: str, payload: dict,
                      requested_model: str | None = None, fallback_next: bool = False) -> StreamedCall:
    """Start the provider's stream. A ProviderError here (the provider refused, failed or cannot be reached before
    sending anything) is booked and raised, so the route answers with the provider's error status."""
    model = payload["model"]
    span = recorder.tracer.start_span(genai.chat_span_name(model), kind=SpanKind.CLIENT)
    if span.is_recording():
        span.set_attributes(request_attributes(caller, step, model))
        span.set_attribute(genai.REQUEST_STREAM, True)
    started = time.perf_counter()
    if recorder.metrics.enabled:
        recorder.metrics.in_flight.inc()
    headers = tracing.inject({"X-Request-ID": caller.request_id}, span)
    try:
        upstream = await recorder.provider.open_stream(
            {**payload, "stream": True, "stream_options": {"include_usage": True}}, headers=headers)
    except ProviderError as error:
        try:
            recorder.record_provider_outcome(model, ok=False)
            recorder.book(caller, step, model, Outcome(time.perf_counter() - started, error=error, streamed=True,
                                                       requested_model=requested_model,
                                                       fallback_next=fallback_next), span)
        finally:
            if recorder.metrics.enabled:
                recorder.metrics.in_flight.dec()
            mark_failed(span, error)
            span.end()
        raise
    return StreamedCall(recorder, caller, step, payload, span, started, upstream, requested_model)


def response(streamed: StreamedCall, include_usage: bool, headers: dict[str, str],
             on_complete: Callable[[CachedAnswer], None] | None = None) -> ClosingStreamingResponse:
    return ClosingStreamingResponse(streamed.relay(include_usage, on_complete), on_close=streamed.close,
                                    media_type="text/event-stream", headers={"Cache-Control": "no-cache", **headers})
