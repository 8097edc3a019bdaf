# Chorus: `make run` serves the embedded mode, `make test` runs every test.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app app
HOST ?= 127.0.0.1
PORT ?= 5000
# The browser tests drive Debian's Chromium (Playwright's own browser download is not used).
CHROMIUM ?= /usr/bin/chromium

.PHONY: run test cluster install install-dev db seed clean chromium

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
	@test -n "$$DATABASE_URL" -a -n "$$REDIS_URL" -a -n "$$SECRET_KEY" || { \
	  echo "make cluster needs DATABASE_URL (PostgreSQL), REDIS_URL and SECRET_KEY (the same for every process), e.g."; \
	  echo "  export SECRET_KEY=\$$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"; \
	  echo "  DATABASE_URL=postgresql://postgres@127.0.0.1:5432/chorus REDIS_URL=redis://127.0.0.1:6379/0 make cluster"; \
	  exit 2; }
	$(FLASK) db upgrade
	$(FLASK) seed-demo
	$(BIN)/honcho start -f Procfile

# Installs Chromium only when it is missing: as root directly, otherwise through sudo.
# If that is impossible the browser tests skip, naming the reason (under CI they fail).
chromium:
	@if [ -x "$(CHROMIUM)" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "chromium: $(CHROMIUM) is missing and there is no apt-get to install it"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; \
	elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; \
	else echo "chromium: $(CHROMIUM) is missing; install it as root: apt-get install -y chromium"; exit 0; fi; \
	echo "chromium: installing it for the browser tests"; \
	$$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium \
	  || echo "chromium: could not install it"

# The page's DOM-free modules first (node's own test runner, no npm packages), then pytest,
# whose summary stays the last line.
test: install-dev chromium
	@command -v node >/dev/null 2>&1 || { echo "make test needs node for the page's unit tests: apt-get install nodejs"; exit 2; }
	node --test static/js/tests/
	CHORUS_CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest

clean:
	rm -rf $(VENV) instance .pytest_cache

# Benchmarks beside a bare Flask-SocketIO baseline (bench/, docs/BENCHMARKS.md): the quick
# default takes about 40 minutes on 2 cores (it prints its plan first); `make bench
# BENCH_ARGS="--full"` for the full sizes and every async mode. The load
# generator is Node's socket.io-client, pinned in bench/package-lock.json.
BENCH_ARGS ?=
.PHONY: bench

bench/node_modules/.installed: bench/package.json bench/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "make bench needs node and npm: apt-get install nodejs npm"; exit 2; }
	cd bench && npm ci --no-audit --no-fund --loglevel=error
	touch $@

bench: install-dev bench/node_modules/.installed
	$(BIN)/python bench/run.py $(BENCH_ARGS)
