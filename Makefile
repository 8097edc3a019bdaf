# Chorus: `make run` serves the embedded mode, `make test` runs every test.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app app
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run test cluster install install-dev db seed clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

db: install
	$(FLASK) db upgrade

seed: db
	$(FLASK) seed-demo

run: seed
	HOST=$(HOST) PORT=$(PORT) $(BIN)/python wsgi.py

cluster: install
	@test -n "$$DATABASE_URL" -a -n "$$REDIS_URL" || { \
	  echo "make cluster needs DATABASE_URL (PostgreSQL) and REDIS_URL, e.g."; \
	  echo "  DATABASE_URL=postgresql://postgres@127.0.0.1:5432/chorus REDIS_URL=redis://127.0.0.1:6379/0 make cluster"; \
	  exit 2; }
	$(FLASK) db upgrade
	$(FLASK) seed-demo
	$(BIN)/honcho start -f Procfile

test: install-dev
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) instance .pytest_cache
