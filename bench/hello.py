"""The baseline: a bare FastAPI app that answers JSON without doing anything."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/health")
async def health() -> dict:
    return {"status": "ok"}


@app.post("/v1/chat/completions")
async def chat() -> dict:
    return {"choices": [{"message": {"role": "assistant", "content": "hello"}}]}
