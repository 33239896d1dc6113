"""promtool unit tests per profile (placeholder until the scenarios land)."""

from __future__ import annotations

from stack.profiles import Profile


def promtool_tests(profile: Profile) -> dict[str, dict]:
    return {}
