# deploydeck: two set-up commands (make demo, make test) and the rest.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test test-all lint bench mutate screenshots real-deps clean

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

# Real Prometheus, Alertmanager and PostgreSQL for the tests, from Debian's packages when missing.
# PostgreSQL's binaries live off the PATH (/usr/lib/postgresql/<major>/bin); tests/real_servers.py
# looks there and in /usr/local/bin. The package's own cluster is not used: the tests initdb their own.
real-deps:
	@if ! command -v prometheus >/dev/null || ! command -v prometheus-alertmanager >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -q && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus prometheus-alertmanager; \
	fi
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! [ -x /usr/local/bin/initdb ]; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -q && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql; \
	fi

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check core tui tests benchmarks
	$(VENV)/bin/ruff format --check core tui tests benchmarks

# The default subset: everything but the heavy `slow` tests (simulated-Kubernetes engine variants).
test: $(TEST_STAMP) real-deps lint
	$(VENV)/bin/pytest -q -p no:cacheprovider -m "not slow" $(PYTEST_ARGS)

# Everything, then once more in random order (pytest-randomly is off unless asked for).
test-all: $(TEST_STAMP) real-deps lint
	$(VENV)/bin/pytest -q -p no:cacheprovider $(PYTEST_ARGS)
	$(VENV)/bin/pytest -q -p no:cacheprovider -p randomly $(PYTEST_ARGS)

# Mutation testing of the safety-critical modules ([tool.mutmut] in pyproject.toml), one module at a
# time so a 2-core box stays usable; prints the score per module and every surviving mutant.
MUTATE_MODULES ?= core.analysis core.judge core.signoff core.adapters.kubernetes.cluster \
	core.adapters.kubernetes.lease core.adapters.kubernetes.undo core.adapters.journal \
	core.adapters.command core.rollout
# mutmut lives in a venv of its own: it brings click, and with click installed httpx imports rich,
# which the import-hygiene test (core loads no UI) would then see.
MUTATE_VENV := .venv-mutate
$(MUTATE_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(MUTATE_VENV)
	$(MUTATE_VENV)/bin/pip install --quiet -e '.[test,mutate]'
	touch $@

mutate: $(MUTATE_VENV)/.installed
	@for m in $(MUTATE_MODULES); do \
		echo "== mutmut $$m"; $(MUTATE_VENV)/bin/mutmut run --max-children 1 "$$m.*" >/dev/null 2>&1 || true; \
	done
	@$(MUTATE_VENV)/bin/mutmut results --all true 2>/dev/null | $(MUTATE_VENV)/bin/python tests/mutation_report.py

bench: $(TEST_STAMP) real-deps
	@# the slow tests with the wide hypothesis profile; exit 5 (no test marked slow yet) is not a failure
	HYPOTHESIS_PROFILE=bench $(VENV)/bin/pytest -q -p no:cacheprovider -m slow $(PYTEST_ARGS) || test $$? -eq 5
	HYPOTHESIS_PROFILE=bench $(VENV)/bin/pytest -q -p no:cacheprovider tests/test_plan.py tests/test_judge.py
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

screenshots: $(TEST_STAMP)
	$(PY) -m tui.screenshots

clean:
	rm -rf $(VENV) $(MUTATE_VENV) .pytest_cache .ruff_cache mutants .mutmut-*.txt
