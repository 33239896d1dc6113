"""Decoding what an OpenTelemetry exporter sends to /v1/traces over OTLP/HTTP (protobuf, optionally gzip) into plain
spans. Shared by the built-in trace store (stack/tracestore) and the tests' in-process collector."""

from __future__ import annotations

import gzip
import math
import zlib
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

TRACES_PATH = "/v1/traces"
PROTOBUF = "application/x-protobuf"
KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}
# The OTLP/HTTP success reply: an empty ExportTraceServiceResponse.
EXPORT_REPLY = ExportTraceServiceResponse().SerializeToString()


class OtlpDecodeError(ValueError):
    """The payload is not an OTLP traces export; the message says what was wrong."""


def _value(value: AnyValue) -> object:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return value.bytes_value.hex()
    if which == "double_value" and not math.isfinite(value.double_value):
        return str(value.double_value)  # JSON has no NaN or infinity
    return getattr(value, which) if which else None


@dataclass(frozen=True)
class SpanEvent:
    name: str
    time_ns: int
    attributes: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str | None
    start_ns: int
    end_ns: int
    status: str
    status_message: str
    attributes: dict = field(default_factory=dict)
    events: tuple[SpanEvent, ...] = ()

    @property
    def duration_seconds(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    @property
    def event_names(self) -> tuple[str, ...]:
        return tuple(event.name for event in self.events)

    def as_json(self) -> dict:
        return {
            "trace_id": self.trace_id, "span_id": self.span_id, "parent_id": self.parent_id, "name": self.name,
            "kind": self.kind, "service": self.service, "start_ns": self.start_ns, "end_ns": self.end_ns,
            "duration_ms": round((self.end_ns - self.start_ns) / 1e6, 3), "status": self.status,
            "status_message": self.status_message, "attributes": self.attributes,
            "events": [{"name": e.name, "time_ns": e.time_ns, "attributes": e.attributes} for e in self.events],
        }


def unpack(body: bytes, content_encoding: str | None) -> bytes:
    """The body without its Content-Encoding (identity, gzip or deflate: what OTLP exporters send)."""
    encoding = (content_encoding or "identity").strip().lower()
    try:
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
    except (OSError, EOFError, zlib.error) as error:
        raise OtlpDecodeError(f"the body is not valid {encoding} data ({error})") from None
    if encoding != "identity":
        raise OtlpDecodeError(f"Content-Encoding {encoding!r} is not supported; send gzip, deflate or none")
    return body


def decode(payload: bytes) -> list[ReceivedSpan]:
    """The spans of one ExportTraceServiceRequest (protobuf bytes); OtlpDecodeError if it is not one."""
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(payload)
    except DecodeError as error:
        raise OtlpDecodeError(f"the body is not an OTLP ExportTraceServiceRequest in protobuf ({error})") from None
    spans = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                if len(span.trace_id) != 16 or len(span.span_id) != 8:
                    raise OtlpDecodeError(f"span {span.name!r} has a trace id of {len(span.trace_id)} bytes and a "
                                          f"span id of {len(span.span_id)} bytes; OTLP needs 16 and 8")
                spans.append(ReceivedSpan(
                    service=str(resource.get("service.name", "?")), name=span.name, kind=KINDS.get(span.kind, "?"),
                    trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                    parent_id=span.parent_span_id.hex() or None, start_ns=span.start_time_unix_nano,
                    end_ns=span.end_time_unix_nano, status=STATUS.get(span.status.code, "?"),
                    status_message=span.status.message,
                    attributes={kv.key: _value(kv.value) for kv in span.attributes},
                    events=tuple(SpanEvent(event.name, event.time_unix_nano,
                                           {kv.key: _value(kv.value) for kv in event.attributes})
                                 for event in span.events)))
    return spans
