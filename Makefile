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
	@# the simulated API server's TLS certificate (kubectl sends tokens only over TLS) is made by openssl
	@if ! command -v openssl >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -q && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssl; \
	fi

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check core tui tests benchmarks
	$(VENV)/bin/ruff format --check core tui tests benchmarks

# The default subset: everything but the heavy `slow` tests (simulated-Kubernetes engine variants).
test: $(TEST_STAMP) real-deps lint
	$(VENV)/bin/pytest -q -p no:cacheprovider -m "not slow" --durations=15 $(PYTEST_ARGS)

# Everything, then once more in random order (pytest-randomly is off unless asked for).
test-all: $(TEST_STAMP) real-deps lint
	$(VENV)/bin/pytest -q -p no:cacheprovider $(PYTEST_ARGS)
	$(VENV)/bin/pytest -q -p no:cacheprovider -p randomly $(PYTEST_ARGS)

# Mutation testing of the safety-critical modules ([tool.mutmut] in pyproject.toml), one module at a
# time so a 2-core box stays usable; prints the score per module and every surviving mutant.
# Each module runs against its own unit tests only (MUTATE_TESTS_<module>): the others are deselected
# through PYTEST_ADDOPTS, so mutmut's coverage map (which test calls which function) never sends a
# judge mutant through the engine suite. `mutants/` is rebuilt per module because that map is cached
# there; each module's results are kept in .mutmut-<module>.txt (the report and `make bench` read them
# all) and its survivors' diffs in .mutmut-diff-<module>.txt.
MUTATE_MODULES ?= core.judge core.analysis core.signoff core.adapters.command core.redact \
	core.adapters.kubernetes.lease core.adapters.kubernetes.undo
MUTATE_TESTS_core.judge := tests/test_judge.py tests/test_mutants_judge.py
MUTATE_TESTS_core.analysis := tests/test_analysis.py tests/test_mutants_safety.py tests/test_mutants_analysis.py
MUTATE_TESTS_core.signoff := tests/test_signoff.py tests/test_mutants_safety.py tests/test_mutants_signoff.py
MUTATE_TESTS_core.adapters.command := tests/test_command_injection.py tests/test_mutants_safety.py \
	tests/test_mutants_command.py
MUTATE_TESTS_core.redact := tests/test_mutants_redact.py
MUTATE_TESTS_core.adapters.kubernetes.lease := tests/test_lease.py tests/test_mutants_safety.py tests/test_mutants_lease.py \
	tests/test_mutants_lease_renewal.py
MUTATE_TESTS_core.adapters.kubernetes.undo := tests/test_mutants_undo.py
# not in the default list (each takes long on 2 shared cores): MUTATE_MODULES=core.rollout etc.
MUTATE_TESTS_core.rollout := tests/test_engine.py tests/test_mutants_safety.py tests/test_ready_capacity.py \
	tests/test_mutants_rollout.py tests/test_mutants_rollout_rollback.py tests/test_rollback_outcome_persisted.py \
	tests/test_mutants_rollout_driver.py tests/test_mutants_rollout_window.py tests/test_mutants_rollout_window_blind.py \
	tests/test_mutants_rollout_steps.py tests/test_mutants_rollout_steps_end.py tests/test_signal_swallowed.py \
	tests/test_mutants_rollout_context.py tests/test_mutants_rollout_progress.py tests/test_mutants_rollout_resume.py \
	tests/test_mutants_rollout_status.py \
	tests/test_mutants_rollout_commands.py tests/test_mutants_rollout_commands_effects.py \
	tests/test_mutants_rollout_gates.py tests/test_resume.py
MUTATE_TESTS_core.adapters.journal := tests/test_journal.py tests/test_mutants_journal.py \
	tests/test_mutants_journal_verify.py tests/test_journal_shared_writers.py
MUTATE_TESTS_core.adapters.kubernetes.cluster := tests/test_kube_adapter.py tests/test_mutants_safety.py \
	tests/test_ready_capacity.py
MUTATE_TESTS_core.adapters.kubernetes.traffic := tests/test_kube_adapter.py tests/test_mutants_safety.py \
	tests/test_ready_capacity.py tests/test_mutants_traffic.py tests/test_gateway_stale_route.py
