# Fission: `make run` to try it, `make test` to test it. See README.md.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
PORT ?= 8000
HOST ?= 127.0.0.1

.PHONY: install run test lint bench worker beat messages clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $@

install: $(VENV)/.installed

## Set up everything and serve the demo on http://$(HOST):$(PORT)/ (SQLite, in-process tasks).
run: export DEBUG ?= true
run: export SITE_URL ?= http://$(HOST):$(PORT)
run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	$(PY) manage.py runserver $(HOST):$(PORT)

## The whole test suite; on PostgreSQL when DATABASE_URL is set.
test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DEBUG=true $(VENV)/bin/mypy apps config

## Benchmarks (PostgreSQL): prints each figure against its baseline measured in the same run.
bench: install
	$(PY) -m tests.bench.run $(BENCH_ARGS)

.PHONY: loadtest reliability

## A 60 s load test of a real server (wrk, PostgreSQL): requests/s, latency, errors, lost
## writes; writes tests/bench/loadtest.json and README's table. A benchmark: not in `make test`.
loadtest: install
	$(PY) -m tests.bench.loadtest $(LOADTEST_ARGS)

## The fault tests alone (PostgreSQL), then their figures into README.md.
reliability: install
	$(PY) -m pytest tests/reliability $(PYTEST_ARGS)
	$(PY) -m tests.reliability.figures

worker: install
	$(VENV)/bin/celery -A config worker --loglevel=INFO

beat: install
	$(VENV)/bin/celery -A config beat --loglevel=INFO

## Rebuild the translation catalogues (needs GNU gettext). Each app with a locale/ folder
## keeps its own catalogue; the compiled .mo files are committed, so a fresh machine
## without gettext still shows Chinese.
messages: install
	@# makemessages runs in the app's folder; `apps` is imported first because Celery's
	@# Django fixup puts that folder (and its apps.py) at the head of sys.path.
	@for app in apps/*/locale; do \
	  (cd $$(dirname $$app) && DEBUG=true PYTHONPATH=$(CURDIR) DJANGO_SETTINGS_MODULE=config.settings \
	    $(abspath $(PY)) -P -c "import apps, sys; from django.core.management import \
	    execute_from_command_line as run; run(['django-admin', 'makemessages', '-l', 'zh_Hans', \
	    '--no-obsolete', '--add-location', 'file'])") || exit 1; \
	done
	DEBUG=true $(PY) manage.py compilemessages --ignore=.venv --ignore=var

clean:
	rm -rf $(VENV) var/*.sqlite3* var/static
