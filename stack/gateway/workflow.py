"""The multi-step agent workflow: classify → answer → format, three provider calls under one request id.

Traced as one `invoke_agent workflow` span (GenAI semantic conventions) holding a `step <name>` span per step, each
holding the step's provider call (`chat <model>`, see calls.py):

    POST /v1/agent/workflow                  SERVER   (FastAPI instrumentation)
    └── invoke_agent workflow                INTERNAL gen_ai.operation.name=invoke_agent, provider, llm.cost_usd
        ├── step classify                    INTERNAL llm.step=classify
        │   └── chat sim-fast                CLIENT   gen_ai.* (stack/genai.py), llm.cost_usd
        │       └── POST /v1/chat/completions  SERVER  (llmsim, joined through the traceparent header)
        ├── step answer  ...
        └── step format  ...
"""

from __future__ import annotations

from opentelemetry.trace import SpanKind

from stack import genai
from stack.gateway.calls import Caller, CallRecorder
from stack.gateway.provider import ProviderError

HELPER_MODEL = "sim-fast"
AGENT_NAME = "workflow"
STEPS = ("classify", "answer", "format")


async def run_workflow(recorder: CallRecorder, caller: Caller, question: str, answer_model: str) -> dict:
    steps = [
        ("classify", HELPER_MODEL, lambda _: f"Classify the intent of this question in one word: {question}"),
        ("answer", answer_model, lambda previous: f"Intent: {previous}\nAnswer the question: {question}"),
        ("format", HELPER_MODEL, lambda previous: f"Format this answer as three short bullet points:\n{previous}"),
    ]
    tracer = recorder.tracer
    previous = ""
    report = []
    total_cost = 0.0
    agent_span_name = f"{genai.OPERATION_INVOKE_AGENT} {AGENT_NAME}"
    with tracer.start_as_current_span(agent_span_name, kind=SpanKind.INTERNAL) as workflow_span:
        recording = workflow_span.is_recording()
        if recording:
            workflow_span.set_attributes({
                genai.OPERATION_NAME: genai.OPERATION_INVOKE_AGENT, genai.AGENT_NAME: AGENT_NAME,
                genai.PROVIDER_NAME: genai.PROVIDER, genai.REQUEST_MODEL: answer_model,
                "openinference.span.kind": "AGENT",
                "llm.request_id": caller.request_id, "llm.department": caller.department,
                "llm.application": caller.application,
            })
        for step, model, prompt in steps:
            payload = {"model": model, "messages": [{"role": "user", "content": prompt(previous)}]}
            with tracer.start_as_current_span(f"step {step}", attributes={
                    "llm.step": step, "openinference.span.kind": "CHAIN"}):
                try:
                    result = await recorder.call(caller, step, payload)
                except ProviderError as error:
                    error.step = step
                    raise
            previous = result.reply.text
            total_cost += result.cost_usd
            report.append({"step": step, "model": model, "input_tokens": result.reply.input_tokens,
                           "output_tokens": result.reply.output_tokens, "cost_usd": result.cost_usd,
                           "duration_seconds": round(result.duration_seconds, 4)})
        if recording:
            workflow_span.set_attribute("llm.cost_usd", total_cost)
    return {"request_id": caller.request_id, "answer": previous, "steps": report, "cost_usd": total_cost}
