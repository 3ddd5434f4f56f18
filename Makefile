# Agent Operations Console: developer commands. `make run` and `make test` need only Python 3.12+;
# everything else (the virtualenv, PostgreSQL, Redis) is built or started on demand.

VENV := .venv
PY := $(VENV)/bin/python
# Re-install only when a requirements file changes.
STAMP := $(VENV)/.installed
# Where the embedded servers, the secret key and beat's schedule live (settings read the same variable).
VAR_DIR := $(or $(AOC_VAR_DIR),var)

# mypy's Django plugin imports the settings, which refuse to load without these; it never connects.
TYPECHECK_ENV := DATABASE_URL=$${DATABASE_URL:-postgresql://localhost/typecheck} REDIS_URL=$${REDIS_URL:-redis://localhost:6379/0}

.PHONY: help venv run test lint typecheck bench lock clean-var

help:
	@echo "make run        start the console (embedded PostgreSQL and Redis unless DATABASE_URL/REDIS_URL are set)"
	@echo "make test       run the test suite (PYTEST_ARGS='-k name' to select)"
	@echo "make lint       ruff format --check and ruff check"
	@echo "make typecheck  mypy"
	@echo "make bench      benchmarks (see docs/BENCHMARKS.md)"
	@echo "make lock       regenerate requirements*.txt from requirements*.in (UPGRADE=1 to upgrade every pin)"
	@echo "make venv       build .venv"
	@echo "make clean-var  delete var/ (embedded database and Redis, secret key)"

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@if ! $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then \
		python=$$(scripts/find-python.sh) || exit 1; \
		echo "Creating $(VENV) with $$python"; \
		rm -rf $(VENV) && "$$python" -m venv $(VENV) || exit 1; \
	fi
	$(PY) -m pip install --disable-pip-version-check --quiet -r requirements-dev.txt
	@touch $@

run: $(STAMP)
	$(PY) scripts/devenv.py run

test: $(STAMP)
	$(PY) scripts/devenv.py test $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(TYPECHECK_ENV) $(VENV)/bin/mypy .

bench: $(STAMP)
	$(PY) scripts/devenv.py exec -- $(PY) bench/api_me.py
	$(PY) scripts/devenv.py exec -- $(PY) bench/engine_steps.py
	$(PY) scripts/devenv.py exec -- $(PY) bench/budgets.py
	$(PY) scripts/devenv.py exec -- $(PY) bench/traces.py
	$(PY) scripts/devenv.py exec -- $(PY) bench/guardrails.py
	$(PY) scripts/devenv.py exec -- $(PY) bench/approvals.py
	$(PY) scripts/devenv.py exec -- $(PY) bench/evals.py

lock: $(STAMP)
	$(PY) scripts/lock.py $(if $(UPGRADE),--upgrade)

# Refuses while an embedded server from var/ still runs: its files would vanish under it.
clean-var:
	@for pidfile in $(VAR_DIR)/postgres/postmaster.pid $(VAR_DIR)/redis/redis.pid; do \
		if [ -f $$pidfile ] && kill -0 "$$(head -n 1 $$pidfile)" 2>/dev/null; then \
			echo "A server from var/ is still running ($$pidfile): stop make run / make test first." >&2; \
			exit 1; \
		fi; \
	done
	rm -rf $(VAR_DIR)
