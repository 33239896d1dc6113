"""Annotations and rendered texts are free text written by rule authors (and templated from label values): the
receiver keeps at most the catalog's max_annotation_bytes of each, and says how much it cut, so one runaway alert
cannot fill its store."""

from __future__ import annotations


def marker(cut_bytes: int) -> str:
    return f"… [truncated {cut_bytes} bytes]"


def truncate_text(text: str, limit_bytes: int) -> str:
    """`text` if it fits in `limit_bytes` of UTF-8, else its first bytes (whole characters) and a marker."""
    encoded = text.encode("utf-8")
    if len(encoded) <= limit_bytes:
        return text
    kept = encoded[:limit_bytes].decode("utf-8", "ignore")
    return kept + marker(len(encoded) - len(kept.encode("utf-8")))


def truncate_values(values: dict[str, str], limit_bytes: int) -> dict[str, str]:
    return {name: truncate_text(value, limit_bytes) for name, value in values.items()}
