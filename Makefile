# feedback-pipeline: `make demo` and `make test` work on a fresh machine (Python 3.11+).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
DATA_ROOT ?= data
# `make demo` runs on a copy of the bundled sample: data/config as it is, and data/'s landed
# days (the recipe in data/landing/generator.json) landed again so that they end yesterday (UTC),
# so the UI's daily partitions are all days with data. `make clean-data` removes it; the next
# `make demo` lands it again, ending on the new yesterday.
DEMO_ROOT ?= .demo
DEMO_RECIPE := --days 3 --traces-per-day 80 --seed 7 --reviews on_export

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

$(DEMO_ROOT)/landing/generator.json: | venv
	rm -rf $(DEMO_ROOT)
	mkdir -p $(DEMO_ROOT)
	cp -R $(DATA_ROOT)/config $(DEMO_ROOT)/config
	$(BIN)/feedback-pipeline generate --out $(DEMO_ROOT) --no-config --end yesterday $(DEMO_RECIPE) --quiet

demo: venv $(DAGSTER_HOME)/dagster.yaml $(DEMO_ROOT)/landing/generator.json
	$(BIN)/feedback-pipeline demo --data-root $(DEMO_ROOT)

lint: venv
	$(BIN)/ruff check feedback_pipeline feedback_pipeline_tests bench

test: venv lint
	$(BIN)/pytest -q -m "$(FAST_TESTS)"

test-slow: venv
	$(BIN)/pytest -q -m "not ($(FAST_TESTS))"

test-all: venv lint
	$(BIN)/pytest -q

ui: venv $(DAGSTER_HOME)/dagster.yaml
	FEEDBACK_DATA_ROOT=$(abspath $(DEMO_ROOT)) $(BIN)/dagster dev -w workspace.yaml

clean-data:
	rm -rf $(DEMO_ROOT)
	rm -rf $(DATA_ROOT)/warehouse $(DATA_ROOT)/restricted $(DATA_ROOT)/exports $(DATA_ROOT)/releases
	rm -f $(DATA_ROOT)/landing/reviews/*/round-*.jsonl
