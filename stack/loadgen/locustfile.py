"""Locust scenario for the course gateway: seeded, weighted, synthetic traffic (see stack/loadgen/workload.py).

Usually run through `make load` / `python -m stack.loadgen`, which validate the arguments, bound the run time and
write the reports. It also works with plain locust, e.g.

    .venv/bin/locust -f stack/loadgen/locustfile.py --headless -u 5 -r 5 -t 20s

The target defaults to the gateway in stack/topology.yaml. A host that is not this machine (127.0.0.1, ::1,
localhost) is refused before any request is sent, also when it is typed into the web UI.

Extra options (also editable in the web UI): --llmobs-seed, --llmobs-rate (requests/s for the whole run, shared
by the users; 0 = use the wait range instead), --llmobs-wait-min/--llmobs-wait-max (seconds each user thinks
between requests), --llmobs-workflow-share.

Streamed chat calls are reported as "/v1/chat/completions (stream)", read to the end, and timed to their last event;
one that does not end with `data: [DONE]` is a failure. The gateway's X-Cache header (HIT, MISS, BYPASS) of every
answered chat call is counted and written beside locust's CSVs as <prefix>_cache.csv when locust quits.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import logging
import random
import time
from collections import Counter
from collections.abc import Iterator

import gevent
from locust import FastHttpUser, events, task
from locust.exception import StopUser
from locust.stats import CSV_STATS_INTERVAL_SEC

from stack.loadgen import report, target
from stack.loadgen.workload import CHAT_PATH, FEEDBACK_PATH, Mix, PlannedRequest, RequestPlanner
from stack.traffic import EVENT_STREAM, stream_problem

log = logging.getLogger("llmobs.loadgen")
DEFAULTS = Mix()
DEFAULT_WAIT = (1.0, 3.0)
MAX_CATCH_UP = 3


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    group = parser.add_argument_group("LLM observability labs")
    group.add_argument("--llmobs-seed", type=int, default=DEFAULTS.seed, help="seed of the traffic mix")
    group.add_argument("--llmobs-rate", type=float, default=0.0,
                       help="target requests/s of the whole run, spread over the users (0: use the wait range)")
    group.add_argument("--llmobs-wait-min", type=float, default=DEFAULT_WAIT[0],
                       help="seconds a user waits between requests, at least")
    group.add_argument("--llmobs-wait-max", type=float, default=DEFAULT_WAIT[1],
                       help="seconds a user waits between requests, at most")
    group.add_argument("--llmobs-workflow-share", type=float, default=DEFAULTS.workflow_share,
                       help="share of requests that are agent workflows (0..1)")


@events.quitting.add_listener
def _final_csv_row(environment, **_) -> None:
    """Locust rewrites <prefix>_stats.csv every second but not once more at the end, so the file can miss the
    last second's requests. Its writer still runs while `quitting` fires (users already stopped): give it one
    more turn so the CSV holds the same totals as the HTML report."""
    options = environment.parsed_options
    if options is not None and getattr(options, "csv_prefix", None):
        gevent.sleep(CSV_STATS_INTERVAL_SEC + 0.25)


_user_numbers = itertools.count()
_x_cache_seen: Counter[str] = Counter()   # the gateway's X-Cache header of answered chat calls, this test


@events.test_start.add_listener
def _number_users_from_zero(**_) -> None:
    """Every test (also a restart from the web UI) gives its users streams 0, 1, 2, … again."""
    global _user_numbers
    _user_numbers = itertools.count()
    _x_cache_seen.clear()


@events.quitting.add_listener
def _write_x_cache_counts(environment, **_) -> None:
    options = environment.parsed_options
    prefix = getattr(options, "csv_prefix", None) if options is not None else None
    if not prefix:
        return
    with open(f"{prefix}{report.CACHE_CSV_SUFFIX}", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(report.CACHE_CSV_HEADER)
        writer.writerows(sorted(_x_cache_seen.items()))


def _option(user: FastHttpUser, name: str, default: float) -> float:
    options = user.environment.parsed_options
    value = getattr(options, name, default) if options is not None else default
    return float(value)


class GatewayUser(FastHttpUser):
    """One simulated client application. Each user draws its requests from its own seeded stream."""

    host = target.default_host()

    def on_start(self) -> None:
        self.number = next(_user_numbers)
        options = self.environment.parsed_options
        seed = int(getattr(options, "llmobs_seed", DEFAULTS.seed)) if options is not None else DEFAULTS.seed
        share = _option(self, "llmobs_workflow_share", DEFAULTS.workflow_share)
        self.planner = RequestPlanner(Mix(seed=seed, workflow_share=min(1.0, max(0.0, share))), stream=self.number)
        self.pacing = random.Random(f"{seed}:wait:{self.number}")
        self.next_due = time.perf_counter()
        self.refusal = None
        try:
            target.check_loopback(self.host or "")
        except target.TargetError as error:
            self.refusal = error

    def wait_time(self) -> float:
        rate = _option(self, "llmobs_rate", 0.0)
        if rate > 0:
            # Pace so the users together send `rate` requests/s: each user is due to start one request every
            # users/rate seconds. After a slow answer the user catches up (no wait) until it is on schedule
            # again, but never by more than MAX_CATCH_UP requests in a row.
            users = max(1, self.environment.runner.target_user_count if self.environment.runner else 1)
            interval = users / rate
            now = time.perf_counter()
            self.next_due = max(self.next_due + interval, now - MAX_CATCH_UP * interval)
            return max(0.0, self.next_due - now)
        low = max(0.0, _option(self, "llmobs_wait_min", DEFAULT_WAIT[0]))
        high = max(low, _option(self, "llmobs_wait_max", DEFAULT_WAIT[1]))
        return low + self.pacing.random() * (high - low)

    @task
    def call_gateway(self) -> None:
        if self.refusal is not None:
            if self.number == 0:
                log.error("%s", self.refusal)
            self.environment.events.request.fire(
                request_type="REFUSED", name=str(self.host), response_time=0, response_length=0,
                exception=self.refusal, context={})
            raise StopUser()
        planned = self.planner.next()
        if planned.streamed:
            self._send_streamed(planned)
            return
        with self.client.post(planned.path, json=planned.body, name=planned.name, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {_error_message(response)}")
                return
            if planned.path == CHAT_PATH:
                _count_x_cache(response)
        self._rate(planned, response.headers.get("x-request-id"))

    def _rate(self, planned: PlannedRequest, request_id: str | None) -> None:
        """The caller's rating of an answer it got, for the share of requests the planner drew one for."""
        if planned.feedback is None or not request_id:
            return
        with self.client.post(FEEDBACK_PATH, json={"request_id": request_id, "rating": planned.feedback},
                              name=FEEDBACK_PATH, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {_error_message(response)}")

    def _send_streamed(self, planned: PlannedRequest) -> None:
        started = time.perf_counter()
        with self.client.post(planned.path, json=planned.body, name=planned.name, catch_response=True, stream=True,
                              headers={"Accept": EVENT_STREAM, "Accept-Encoding": "identity"}) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {_error_message(response)}")
                return
            body = _StreamedBody(response)
            problem = stream_problem((response.headers or {}).get("content-type") or "", body)
            # With stream=True locust times the request to its headers only: time it to the stream's end instead.
            response.request_meta["response_time"] = (time.perf_counter() - started) * 1000
            response.request_meta["response_length"] = body.bytes_read
            if problem:
                response.failure(problem)
                return
            _count_x_cache(response)
        self._rate(planned, (response.headers or {}).get("x-request-id"))


class _StreamedBody:
    """The lines of a streamed body as they arrive, and how many bytes were read."""

    def __init__(self, response) -> None:
        self.response = response
        self.bytes_read = 0

    def __iter__(self) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        for chunk in self.response.iter_content(chunk_size=1024, decode_content=False):
            self.bytes_read += len(chunk)
            pending += decoder.decode(chunk)
            *complete, pending = pending.split("\n")
            yield from complete
        pending += decoder.decode(b"", final=True)
        if pending:
            yield pending


def _count_x_cache(response) -> None:
    _x_cache_seen[(response.headers or {}).get("x-cache") or report.NO_X_CACHE] += 1


def _error_message(response) -> str:
    try:
        error = response.json().get("error", {})
        return str(error.get("message", error))[:200]
    except Exception:  # noqa: BLE001 - a connection error or a body that is not JSON
        return (response.text or str(response.error or ""))[:200]
