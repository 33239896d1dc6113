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
- every body says `"synthetic": true`, so reports can keep load-test traffic apart.

Each locust user draws from its own stream (`RequestPlanner(mix, stream=n)`), so the sequence a user sends is
fixed by (seed, stream) however the users interleave.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from functools import cached_property

from stack import catalog as catalog_module
from stack.traffic import chat_body

CHAT_PATH = "/v1/chat/completions"
WORKFLOW_PATH = "/v1/agent/workflow"

# Words prompts are made of: enough variety that prompts do not look like a constant, no meaning needed.
_VOCABULARY = (
    "the customer reported that invoice order refund account latency deployment error summary please explain "
    "review this draft report quarterly numbers policy contract ticket escalation outage root cause timeline "
    "meeting notes action items code function test failing build release migration database query index user "
    "feedback survey campaign budget forecast research paper results experiment hypothesis translate rewrite "
    "shorter clearer formal tone bullet points table compare options risks next steps"
).split()


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
    prompt_max_chars: int = 8000        # also capped at a sixth of the catalog's max_prompt_chars
    question_median_chars: int = 120    # workflow questions are shorter

    def __post_init__(self) -> None:
        if self.population < 1:
            raise ValueError("population must be at least 1")
        if not 0 <= self.workflow_share <= 1:
            raise ValueError("workflow_share must be between 0 and 1")
        if not 0 < self.prompt_min_chars <= self.prompt_max_chars:
            raise ValueError("need 0 < prompt_min_chars <= prompt_max_chars")


@dataclass(frozen=True)
class Persona:
    user_id: str
    department: str
    application: str


@dataclass(frozen=True)
class PlannedRequest:
    """One request to send: where, what, and (for stats and tests) who and which model."""

    path: str
    body: dict
    model: str
    persona: Persona

    @property
    def kind(self) -> str:
        return "workflow" if self.path == WORKFLOW_PATH else "chat"


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


def _length(rng: random.Random, median: int, sigma: float, low: int, high: int) -> int:
    return max(low, min(high, round(median * math.exp(rng.gauss(0.0, sigma)))))


def text_of_length(rng: random.Random, chars: int) -> str:
    """Words from a small vocabulary until `chars` characters (cut at exactly `chars`)."""
    words = rng.choices(_VOCABULARY, k=chars // 4 + 2)
    text = " ".join(words)
    while len(text) < chars:
        text += " " + " ".join(rng.choices(_VOCABULARY, k=chars // 4 + 2))
    return text[:chars].rstrip() or "hello"


class RequestPlanner:
    """An endless, reproducible sequence of requests for one locust user (one `stream`)."""

    def __init__(self, mix: Mix | None = None, stream: int = 0,
                 catalog: catalog_module.Catalog | None = None) -> None:
        self.mix = mix or Mix()
        self.stream = stream
        self.catalog = catalog or catalog_module.load()
        self.rng = random.Random(f"{self.mix.seed}:stream:{stream}")

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

    @property
    def prompt_cap(self) -> int:
        return max(self.mix.prompt_min_chars, min(self.mix.prompt_max_chars, self.catalog.max_prompt_chars // 6))

    def next(self) -> PlannedRequest:
        rng = self.rng
        people, activity = self._people
        persona = rng.choices(people, weights=activity)[0]
        names, weights = self._models
        model = rng.choices(names, weights=weights)[0]
        if rng.random() < self.mix.workflow_share:
            length = _length(rng, self.mix.question_median_chars, self.mix.prompt_sigma * 0.6,
                             self.mix.prompt_min_chars, self.prompt_cap // 4)
            body = {
                "question": text_of_length(rng, length),
                "model": model,
                "attribution": {"user_id": persona.user_id, "department": persona.department,
                                "application": persona.application},
                "synthetic": True,
            }
            return PlannedRequest(WORKFLOW_PATH, body, model, persona)
        length = _length(rng, self.mix.prompt_median_chars, self.mix.prompt_sigma, self.mix.prompt_min_chars,
                         self.prompt_cap)
        body = chat_body(model, persona.user_id, persona.department, persona.application,
                         prompt=text_of_length(rng, length))
        return PlannedRequest(CHAT_PATH, body, model, persona)

    def take(self, count: int) -> list[PlannedRequest]:
        return [self.next() for _ in range(count)]
