# wpcdc: everyday commands. `make test` is what CI runs (through .ci/run).
SHELL := /bin/bash

PY ?= .venv/bin/python
# The stack script needs only the standard library: use python3 until .venv exists.
STACK_PY := $(if $(wildcard $(PY)),$(PY),python3)
STACK := deploy/local/stack.py
STACK_DIR ?= $(or $(WPCDC_STACK_DIR),.stack)
PYTEST_ARGS ?=
BENCH_ARGS ?=
BACKFILL_ARGS ?=
CODECS_ARGS ?=
# KAFKA_BROKERS=3: `make up` also starts the three-broker cluster (deploy/local/cluster.py).
KAFKA_BROKERS ?= 1
UP_SERVICES := $(if $(filter 3,$(KAFKA_BROKERS)),mariadb kafka wordpress cluster)

.PHONY: help deps up down status test test-unit test-cluster lint demo bench soak sim clean lock rules image

help:
	@echo "make deps       install Debian packages, Java/Maven check, .venv with wpcdc[dev]"
	@echo "make up         start MariaDB, Kafka and WordPress (idempotent); KAFKA_BROKERS=3 adds a 3-broker cluster"
	@echo "make down       stop the stack (the cluster too);  make status: what runs where"
	@echo "make test       deps, stack up, the whole pytest suite, stack down (keeps pytest's exit code)"
	@echo "make test-unit  tests/unit only, no servers"
	@echo "make test-cluster  only the 3-broker Kafka cluster tests (-m cluster, ~3 min; make test runs them last)"
	@echo "make lint       ruff check + mypy cdc"
	@echo "make demo       deps, up, then deploy/local/demo.py"
	@echo "make bench      deps, up, then bench.run, bench.backfill and bench.codecs (python -m ...)"
	@echo "make soak       hundreds of kill -9 cycles (SOAK_CYCLES, default 300) and 100,000 simulation seeds"
	@echo "make sim        the deterministic simulation only: SEEDS=N (default 1000), SEED=n replays one"
	@echo "make clean      stop the stack and remove $(STACK_DIR)"
	@echo "make lock       deploy/requirements.lock (+ build-requirements.lock): pinned, hashed, from pyproject.toml (uv)"
	@echo "make rules      deploy/k8s/monitoring/prometheusrule.yaml from wpcdc.rules.yaml"
	@echo "make image      release check, then docker build (PYTHON_DIGEST=sha256:... of the reviewed base image)"

deps:
	bash deploy/local/deps.sh

up: deps
	$(PY) $(STACK) up $(UP_SERVICES)

down:
	$(STACK_PY) $(STACK) down

status:
	$(STACK_PY) $(STACK) status

# The stack is stopped whatever happened, and the recipe exits with pytest's own code
# (make then reports it as "Error N"; exit 5 means pytest collected no test).
test: deps
	@rc=0; \
	if $(PY) $(STACK) up; then \
		$(PY) -m pytest -q $(PYTEST_ARGS) || rc=$$?; \
	else \
		rc=$$?; echo "make test: the stack did not come up (exit $$rc)" >&2; \
	fi; \
	$(PY) $(STACK) down || echo "make test: warning: stack down failed" >&2; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest ran no test (exit 5)" >&2; fi; \
	exit $$rc

test-unit: deps
	$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

# The `kafka_cluster` fixture starts the cluster and stops it at the end of the session.
test-cluster: deps
	$(PY) -m pytest -q -m cluster tests/integration/test_kafka_cluster.py tests/integration/test_kafka_cluster_cdc.py $(PYTEST_ARGS)

lint: deps
	$(PY) -m ruff check .
	$(PY) -m mypy cdc

demo: up
	$(PY) deploy/local/demo.py

# BENCH_ARGS: e.g. --quick, --workloads wp-bulk,latency, --no-debezium (python -m bench.run -h).
# BACKFILL_ARGS: e.g. --no-debezium, --scaling '', --reuse (python -m bench.backfill -h).
# bench.codecs (no server, ~1 min): the CPU of each Kafka codec, the default none beside zstd
# (docs/performance.md, "Compression"); CODECS_ARGS e.g. --events 200.
bench: up
	@if [ -f bench/run.py ]; then \
		$(PY) -c 'import psutil, matplotlib' 2>/dev/null || $(PY) -m pip install -q -e '.[dev,bench]'; \
		$(PY) -m bench.run $(BENCH_ARGS) && $(PY) -m bench.backfill $(BACKFILL_ARGS) \
			&& $(PY) -m bench.codecs --json bench/results/codecs-latest.json $(CODECS_ARGS); \
	else \
		echo "make bench: bench/run.py does not exist yet; nothing to run"; \
	fi

