"""How a prompt is counted in tokens: one rule for the provider that bills it and the gateway that bounds it."""

from __future__ import annotations

import math
from collections.abc import Iterable

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
TOKENS_PER_REPLY_PRIMER = 3


def count_prompt_tokens(contents: Iterable[str | None]) -> int:
    """A tokenizer stand-in: about four characters a token, plus per-message overhead, as real chat APIs bill."""
    tokens = TOKENS_PER_REPLY_PRIMER
    for content in contents:
        tokens += TOKENS_PER_MESSAGE + math.ceil(len(content or "") / CHARS_PER_TOKEN)
    return tokens


def count_text_tokens(text: str) -> int:
    """The same stand-in for a piece of generated text (no message overhead): what part of an answer that was cut
    short is billed as, when no usage arrived."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)