# The simulated-Kubernetes variants of the engine tests in test_mutants_safety.py take 3-5 s each and
# exercise the same analysis/judge code as their in-memory twins: off for the pure modules (pytest's
# --deselect matches node-id prefixes).
MUTATE_SLOW := $(foreach t,test_proceed_is_refused_while_the_last_sample_is_not_healthy \
	test_query_string_tokens_of_health_urls_never_reach_the_journal test_blind_rollback_fires_at_its_timeout_not_later,\
	tests/test_mutants_safety.py::$(t)[kube)
# the lease's whole-session tests (an engine run on the simulated API server) run for most keeper
# mutants; its unit tests decide them, the session tests stay in `make test`
MUTATE_SLOW_core.adapters.kubernetes.lease := tests/test_lease.py::test_the_session_runs_exactly_one_renewal_loop \
	tests/test_lease.py::test_a_40s_api_outage_stops_the_driver_before_its_lease_can_be_taken
# the resume tests that run on the simulated API server (3 s each) or need tui/ (mutmut copies only
# core/): the in-memory ones decide the engine's resume mutants (a window continued, a pause kept)
MUTATE_SLOW_core.rollout := tests/test_resume.py::test_status_shows_the_holder_then_a_zombie_once_its_lease_expired \
	tests/test_resume.py::test_resume_through_the_kubernetes_adapter_once_the_dead_drivers_lease_expired \
	tests/test_resume.py::test_status_without_a_plan_lists_the_journals_unfinished_deploys \
	tests/test_resume.py::test_the_resume_is_shown_headless_and_in_the_dashboard_model
# every file any module uses; must match pytest_add_cli_args_test_selection in [tool.mutmut]
MUTATE_ALL_TESTS := $(sort $(foreach m,core.judge core.analysis core.signoff core.adapters.command \
	core.redact core.adapters.kubernetes.lease core.adapters.kubernetes.undo core.rollout \
	core.adapters.journal core.adapters.kubernetes.cluster core.adapters.kubernetes.traffic,$(MUTATE_TESTS_$(m))) \
	$(wildcard tests/test_mutants_*.py))
# mutmut lives in a venv of its own: it brings click, and with click installed httpx imports rich,
# which the import-hygiene test (core loads no UI) would then see.
MUTATE_VENV := .venv-mutate
$(MUTATE_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(MUTATE_VENV)
	$(MUTATE_VENV)/bin/pip install --quiet -e '.[test,mutate]'
	touch $@

define mutate_one
	@echo "== mutmut $(1) ($(MUTATE_TESTS_$(1)))"; rm -rf mutants; \
	PYTEST_ADDOPTS="$(foreach t,$(filter-out $(MUTATE_TESTS_$(1)),$(MUTATE_ALL_TESTS)) $(MUTATE_SLOW) $(MUTATE_SLOW_$(1)),--deselect $(t))" \
		nice -n 19 $(MUTATE_VENV)/bin/mutmut run --max-children 1 "$(1).*" >.mutmut-run.txt 2>&1 || true; \
	$(MUTATE_VENV)/bin/mutmut results --all true 2>/dev/null | grep "^ *$(1)\.x" >.mutmut-$(1).txt || true; \
	for n in $$(grep ": survived" .mutmut-$(1).txt | cut -d: -f1); do \
		$(MUTATE_VENV)/bin/mutmut show $$n 2>/dev/null | grep "^[-+][^-+]" | sed "s/^/$$n /"; \
	done >.mutmut-diff-$(1).txt

endef

# benchmarks/mutation_scores.txt keeps the scores of every module measured on this checkout (committed,
# so `make bench` shows them on a fresh clone too; the .mutmut-*.txt files are not committed)
mutate: $(MUTATE_VENV)/.installed
	$(foreach m,$(MUTATE_MODULES),$(call mutate_one,$(m)))
	@cat .mutmut-core.*.txt | $(MUTATE_VENV)/bin/python tests/mutation_report.py
	@cat .mutmut-core.*.txt | $(MUTATE_VENV)/bin/python tests/mutation_report.py --scores >benchmarks/mutation_scores.txt

bench: $(TEST_STAMP) real-deps
	@# the slow tests with the wide hypothesis profile; exit 5 (no test marked slow yet) is not a failure
	HYPOTHESIS_PROFILE=bench $(VENV)/bin/pytest -q -p no:cacheprovider -m slow $(PYTEST_ARGS) || test $$? -eq 5
	HYPOTHESIS_PROFILE=bench $(VENV)/bin/pytest -q -p no:cacheprovider tests/test_plan.py tests/test_judge.py
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done
	@echo "== mutation score (make mutate, per module; README: Mutation testing)"
	@if ls .mutmut-core.*.txt >/dev/null 2>&1; then cat .mutmut-core.*.txt | $(PY) tests/mutation_report.py --scores; \
	else echo "(recorded in benchmarks/mutation_scores.txt; make mutate measures again)"; \
		cat benchmarks/mutation_scores.txt; fi

screenshots: $(TEST_STAMP)
	$(PY) -m tui.screenshots

clean:
	rm -rf $(VENV) $(MUTATE_VENV) .pytest_cache .ruff_cache mutants .mutmut-*.txt
