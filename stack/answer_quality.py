"""Cheap, deterministic scores of an answer's quality (word overlap, no model), shared by the gateway, llmsim and the
tests; and where a chat request holds its question and its retrieved passages.

- A *content word* is a run of letters and digits, lowercased, of at least 4 characters and not a common function
  word (STOPWORDS): "Which alert fires when the p95 latency is high?" has {alert, fires, latency, high}.
- relevance(question, answer): the share of the question's distinct content words found among the answer's words.
  1.0 for a question with no content word (nothing it could miss).
- groundedness(passages, answer): the share of the answer's distinct content words found among the passages'
  words (how much of what it says comes from them). 0.0 for an answer with no content word.
- is_refusal(answer): the answer declines ("I cannot help with that.", "I'm sorry, but I can't assist ...") or
  says nothing (empty, or no letter or digit).
- question_of(messages): the last user message. passages_of(messages): the retrieved passages, by the convention
  llmsim and the gateway share: a system message holding a line that starts with "Context:"; every non-empty line
  after it is one passage.

Words match exactly after lowercasing (no stemming: "alerts" is not "alert").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

MIN_CONTENT_WORD_CHARS = 4
CONTEXT_MARKER = "Context:"
STOPWORDS = frozenset((
    "about above after again against also although among another because been before being below between both "
    "cannot could does doing down during each either else every from further have having here hers herself himself "
    "however into itself just less many more most much must myself neither none often only other ours ourselves "
    "over same shall should since some such than that their theirs them themselves then there these they this "
    "those though through thus under unless until upon very were what whatever when whenever where whether which "
    "while whom whose will with within without would your yours yourself yourselves"
).split())

_WORD = re.compile(r"[^\W_]+")
_CONTEXT_LINE = re.compile(rf"^[ \t]*{re.escape(CONTEXT_MARKER)}[ \t]*", re.IGNORECASE | re.MULTILINE)
_REFUSAL = re.compile(
    r"^(?:as an ai(?: language model| assistant)?,?\s+)?"
    r"(?:(?:i'm|i am)\s+)?(?:sorry|apologi[sz]e)?[,.!]?\s*(?:but\s+)?"
    r"(?:i|we)\s*(?:cannot|can't|can not|won't|will not|am unable to|'m unable to|are unable to|am not able to|"
    r"must decline to|'m not able to)\s+(?:help|assist|answer|provide|comply|respond|do that|share)")


def words(text: str) -> list[str]:
    """Every word of `text`, lowercased, in order."""
    return _WORD.findall(text.lower())


def content_words(text: str) -> list[str]:
    """The distinct content words of `text`, in order of first appearance."""
    found = dict.fromkeys(w for w in words(text) if len(w) >= MIN_CONTENT_WORD_CHARS and w not in STOPWORDS)
    return list(found)


def relevance(question: str, answer: str) -> float:
    asked = content_words(question)
    if not asked:
        return 1.0
    said = set(words(answer))
    return sum(word in said for word in asked) / len(asked)


def groundedness(passages: Sequence[str] | str, answer: str) -> float:
    said = content_words(answer)
    if not said:
        return 0.0
    source = set(words(passages if isinstance(passages, str) else "\n".join(passages)))
    return sum(word in source for word in said) / len(said)


def is_refusal(answer: str) -> bool:
    text = " ".join(answer.replace("\u2019", "'").lower().split())
    return not _WORD.search(text) or bool(_REFUSAL.match(text))


def question_of(messages: Iterable[Mapping[str, object]]) -> str:
    """The content of the last user message ("" when there is none)."""
    asked = [str(m.get("content") or "") for m in messages if m.get("role") == "user"]
    return asked[-1] if asked else ""


def passages_of(messages: Iterable[Mapping[str, object]]) -> list[str]:
    """The retrieved passages of a request: the non-empty lines after a `Context:` line of a system message (text
    on the marker's own line counts as the first passage)."""
    found: list[str] = []
    for message in messages:
        if message.get("role") != "system":
            continue
        content = str(message.get("content") or "")
        marker = _CONTEXT_LINE.search(content)
        if marker:
            found += [line.strip() for line in content[marker.end():].splitlines() if line.strip()]
    return found
