"""What synthetic traffic says, without the stack: the load generator's mix of streamed, repeated (cacheable),
one-off and no-cache chat calls behind a shared system prompt (stack/loadgen/workload.py, stack/prompts.py), the
steady test traffic's optional modes and the stream check (stack/traffic.py), and the report of both
(stack/loadgen/report.py). Each property is measured on a seeded sample of planned requests."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from stack import catalog
from stack.llmsim.prompt_cache import PromptCache
from stack.loadgen import report, run
from stack.loadgen.workload import (CHAT_PATH, STREAMED_SUFFIX, WORKFLOW_PATH, Mix, PlannedRequest, RequestPlanner,
                                    model_weights, question_models)
from stack.prompts import SAMPLING_SEED, system_prompt
from stack.tokens import TOKENS_PER_REPLY_PRIMER, count_prompt_tokens
from stack.traffic import REPEATED_QUESTIONS, chat_body, steady_body, stream_problem

USERS = 10
SAMPLE_PER_USER = 200            # 2,000 planned requests
MEAN_LATENCY_SECONDS = 0.4       # of the default mix on a healthy stack (docs/load.md)


def _sample(mix: Mix = Mix(), users: int = USERS, per_user: int = SAMPLE_PER_USER) -> list[PlannedRequest]:
    return [r for stream in range(users) for r in RequestPlanner(mix, stream=stream).take(per_user)]


def _chats(requests: list[PlannedRequest]) -> list[PlannedRequest]:
    return [r for r in requests if r.path == CHAT_PATH]


def _response_cache_hit_ratio(requests: list[PlannedRequest]) -> float:
    """HIT / (HIT + MISS) of an exact-match response cache whose entries never expire, keyed as the gateway's is
    (model, messages, max_tokens, seed): only cacheable requests look it up, the first sight of each is a miss."""
    seen: set[str] = set()
    hits = misses = 0
    for request in requests:
        if not request.cacheable:
            continue
        key = json.dumps([request.body.get(field) for field in ("model", "messages", "max_tokens", "seed")])
        hits, misses = (hits + 1, misses) if key in seen else (hits, misses + 1)
        seen.add(key)
    return hits / (hits + misses)


def _default_run_requests_per_user() -> int:
    """About what one user of a default `make load` sends: the run time over (mean wait + mean latency)."""
    low, high = run.LoadSettings().wait
    return round(run.DEFAULT_DURATION_SECONDS / ((low + high) / 2 + MEAN_LATENCY_SECONDS))


# --- streaming ---------------------------------------------------------------------------------------------

def test_a_share_of_chat_calls_is_streamed_and_workflows_never_are() -> None:
    requests = _sample()
    chats = _chats(requests)
    streamed = sum(r.streamed for r in chats) / len(chats)
    assert abs(streamed - Mix().stream_share) < 0.03, f"{streamed:.1%} of chat calls streamed"
    for request in requests:
        assert request.body.get("stream", False) is request.streamed
        assert request.name == request.path + (STREAMED_SUFFIX if request.streamed else "")
    workflows = [r for r in requests if r.path == WORKFLOW_PATH]
    assert workflows and not any(r.streamed or "stream" in r.body for r in workflows)
    assert not any(r.streamed for r in _sample(Mix(stream_share=0.0), users=2))


# --- the response cache ------------------------------------------------------------------------------------

def test_repeated_questions_make_an_exact_match_cache_hit_most_of_the_time() -> None:
    ratio = _response_cache_hit_ratio(_sample())
    assert ratio > 0.8, f"simulated response-cache hit ratio over {USERS * SAMPLE_PER_USER} requests: {ratio:.1%}"
    per_user = _default_run_requests_per_user()
    short = _response_cache_hit_ratio(_sample(users=run.DEFAULT_USERS, per_user=per_user))
    assert short > 0.75, f"over a default `make load` ({run.DEFAULT_USERS} users × ~{per_user}), cold: {short:.1%}"


def test_one_off_questions_have_no_seed_and_a_few_repeats_skip_the_cache() -> None:
    mix = Mix()
    chats = _chats(_sample(mix))
    one_off = [r for r in chats if "seed" not in r.body]
    no_cache = [r for r in chats if r.body.get("cache") == {"no-cache": True}]
    assert abs(len(one_off) / len(chats) - mix.unique_share) < 0.02, f"{len(one_off) / len(chats):.1%} one-off"
    assert abs(len(no_cache) / len(chats) - mix.no_cache_share) < 0.015, f"{len(no_cache) / len(chats):.1%} no-cache"
    questions = Counter(r.body["messages"][-1]["content"] for r in one_off)
    assert questions.most_common(1)[0][1] == 1, "a one-off question is asked once"
    assert not any(r.cacheable for r in one_off + no_cache)
    assert all(r.body["seed"] == SAMPLING_SEED for r in no_cache)
    cacheable = [r for r in chats if r.cacheable]
    assert len(cacheable) == len(chats) - len(one_off) - len(no_cache)
    assert all(r.body["seed"] == SAMPLING_SEED and "cache" not in r.body for r in cacheable)


def test_question_popularity_is_zipf_skewed_within_each_application() -> None:
    mix = Mix()
    asked: dict[str, Counter[str]] = defaultdict(Counter)
    for request in _chats(_sample(mix)):
        if "seed" in request.body:
            asked[request.persona.application][request.body["messages"][-1]["content"]] += 1
    assert set(asked) == set(catalog.load().applications)
    for application, questions in asked.items():
        pool = RequestPlanner(mix).questions(application)
        assert len(set(pool)) == mix.question_pool and set(questions) <= set(pool)
        total = sum(questions.values())
        if total < 100:
            continue
        ranked = [questions[q] for q in pool]
        assert ranked[0] / total > 0.45, f"{application}: the most popular question is most of it: {ranked[:5]}"
        assert ranked[0] > 2 * ranked[1] > ranked[4], f"{application}: popularity falls with rank: {ranked[:5]}"


def test_every_user_asks_from_the_same_pool_and_each_question_of_the_same_model() -> None:
    mix = Mix()
    assert RequestPlanner(mix, stream=0).questions("x") == RequestPlanner(mix, stream=9).questions("x")
    models = question_models(mix)
    planner = RequestPlanner(mix, stream=4)
    for request in _chats(planner.take(400)):
        if "seed" in request.body:
            rank = planner.questions(request.persona.application).index(request.body["messages"][-1]["content"])
            assert request.model == models[rank]


def test_repeated_questions_keep_the_models_shares() -> None:
    """The popular questions go to the cheap model, and the share of repeated calls each model gets stays close to
    its weight."""
    mix = Mix()
    weights = model_weights(mix)
    assert question_models(mix)[0] == next(iter(weights)), "the most popular question rides the cheapest model"
    repeated = [r for r in _chats(_sample(mix)) if "seed" in r.body]
    shares = Counter(r.model for r in repeated)
    for model, weight in weights.items():
        assert abs(shares[model] / len(repeated) - weight) < 0.06, (model, shares, weights)


# --- the shared system prompt ------------------------------------------------------------------------------

def test_every_chat_call_starts_with_its_applications_system_prompt_long_enough_to_be_cached() -> None:
    cat = catalog.load()
    for request in _chats(_sample(users=3)):
        system, question = request.body["messages"]
        assert system == {"role": "system", "content": system_prompt(request.persona.application)}
        assert question["role"] == "user"
    for application in cat.applications:
        tokens = count_prompt_tokens([system_prompt(application)]) - TOKENS_PER_REPLY_PRIMER
        assert tokens >= 3 * cat.prompt_cache.min_prefix_tokens, (application, tokens)
    assert len({system_prompt(a) for a in cat.applications}) == len(cat.applications)


def test_the_providers_prompt_cache_bills_the_system_prompt_as_cached_input() -> None:
    """Through llmsim's own prompt cache: every chat call but the first of its (model, application) finds at least
    its system prompt cached."""
    cat = catalog.load()
    cache = PromptCache(cat.prompt_cache, clock=lambda: 0.0)
    first_seen: set[tuple[str, str]] = set()
    for request in _chats(_sample(users=4, per_user=150)):
        cached = cache.use(request.model, request.body["messages"])
        system_tokens = count_prompt_tokens([request.body["messages"][0]["content"]]) - TOKENS_PER_REPLY_PRIMER
        key = (request.model, request.persona.application)
        if key in first_seen:
            assert cached >= system_tokens, (key, cached, system_tokens)
        first_seen.add(key)


def test_prompts_stay_within_the_catalogs_limits() -> None:
    cat = catalog.load()
    planner = RequestPlanner(Mix())
    for request in _chats(_sample()):
        contents = [m["content"] for m in request.body["messages"]]
        assert sum(len(c) for c in contents) <= planner.prompt_cap <= cat.max_prompt_chars // 6
        assert count_prompt_tokens(contents) <= cat.max_prompt_tokens
        assert len(contents) <= cat.max_messages_per_request


@pytest.mark.parametrize("bad", [{"stream_share": 1.5}, {"question_pool": 0}, {"unique_share": -0.1},
                                 {"unique_share": 0.6, "no_cache_share": 0.5}])
def test_the_mix_refuses_impossible_shares(bad: dict) -> None:
    with pytest.raises(ValueError):
        Mix(**bad)


# --- steady test traffic (stack/traffic.py) ----------------------------------------------------------------

def test_steady_traffic_sends_the_same_body_as_before_by_default() -> None:
    assert steady_body("sim-fast", 7) == {
        "model": "sim-fast",
        "messages": [{"role": "user", "content": "Summarise the incident report in two sentences."}],
        "attribution": {"user_id": "traffic-7", "department": "engineering", "application": "chatbot"},
        "synthetic": True,
    }


def test_steady_traffic_can_repeat_a_small_pool_of_seeded_questions_and_stream_a_share() -> None:
    bodies = [steady_body("sim-fast", n, cacheable=True, stream_share=0.25) for n in range(40)]
    application = bodies[0]["attribution"]["application"]
    assert all(b["messages"][0] == {"role": "system", "content": system_prompt(application)} for b in bodies)
    assert all(b["seed"] == SAMPLING_SEED and "cache" not in b for b in bodies)
    questions = [b["messages"][-1]["content"] for b in bodies]
    assert len(set(questions)) == REPEATED_QUESTIONS and questions[:REPEATED_QUESTIONS] * 5 == questions
    assert sum(b.get("stream", False) for b in bodies) == 10, "exactly a quarter streamed, evenly spread"
    assert chat_body("m", "u", no_cache=True)["cache"] == {"no-cache": True}


def test_a_stream_is_whole_only_when_it_ends_with_done() -> None:
    events = ['data: {"choices": [{"delta": {"content": "Hi"}}]}', "", "data: [DONE]", ""]
    assert stream_problem("text/event-stream; charset=utf-8", iter(events)) is None
    assert "[DONE]" in (stream_problem("text/event-stream", iter(events[:2])) or "")
    assert "application/json" in (stream_problem("application/json", iter(['{"choices": []}'])) or "")
    broken = ['data: {"error": {"message": "provider answered 500"}}', "", "data: [DONE]"]
    assert "provider answered 500" in (stream_problem("text/event-stream", iter(broken)) or "")


# --- the report --------------------------------------------------------------------------------------------

def test_the_report_shows_the_streamed_share_and_the_x_cache_answers(tmp_path: Path) -> None:
    prefix = tmp_path / "load"
    header = ("Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,"
              "Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,"
              "99.99%,100%")
    rows = [("POST", CHAT_PATH, 60), ("POST", CHAT_PATH + STREAMED_SUFFIX, 40), ("POST", WORKFLOW_PATH, 5),
            ("", report.AGGREGATED, 105)]
    Path(f"{prefix}_stats.csv").write_text(header + "\n" + "".join(
        f"{kind},{name},{count},0,100,110,10,900,300,1.0,0.0,100,120,130,140,200,300,400,500,800,900,900\n"
        for kind, name, count in rows))
    Path(f"{prefix}{report.CACHE_CSV_SUFFIX}").write_text(",".join(report.CACHE_CSV_HEADER)
                                                           + "\nBYPASS,15\nHIT,68\nMISS,17\n")
    read = report.read(prefix)
    assert read.chat_calls == (40, 100)
    assert read.x_cache == {"HIT": 68, "MISS": 17, "BYPASS": 15} and read.hit_ratio == pytest.approx(0.8)
    line = report.mix_summary(read)
    assert "streamed: 40 of 100 chat calls (40%)" in line
    assert "68 HIT, 17 MISS, 15 BYPASS" in line and "hit ratio 80%" in line


def test_a_share_of_answers_is_rated_mostly_up_without_changing_the_requests() -> None:
    mix = Mix()
    planned = RequestPlanner(mix, stream=3).take(3000)
    rated = [p.feedback for p in planned if p.feedback is not None]
    assert abs(len(rated) / len(planned) - mix.feedback_share) < 0.02
    assert abs(rated.count("down") / len(rated) - mix.negative_feedback_share) < 0.05
    silent = RequestPlanner(Mix(feedback_share=0.0), stream=3).take(3000)
    assert [p.body for p in silent] == [p.body for p in planned], "the ratings come from a stream of their own"
