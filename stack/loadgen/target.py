"""Where load may go: the gateway of stack/topology.yaml by default, and never anything but this machine."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from stack import topology

LOOPBACK_NAMES = ("localhost",)


class TargetError(ValueError):
    """A target the load generator refuses to send traffic to."""


def default_host() -> str:
    """The gateway's URL from stack/topology.yaml (honours LLMOBS_PORT_OFFSET)."""
    return topology.load().services["gateway"].url


def is_loopback_host(hostname: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`; no name is ever looked up in DNS."""
    name = hostname.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_loopback(url: str) -> str:
    """Return `url` without a trailing slash if it is an http(s) URL on this machine; raise TargetError if not."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetError(f"target {url!r} is not an http:// URL (expected e.g. {default_host()})")
    if not is_loopback_host(parts.hostname):
        raise TargetError(
            f"refusing to send load to {parts.hostname!r}: the load generator only targets this machine "
            f"(127.0.0.1, ::1 or localhost). The course gateway is {default_host()} (stack/topology.yaml).")
    try:
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError as error:
        raise TargetError(f"target {url!r} has a bad port: {error}") from None
    return url.strip().rstrip("/")
