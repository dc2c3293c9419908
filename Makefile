# composer-s3-mirror: `make demo` runs the main job end to end on embedded defaults,
# `make test` runs the whole suite. Both create .venv from requirements-dev.txt (the runtime set in
# requirements.txt plus the test tools) pinned by constraints.txt.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYTHONPATH := $(CURDIR)/include:$(CURDIR)

# The demo mirrors the bundled sample registry unless UPSTREAM is given.
UPSTREAM ?=
PACKAGES ?=

.PHONY: venv tools services test test-unit demo stack stack-down bench lint freeze clean

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	touch $(STAMP)

venv: $(STAMP)

# composer (the real client) and composer/semver (the reference for the constraint tests),
# from Debian's packages, when missing and when this machine can install them.
tools:
	@if ! command -v composer >/dev/null || ! test -f /usr/share/php/Composer/Semver/autoload.php \
	    || ! command -v chromium >/dev/null || ! php -m | grep -qx curl; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing composer, php-composer-semver and chromium (Debian packages)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq composer php-composer-semver php-zip php-curl unzip chromium chromium-driver >/dev/null; \
	  else echo "composer is missing and cannot be installed here: tests that need it will fail"; fi; \
	fi

# The servers of the production topology (make stack and its integration test), from Debian's packages.
services:
	@if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || ! command -v redis-server >/dev/null \
	    || ! command -v nginx >/dev/null; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing postgresql, redis-server and nginx (Debian packages)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql redis-server nginx >/dev/null; \
	  else echo "postgresql, redis-server or nginx is missing and cannot be installed here: make stack will fail"; fi; \
	fi

test: venv tools services
	$(PY) -m pytest

# The fast loop: the tests marked neither integration, browser, stack nor perf (pyproject.toml's markers).
# Like `make test`, it fails when pytest collects no tests (exit 5).
test-unit: venv
	$(PY) -m pytest -m "not integration and not browser and not stack and not perf"

demo: venv tools
	$(PY) scripts/demo.py $(if $(UPSTREAM),--upstream "$(UPSTREAM)") $(if $(PACKAGES),--packages "$(PACKAGES)")

# The production topology (docker-compose.yaml's services) as local processes on loopback; see README.
STACK_DIR ?= .stack
stack: venv tools services
	$(PY) scripts/stack.py up --dir "$(STACK_DIR)" $(if $(UPSTREAM),--upstream "$(UPSTREAM)") $(if $(PACKAGES),--packages "$(PACKAGES)")

stack-down:
	$(PY) scripts/stack.py down --dir "$(STACK_DIR)"

bench: venv tools services
	$(PY) bench/run.py $(BENCH_ARGS)

# ruff (rules and format) on everything, mypy on include/ and dags/ ([tool.mypy] in pyproject.toml).
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Both constraints files are pip freezes of throw-away virtualenvs, so nothing installed by hand in
# .venv leaks into them. constraints.txt first: the development set, keeping the pins it had (a new
# requirement is resolved against them). Then constraints-runtime.txt: a clean install of the
# runtime set alone (what the image carries), pinned by the new constraints.txt, so the runtime
# packages have the same versions in both files.
FRESH_FREEZE_VENV = rm -rf .freeze-venv && $(PYTHON) -m venv .freeze-venv && .freeze-venv/bin/pip install --quiet --upgrade pip
freeze:
	$(FRESH_FREEZE_VENV)
	.freeze-venv/bin/pip install --quiet -r requirements-dev.txt -c constraints.txt
	{ echo "# Development pins: the runtime pins (constraints-runtime.txt) plus requirements-dev.txt's tools (make freeze)."; \
	  .freeze-venv/bin/pip freeze --exclude-editable; } > constraints.txt
	$(FRESH_FREEZE_VENV)
	.freeze-venv/bin/pip install --quiet -r requirements.txt -c constraints.txt
	{ echo "# Runtime pins: pip freeze of a clean install of requirements.txt (make freeze). Python 3.11."; \
	  .freeze-venv/bin/pip freeze --exclude-editable; } > constraints-runtime.txt
	rm -rf .freeze-venv

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache $(STACK_DIR)
