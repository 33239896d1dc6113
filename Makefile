# LLM Observability Labs. Every target installs what it needs first (OS packages, the .venv).
#   make up      start the embedded stack (PROFILE=classroom|production, TRACES=1 adds Phoenix) and print its URLs
#   make test    run the whole test suite (what CI runs)
#   make down / status / logs / generate / bench / help
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BASE ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PROFILE ?= classroom
# pytest-xdist workers of `make test`; each starts its own stack (tests/conftest.py). Four on two cores: much of the
# suite waits (alert `for` durations, notebook cell limits, scenario warm-ups), so a fourth worker fills the cores.
TEST_WORKERS ?= 4
OS_PACKAGES := stack/runner/os-packages.sh
# chromium (Debian's, /usr/bin/chromium): the headless browser of the instructor-console test (tests/test_console.py)
TEST_OS_PACKAGES := docker-compose:docker-compose chromium:chromium

TRACES_VENV := .venv-traces
TRACES_STAMP := $(TRACES_VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
TRACES_ON := $(filter-out 0 no false,$(TRACES))

.PHONY: help up down status logs test generate check-generated bench bench-class bench-streaming bench-tests os-deps venv grade release traces-backend

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON_BASE) >/dev/null || { echo "error: $(PYTHON_BASE) not found; install Python 3.11 or run make PYTHON_BASE=/path/to/python3.11" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON_BASE) -m venv $(VENV)
	@echo "Installing Python dependencies into $(VENV) (pinned in pyproject.toml)..."
	@# --no-compile: Python compiles what it imports on first use; compiling every installed package up front took 20 s
	@$(PY) -m pip install -q --disable-pip-version-check --no-compile -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP) ## create/refresh the Python virtualenv

# The trace backend gets its own virtualenv: Phoenix brings ~100 packages and would move shared ones in .venv.
$(TRACES_STAMP): pyproject.toml $(STAMP)
	@test -x $(TRACES_VENV)/bin/python || $(PYTHON_BASE) -m venv $(TRACES_VENV)
	@echo "Installing the trace backend (the 'traces' extra of pyproject.toml: Arize Phoenix) into $(TRACES_VENV)..."
	@$(TRACES_VENV)/bin/python -m pip install -q --disable-pip-version-check \
		$$($(PY) -c "import tomllib; print(' '.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['traces']))")
	@rm -f $(TRACES_VENV)/.installed-* && touch $@

traces-backend: $(TRACES_STAMP) ## install the trace backend (Arize Phoenix) into .venv-traces; `make up TRACES=1` does it

os-deps: ## install Prometheus, Alertmanager, promtool, amtool from OS packages if missing
	@bash $(OS_PACKAGES)

up: os-deps $(STAMP) $(if $(TRACES_ON),$(TRACES_STAMP)) ## start the stack and JupyterLab (PROFILE=classroom|production, JUPYTER=0 for no notebooks, TRACES=1 for Phoenix)
	@$(PY) -m stack.runner up --profile $(PROFILE) $(if $(filter 0 no false,$(JUPYTER)),--no-notebooks) \
		$(if $(TRACES_ON),--traces)

down: ## stop everything `make up` started
	@if [ -x $(PY) ]; then $(PY) -m stack.runner down; else echo "nothing to stop (no .venv yet)"; fi

status: $(STAMP) ## each component, its URL, and whether it is healthy
	@$(PY) -m stack.runner status

logs: $(STAMP) ## show the last lines of every component's log (SERVICE=name for one)
	@$(PY) -m stack.runner logs $(SERVICE)

generate: $(STAMP) ## re-render Prometheus/Alertmanager configs and promtool tests from their sources
	@$(PY) -m stack.generate

check-generated: $(STAMP)
	@$(PY) -m stack.generate --check

