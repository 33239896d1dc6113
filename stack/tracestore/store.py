"""The most recent spans in memory, by trace: a bounded buffer (oldest spans go first) with an index by trace id."""

from __future__ import annotations

import json
import sys
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass

from stack.otlp import ReceivedSpan

# How many spans the store keeps (at most ~1.7 KB each in memory: ~35 MB full, the process ~90 MiB): about 1,400
# agent-workflow traces of 14 spans, or minutes of `make load` traffic. The oldest spans are dropped first.
MAX_SPANS = 20_000


@dataclass(frozen=True, slots=True)
class StoredSpan:
    """What a trace summary needs, plus the span's whole JSON form as bytes (a third of the memory of the decoded
    attributes and events, and answered without encoding it again)."""

    trace_id: str
    span_id: str
    parent_id: str | None
    service: str
    name: str
    start_ns: int
    end_ns: int
    error: bool
    json_bytes: bytes

    @classmethod
    def of(cls, span: ReceivedSpan) -> "StoredSpan":
        return cls(span.trace_id, span.span_id, span.parent_id, sys.intern(span.service), sys.intern(span.name),
                   span.start_ns, span.end_ns, span.status == "ERROR",
                   json.dumps(span.as_json(), separators=(",", ":")).encode())


@dataclass(frozen=True)
class TraceSummary:
    trace_id: str
    root: str
    services: tuple[str, ...]
    span_count: int
    start_ns: int
    end_ns: int
    errors: int

    def as_json(self) -> dict:
        return {"trace_id": self.trace_id, "root": self.root, "services": list(self.services),
                "span_count": self.span_count, "start_ns": self.start_ns,
                "duration_ms": round((self.end_ns - self.start_ns) / 1e6, 3), "errors": self.errors}


class TraceStore:
    """Not thread-safe: the service touches it from its event loop only."""

    def __init__(self, capacity: int = MAX_SPANS) -> None:
        if capacity < 1:
            raise ValueError(f"a trace store needs room for at least one span, not {capacity}")
        self.capacity = capacity
        self.received = 0
        self.evicted = 0
        self._spans: deque[StoredSpan] = deque()
        # trace id -> its spans in arrival order; ordered by each trace's latest arrival (most recent last)
        self._traces: OrderedDict[str, list[StoredSpan]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._spans)

    def add(self, spans: Iterable[ReceivedSpan]) -> int:
        added = 0
        for received in spans:
            span = StoredSpan.of(received)
            if len(self._spans) >= self.capacity:
                self._evict_oldest()
            self._spans.append(span)
            trace = self._traces.get(span.trace_id)
            if trace is None:
                trace = self._traces[span.trace_id] = []
            else:
                self._traces.move_to_end(span.trace_id)
            trace.append(span)
            added += 1
        self.received += added
        return added

    def _evict_oldest(self) -> None:
        oldest = self._spans.popleft()
        trace = self._traces[oldest.trace_id]
        del trace[0]  # arrival order is the same in both, so the oldest span is its trace's first (a trace is short)
        if not trace:
            del self._traces[oldest.trace_id]
        self.evicted += 1

    def trace(self, trace_id: str) -> list[StoredSpan]:
        """The spans of one trace (lowercase hex id), earliest start first; [] when none is stored."""
        return sorted(self._traces.get(trace_id, ()), key=lambda span: (span.start_ns, span.span_id))

    def recent(self, limit: int, service: str | None = None) -> list[TraceSummary]:
        """The traces that last received a span, most recent first (only those with a span of `service`)."""
        found = []
        for trace_id in reversed(self._traces):
            spans = self._traces[trace_id]
            if service is None or any(span.service == service for span in spans):
                found.append(_summary(trace_id, spans))
                if len(found) >= limit:
                    break
        return found

    @property
    def trace_count(self) -> int:
        return len(self._traces)


def _summary(trace_id: str, spans: list[StoredSpan]) -> TraceSummary:
    ids = {span.span_id for span in spans}
    roots = [span for span in spans if span.parent_id is None or span.parent_id not in ids]
    root = min(roots or spans, key=lambda span: span.start_ns)
    return TraceSummary(trace_id, f"{root.service}: {root.name}", tuple(sorted({span.service for span in spans})),
                        len(spans), min(span.start_ns for span in spans), max(span.end_ns for span in spans),
                        sum(span.error for span in spans))
