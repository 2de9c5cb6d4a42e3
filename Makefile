# deploydeck: two set-up commands (make demo, make test) and the rest.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test lint bench screenshots real-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(TEST_STAMP)

demo: $(STAMP)
	$(VENV)/bin/deploydeck demo $(ARGS)

# Real Prometheus and Alertmanager for the tests, from Debian's packages when missing.
real-deps:
	@if ! command -v prometheus >/dev/null || ! command -v prometheus-alertmanager >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -q && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus prometheus-alertmanager; \
	fi

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check core tui tests benchmarks
	$(VENV)/bin/ruff format --check core tui tests benchmarks

test: $(TEST_STAMP) real-deps lint
	$(VENV)/bin/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench: $(TEST_STAMP) real-deps
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

screenshots: $(TEST_STAMP)
	$(PY) -m tui.screenshots

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