SOAK_CYCLES ?= 300
SEEDS ?= 1000
# Long runs of what `make test` runs briefly: the real-stack kill -9 cycles, and the simulation.
soak: up
	WPCDC_KILL_CYCLES=$(SOAK_CYCLES) WPCDC_BACKFILL_KILL_CYCLES=$$(( $(SOAK_CYCLES) / 10 )) \
		$(PY) -m pytest -q tests/integration/test_recovery.py $(PYTEST_ARGS)
	WPCDC_SIM_SEEDS=100000 $(PY) -m pytest -q tests/sim $(PYTEST_ARGS)

sim:
	WPCDC_SIM_SEEDS=$(SEEDS) $(if $(SEED),WPCDC_SIM_SEED=$(SEED)) $(PY) -m pytest -q tests/sim $(PYTEST_ARGS)

clean:
	$(STACK_PY) $(STACK) down
	rm -rf -- "$(STACK_DIR)"

# The image's dependencies, pinned with their hashes for Python 3.11 on any platform (the
# Dockerfile installs them with --require-hashes). Needs PyPI; tests/unit/test_image.py checks the
# result against pyproject.toml offline.
UV ?= $(dir $(PY))uv
LOCK_FLAGS := --generate-hashes --universal --python-version 3.11 --custom-compile-command "make lock" -q
lock: deps
	$(UV) pip compile pyproject.toml $(LOCK_FLAGS) -o deploy/requirements.lock
	$(PY) -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))' \
		| $(UV) pip compile - $(LOCK_FLAGS) -o deploy/build-requirements.lock

rules:
	$(STACK_PY) deploy/k8s/monitoring/prometheusrule.py

# PYTHON_DIGEST: the digest of the python:3.11-slim-bookworm image you reviewed; never a default.
IMAGE ?= wpcdc:$(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' cdc/__init__.py)
PYTHON_DIGEST ?=
image: deps
	$(PY) deploy/release_check.py --python-digest "$(PYTHON_DIGEST)" --version "$(lastword $(subst :, ,$(IMAGE)))"
	docker build -f deploy/Dockerfile --build-arg PYTHON_DIGEST=$(PYTHON_DIGEST) \
		--build-arg VERSION=$(lastword $(subst :, ,$(IMAGE))) -t $(IMAGE) .

# ------------------------------------------------------------- examples/postgres (issue 15)
# The PostgreSQL recipe: a throwaway PostgreSQL (deploy/local/postgres.py), `wpcdc stream` on the
# single site and examples/postgres/consumer.py, with edits and a kill -9 in front of you.
# DEMO_POSTGRES_ARGS=--keep leaves PostgreSQL running (python deploy/local/postgres.py down stops it).
DEMO_POSTGRES_ARGS ?=
.PHONY: demo-postgres
demo-postgres: up
	$(PY) examples/postgres/demo.py $(DEMO_POSTGRES_ARGS)

# ------------------------------------------------------------------- examples/search (issue 15)
# The search recipe: Solr 9 from Maven Central (examples/search/solr.py), `wpcdc stream` on the
# single site and examples/search/consumer.py, with edits and searches in front of you.
# DEMO_SEARCH_ARGS=--keep leaves Solr running (python examples/search/solr.py down stops it).
DEMO_SEARCH_ARGS ?=
.PHONY: demo-search
demo-search: up
	$(PY) examples/search/demo.py $(DEMO_SEARCH_ARGS)

# ------------------------------------------------------------------- examples/nextjs (issue 15)
# The Next.js recipe against the local stack: WordPress over HTTP, `wpcdc stream` for its site,
# `next build` + `next start`, the KafkaJS consumer; scripted edits, then serving until Ctrl-C.
# NEXT_PORT (default 3000, another free port when taken). examples/nextjs/README.md.
NEXT_PORT ?= 3000
.PHONY: demo-nextjs
demo-nextjs: up
	NEXT_PORT=$(NEXT_PORT) $(PY) examples/nextjs/demo.py
