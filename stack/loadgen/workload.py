"""What the load generator sends: a seeded, weighted mix of synthetic requests, built without locust.

Everything here is a pure function of the seed and stack/catalog.yaml (models, departments, applications and
limits are read from there, never written here), so a run can be reproduced and the mix can be unit-tested:

- a fixed population of simulated people, each with a department and an application. Departments follow a Zipf
  skew in catalog order (the first one is the busiest); each department has its own favourite applications (a
  seeded order per department, also Zipf-skewed);
- how often each person calls is skewed too (a few heavy users, a long tail);
- models are weighted by price: the cheapest model gets most calls, the most expensive the fewest;
- prompt lengths are log-normal (most prompts short, a few long ones), capped well under the gateway's limit;
- a small share of calls are agent workflows (/v1/agent/workflow, three provider calls each);
- every chat call starts with its application's shared system prompt (stack/prompts.py), so the provider's prompt
  cache bills it as cached input;
- most chat questions repeat: each application has a pool of questions with Zipf-skewed popularity, sent with a
  fixed `seed` so the gateway can answer repeats from its response cache. A popular question is always asked of
  the same model (questions take the models in popularity order, cheapest first, in the models' shares). A few
  calls are one-off questions without a seed, a few more ask the gateway not to use its cache;
- a share of chat calls are streamed (`"stream": true`); workflows never are;
- every body says `"synthetic": true`, so reports can keep load-test traffic apart.

Each locust user draws from its own stream (`RequestPlanner(mix, stream=n)`), so the sequence a user sends is
fixed by (seed, stream) however the users interleave.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from dataclasses import dataclass
from functools import cached_property

from stack import catalog as catalog_module
from stack.prompts import SAMPLING_SEED, Lengths, question_pool, system_prompt, text_of_length
from stack.traffic import chat_body

CHAT_PATH = "/v1/chat/completions"
WORKFLOW_PATH = "/v1/agent/workflow"
FEEDBACK_PATH = "/v1/feedback"
STREAMED_SUFFIX = " (stream)"   # locust's name of a streamed call: its path and this


@dataclass(frozen=True)
class Mix:
    """The knobs of the traffic mix. The defaults are what `make load` sends."""

    seed: int = 42
    population: int = 200               # distinct simulated people (user_id values)
    department_skew: float = 1.0        # Zipf exponent over the catalog's departments
    application_skew: float = 1.2       # Zipf exponent over each department's favourite applications
    activity_skew: float = 0.8          # Zipf exponent over people: a few heavy users, a long tail
    model_skew: float = 1.5             # Zipf exponent over models ordered from cheapest to most expensive
    workflow_share: float = 0.05        # share of requests that are agent workflows
    prompt_median_chars: int = 400      # log-normal prompt length: median ...
    prompt_sigma: float = 1.0           # ... and spread (sigma of the underlying normal)
    prompt_min_chars: int = 20
    prompt_max_chars: int = 8000        # system prompt included; also capped at a sixth of max_prompt_chars
    question_median_chars: int = 120    # workflow questions are shorter
    stream_share: float = 0.4           # share of chat calls streamed; workflows never are
    question_pool: int = 60             # distinct repeated questions per application
    question_skew: float = 2.0          # Zipf exponent of their popularity
    unique_share: float = 0.1           # share of chat calls that are one-off questions without a seed
    no_cache_share: float = 0.05        # share of chat calls that repeat a question with "cache": {"no-cache": true}
    feedback_share: float = 0.1         # share of answers the caller rates (POST /v1/feedback) ...
    negative_feedback_share: float = 0.15  # ... of which "down" (the rest "up")
    sampling_seed: int = SAMPLING_SEED  # the `seed` repeated questions are sent with

    def __post_init__(self) -> None:
        if self.population < 1:
            raise ValueError("population must be at least 1")
        if not 0 <= self.workflow_share <= 1:
            raise ValueError("workflow_share must be between 0 and 1")
        if not 0 < self.prompt_min_chars <= self.prompt_max_chars:
            raise ValueError("need 0 < prompt_min_chars <= prompt_max_chars")
        if not (0 <= self.feedback_share <= 1 and 0 <= self.negative_feedback_share <= 1):
            raise ValueError("feedback_share and negative_feedback_share must be between 0 and 1")
        if not 0 <= self.stream_share <= 1:
            raise ValueError("stream_share must be between 0 and 1")
        if self.question_pool < 1:
            raise ValueError("question_pool must be at least 1")
        if not (0 <= self.unique_share and 0 <= self.no_cache_share and self.unique_share + self.no_cache_share <= 1):
            raise ValueError("unique_share and no_cache_share must be at least 0 and add up to at most 1")


@dataclass(frozen=True)
class Persona:
    user_id: str
    department: str
    application: str


@dataclass(frozen=True)
class PlannedRequest:
    """One request to send: where, what, and (for stats and tests) who, which model, whether it is streamed and
    whether the gateway may answer it from its response cache (a seed and no "no-cache")."""

    path: str
    body: dict
    model: str
    persona: Persona
    streamed: bool = False
    cacheable: bool = False
    feedback: str | None = None  # the rating ("up" / "down") the caller sends once answered, or None

    @property
    def kind(self) -> str:
        return "workflow" if self.path == WORKFLOW_PATH else "chat"

    @property
    def name(self) -> str:
        """What locust reports it under: streamed and whole answers apart."""
        return self.path + STREAMED_SUFFIX if self.streamed else self.path


def zipf_weights(count: int, exponent: float) -> list[float]:
    """Normalised weights 1/k^exponent for k = 1..count (exponent 0 is uniform)."""
    raw = [1 / (rank ** exponent) for rank in range(1, count + 1)]
    total = sum(raw)
    return [weight / total for weight in raw]


def model_weights(mix: Mix, catalog: catalog_module.Catalog | None = None) -> dict[str, float]:
    """Share of calls per model: Zipf over the models sorted by price (input + output), cheapest first."""
    catalog = catalog or catalog_module.load()
    by_price = sorted(catalog.models.values(),
                      key=lambda m: (m.input_price_per_million + m.output_price_per_million, m.name))
    return dict(zip((m.name for m in by_price), zipf_weights(len(by_price), mix.model_skew)))


def department_weights(mix: Mix, catalog: catalog_module.Catalog | None = None) -> dict[str, float]:
    catalog = catalog or catalog_module.load()
    return dict(zip(catalog.departments, zipf_weights(len(catalog.departments), mix.department_skew)))


def application_weights(mix: Mix, department: str,
                        catalog: catalog_module.Catalog | None = None) -> dict[str, float]:
    """This department's favourite applications first: a seeded order per department, Zipf-weighted."""
    catalog = catalog or catalog_module.load()
    order = list(catalog.applications)
    random.Random(f"{mix.seed}:applications:{department}").shuffle(order)
    return dict(zip(order, zipf_weights(len(order), mix.application_skew)))


