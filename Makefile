# feedback-pipeline: `make demo` and `make test` work on a fresh machine (Python 3.11+).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
DATA_ROOT ?= data

# `make test` is the fast tier; the slow end-to-end runs and the tests that need a service
# (PostgreSQL, Chromium, Label Studio) are `make test-slow`, which .ci/run also runs.
FAST_TESTS := not slow and not postgres and not browser and not labelstudio

.PHONY: venv demo test test-slow test-all lint ui clean-data

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

demo: venv $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/feedback-pipeline demo --data-root $(DATA_ROOT)

lint: venv
	$(BIN)/ruff check feedback_pipeline feedback_pipeline_tests bench

test: venv lint
	$(BIN)/pytest -q -m "$(FAST_TESTS)"

test-slow: venv
	$(BIN)/pytest -q -m "not ($(FAST_TESTS))"

test-all: venv lint
	$(BIN)/pytest -q

ui: venv $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml

clean-data:
	rm -rf $(DATA_ROOT)/warehouse $(DATA_ROOT)/restricted $(DATA_ROOT)/exports $(DATA_ROOT)/releases
	rm -f $(DATA_ROOT)/landing/reviews/*/round-*.jsonl
