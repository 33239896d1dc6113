"""A prompt change gone wrong: a deployment puts a unique token at the start of every system prompt. Nothing fails
and nothing is slow, but no request repeats any more (the gateway's response cache stops hitting) and no prompt
prefix is shared (the provider's prompt cache stops hitting): every call is paid for in full.

params: faults (the gateway knob {prompt_template_change: true}), traffic (at least one `cacheable: true` entry: the
caches need repeated requests to lose), warm_up_seconds (0..120: the traffic runs this long before the change, so
the caches are warm and the collapse shows; default 15).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stack.scenarios.kinds.base import Context, check_keys, heal_faults, set_faults, validate_traffic

KNOB = "prompt_template_change"
MAX_WARM_UP_SECONDS = 120
DEFAULT_WARM_UP_SECONDS = 15


def validate(params: Mapping[str, Any]) -> None:
    check_keys(params, {"faults", "traffic", "warm_up_seconds"}, {"faults", "traffic"})
    if params["faults"] != {KNOB: True}:
        raise ValueError(f"faults must be {{{KNOB}: true}} (the gateway's knob for a prompt template change)")
    validate_traffic(params, required=True)
    if not any(entry.get("cacheable") for entry in params["traffic"]):
        raise ValueError("traffic needs at least one entry with cacheable: true, or there is no cache to collapse")
    warm_up = params.get("warm_up_seconds", DEFAULT_WARM_UP_SECONDS)
    if isinstance(warm_up, bool) or not isinstance(warm_up, (int, float)) or not 0 <= warm_up <= MAX_WARM_UP_SECONDS:
        raise ValueError(f"warm_up_seconds must be a number of seconds from 0 to {MAX_WARM_UP_SECONDS}")


def _warm_up(ctx: Context) -> float:
    return float(ctx.params.get("warm_up_seconds", DEFAULT_WARM_UP_SECONDS))


def start(ctx: Context) -> None:
    ctx.start_traffic()
    ctx.state["changed"] = False
    ctx.note(f"cacheable traffic started; the prompt template changes in {_warm_up(ctx):g} s")
    tick(ctx)


def tick(ctx: Context) -> None:
    if ctx.state.get("changed") or time.time() - ctx.started_at < _warm_up(ctx):
        return
    set_faults(ctx.params["faults"], ctx.knob_seconds)
    ctx.state["changed"] = True
    ctx.note("prompt template changed: every system prompt now starts with a unique token")


def heal(ctx: Context) -> None:
    heal_faults([KNOB])
    ctx.note("prompt template reverted: requests repeat again and the caches warm up")


def reset(run: Path) -> None:
    heal_faults([KNOB], strict=False)