test: $(STAMP) ## run every test (installs what is missing first; TEST_WORKERS=1 runs them one at a time)
	@bash $(OS_PACKAGES) $(TEST_OS_PACKAGES)
	@$(PY) -m pytest $(if $(filter-out 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadgroup) $(PYTEST_ARGS)

bench: $(STAMP) ## run the benchmarks (~40 min with a class of 40 graded, stack must be down) and rewrite docs/performance.md
	@bash $(OS_PACKAGES) wrk:wrk
	@$(PY) -m bench

bench-streaming: $(STAMP) ## the gateway's added time to first token and a cache hit's latency (~1 min) into docs/performance.md
	@$(PY) -m bench.streaming

bench-class: $(STAMP) ## grade a generated class of 40 students x every lab (~30 min, stack must be down) into docs/performance.md
	@bash $(OS_PACKAGES)
	@$(PY) -m bench.classgrading

bench-tests: ## time `bash .ci/run` on a clean clone of HEAD (~8 min) and write it into docs/performance.md
	@$(PY) -m bench.testsuite

grade: $(STAMP) ## grade the labs: LAB=v1 NOTEBOOKS=labs|solutions|DIR SUBMISSIONS=DIR STRICT=1 RUN=name (a class: WORKERS=n FRESH=1 BELOW=50 TIMEOUT=s)
	@$(PY) -m graders $(if $(LAB),--lab $(LAB)) $(if $(NOTEBOOKS),--notebooks $(NOTEBOOKS)) \
		$(if $(SUBMISSIONS),--submissions $(SUBMISSIONS)) $(if $(STRICT),--strict) $(if $(RUN),--run $(RUN)) \
		$(if $(WORKERS),--workers $(WORKERS)) $(if $(filter-out 0 no false,$(FRESH)),--fresh) $(if $(BELOW),--below $(BELOW)) \
		$(if $(TIMEOUT),--timeout $(TIMEOUT))

release: $(STAMP) ## regenerate labs/ from solutions/ (nbgrader generate_assignment)
	@$(PY) -m graders.release $(if $(LAB),--lab $(LAB))

.PHONY: load
load: $(STAMP) ## synthetic load on the gateway (stack up): USERS=10 DURATION=60 (or 5m, max 1h) RATE=req/s SEED=n UI=1
	@$(PY) -m stack.loadgen $(if $(USERS),--users $(USERS)) $(if $(DURATION),--duration $(DURATION)) \
		$(if $(RATE),--rate $(RATE)) $(if $(SEED),--seed $(SEED)) $(if $(filter-out 0 no false,$(UI)),--ui)

.PHONY: dashboards dashboards-check snapshot

dashboards: $(STAMP) ## regenerate the Grafana dashboards JSON (stack/grafana/dashboards/) from stack/grafana/dashboards.py
	@$(PY) -m stack.grafana.build

dashboards-check: $(STAMP) ## prove the dashboards: up to date, structure, datasource uid, every query on the live stack (make up first)
	@$(PY) -m stack.grafana.build --check
	@$(PY) -m stack.grafana.check

snapshot: $(STAMP) ## render each dashboard to docs/img/dashboards/<uid>.png from the live Prometheus (DEMO=240: scripted traffic first)
	@$(PY) -m stack.grafana.snapshot $(if $(DEMO),--demo $(DEMO))

.PHONY: scenarios break heal

scenarios: $(STAMP) ## list the failure scenarios (what each breaks, which alert catches it)
	@$(PY) -m stack.scenarios list

break: $(STAMP) ## trigger a failure scenario and watch it live: SCENARIO=name [DURATION=seconds]
	@test -n "$(SCENARIO)" || { echo "usage: make break SCENARIO=<name> [DURATION=seconds]; \`make scenarios\` lists the names" >&2; exit 2; }
	@$(PY) -m stack.scenarios break $(SCENARIO) $(if $(DURATION),--duration $(DURATION))

heal: $(STAMP) ## stop the running failure scenario now and reset every fault knob
	@$(PY) -m stack.scenarios heal
