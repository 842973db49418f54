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

worker: install
	$(VENV)/bin/celery -A config worker --loglevel=INFO

beat: install
	$(VENV)/bin/celery -A config beat --loglevel=INFO

## Rebuild the translation catalogues (needs GNU gettext).
messages: install
	DEBUG=true $(PY) manage.py makemessages -l zh_Hans --ignore=.venv --ignore=var
	DEBUG=true $(PY) manage.py compilemessages --ignore=.venv

clean:
	rm -rf $(VENV) var/*.sqlite3* var/static
