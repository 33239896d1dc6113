"""The multi-step agent workflow: classify → answer → format, three provider calls under one request id."""

from __future__ import annotations

from stack.gateway.calls import Caller, CallRecorder
from stack.gateway.provider import ProviderError

HELPER_MODEL = "sim-fast"


async def run_workflow(recorder: CallRecorder, caller: Caller, question: str, answer_model: str) -> dict:
    steps = [
        ("classify", HELPER_MODEL, lambda _: f"Classify the intent of this question in one word: {question}"),
        ("answer", answer_model, lambda previous: f"Intent: {previous}\nAnswer the question: {question}"),
        ("format", HELPER_MODEL, lambda previous: f"Format this answer as three short bullet points:\n{previous}"),
    ]
    previous = ""
    report = []
    total_cost = 0.0
    for step, model, prompt in steps:
        payload = {"model": model, "messages": [{"role": "user", "content": prompt(previous)}]}
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
    return {"request_id": caller.request_id, "answer": previous, "steps": report, "cost_usd": total_cost}