def question_models(mix: Mix, catalog: catalog_module.Catalog | None = None) -> list[str]:
    """The model each pooled question is asked of, most popular question first: the questions take the models
    cheapest first, each model as many as its share of calls (the middle of a question's popularity decides), so
    the popular questions ride the cheap model and the models keep their shares."""
    weights = model_weights(mix, catalog)
    bounds = list(itertools.accumulate(weights.values()))
    names = list(weights)
    chosen, before = [], 0.0
    for popularity in zipf_weights(mix.question_pool, mix.question_skew):
        middle = before + popularity / 2
        chosen.append(names[next((i for i, bound in enumerate(bounds) if middle < bound), len(names) - 1)])
        before += popularity
    return chosen


def population(mix: Mix, catalog: catalog_module.Catalog | None = None) -> list[Persona]:
    """The simulated people, the same list for a given seed and catalog."""
    catalog = catalog or catalog_module.load()
    rng = random.Random(f"{mix.seed}:population")
    departments = department_weights(mix, catalog)
    people = []
    for number in range(mix.population):
        department = rng.choices(list(departments), weights=list(departments.values()))[0]
        applications = application_weights(mix, department, catalog)
        application = rng.choices(list(applications), weights=list(applications.values()))[0]
        people.append(Persona(f"load-{mix.seed}-{number:04d}", department, application))
    return people


