# Install, run and test the territory-planning pipeline.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MANIFEST := dbt_project/target/manifest.json

.PHONY: install browser run test test-all lint ui clean

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

install: $(STAMP) $(MANIFEST)

# The dbt manifest is built here, once, so nothing parses dbt at import time.
$(MANIFEST): $(STAMP) $(shell find dbt_project -name '*.sql' -o -name '*.yml' -o -name '*.csv' | grep -v target/ | grep -v dbt_packages/)
	$(BIN)/territory prepare

run: install
	$(BIN)/territory run

# The report test opens the HTML report in headless Chromium (Debian's package; nothing is downloaded by a
# test tool). Installing it needs root and apt; without them install chromium yourself.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null)) || \
	  (echo "could not install chromium (needs root and apt-get); the report's browser test will fail" >&2; exit 1)

test: install browser
	$(BIN)/python -m pytest -q

test-all: install browser
	$(BIN)/python -m pytest -q -m ""

lint: install
	$(BIN)/ruff check .
	cd dbt_project && ../$(BIN)/sqlfluff lint models

ui: install
	$(BIN)/territory ui

clean:
	rm -rf $(VENV) dbt_project/target dbt_project/logs data/warehouse.duckdb data/analytics.duckdb