class RequestPlanner:
    """An endless, reproducible sequence of requests for one locust user (one `stream`)."""

    def __init__(self, mix: Mix | None = None, stream: int = 0,
                 catalog: catalog_module.Catalog | None = None) -> None:
        self.mix = mix or Mix()
        self.stream = stream
        self.catalog = catalog or catalog_module.load()
        self.rng = random.Random(f"{self.mix.seed}:stream:{stream}")
        self.feedback_rng = random.Random(f"{self.mix.seed}:feedback:{stream}")

    # Shared by the planners of one process (every locust user has one): (mix, catalog id) -> people, activity.
    _populations: dict[tuple[Mix, int], tuple[catalog_module.Catalog, list[Persona], list[float]]] = {}

    @property
    def _people(self) -> tuple[list[Persona], list[float]]:
        key = (self.mix, id(self.catalog))
        if key not in self._populations:
            people = population(self.mix, self.catalog)
            # Who is a heavy user is itself seeded, so it is not always the lowest user numbers.
            activity = zipf_weights(len(people), self.mix.activity_skew)
            random.Random(f"{self.mix.seed}:activity").shuffle(activity)
            self._populations[key] = (self.catalog, people, activity)
        _, people, activity = self._populations[key]
        return people, activity

    @cached_property
    def _models(self) -> tuple[list[str], list[float]]:
        weights = model_weights(self.mix, self.catalog)
        return list(weights), list(weights.values())

    @cached_property
    def _question_models(self) -> list[str]:
        return question_models(self.mix, self.catalog)

    @cached_property
    def _popularity(self) -> list[float]:
        return zipf_weights(self.mix.question_pool, self.mix.question_skew)

    @property
    def prompt_cap(self) -> int:
        """Most characters of a chat call's messages together (its system prompt included)."""
        return max(self.mix.prompt_min_chars, min(self.mix.prompt_max_chars, self.catalog.max_prompt_chars // 6))

    def question_lengths(self, application: str) -> Lengths:
        """Lengths of `application`'s chat questions: what the cap leaves after its system prompt."""
        room = max(self.mix.prompt_min_chars, self.prompt_cap - len(system_prompt(application)))
        return Lengths(self.mix.prompt_median_chars, self.mix.prompt_sigma, self.mix.prompt_min_chars, room)

    def questions(self, application: str) -> tuple[str, ...]:
        """`application`'s repeated questions, most popular first (the same for every stream of a seed)."""
        return question_pool(self.mix.seed, application, self.mix.question_pool, self.question_lengths(application))

    def _draw_model(self) -> str:
        names, weights = self._models
        return self.rng.choices(names, weights=weights)[0]

    def next(self) -> PlannedRequest:
        people, activity = self._people
        persona = self.rng.choices(people, weights=activity)[0]
        planned = self._workflow(persona) if self.rng.random() < self.mix.workflow_share else self._chat(persona)
        return dataclasses.replace(planned, feedback=self._rating())

    def _rating(self) -> str | None:
        """Drawn from a stream of its own, so the requests are the same with or without feedback."""
        if self.feedback_rng.random() >= self.mix.feedback_share:
            return None
        return "down" if self.feedback_rng.random() < self.mix.negative_feedback_share else "up"

    def _workflow(self, persona: Persona) -> PlannedRequest:
        model = self._draw_model()
        lengths = Lengths(self.mix.question_median_chars, self.mix.prompt_sigma * 0.6, self.mix.prompt_min_chars,
                          self.prompt_cap // 4)
        body = {
            "question": text_of_length(self.rng, lengths.draw(self.rng)),
            "model": model,
            "attribution": {"user_id": persona.user_id, "department": persona.department,
                            "application": persona.application},
            "synthetic": True,
        }
        return PlannedRequest(WORKFLOW_PATH, body, model, persona)

    def _chat(self, persona: Persona) -> PlannedRequest:
        rng = self.rng
        streamed = rng.random() < self.mix.stream_share
        draw = rng.random()
        if draw < self.mix.unique_share:
            model, seed, no_cache = self._draw_model(), None, False
            question = text_of_length(rng, self.question_lengths(persona.application).draw(rng))
        else:
            rank = rng.choices(range(self.mix.question_pool), weights=self._popularity)[0]
            model, seed = self._question_models[rank], self.mix.sampling_seed
            no_cache = draw < self.mix.unique_share + self.mix.no_cache_share
            question = self.questions(persona.application)[rank]
        body = chat_body(model, persona.user_id, persona.department, persona.application, prompt=question,
                         system=system_prompt(persona.application), seed=seed, stream=streamed, no_cache=no_cache)
        return PlannedRequest(CHAT_PATH, body, model, persona, streamed=streamed,
                              cacheable=seed is not None and not no_cache)

    def take(self, count: int) -> list[PlannedRequest]:
        return [self.next() for _ in range(count)]
