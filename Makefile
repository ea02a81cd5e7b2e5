# Two commands on a fresh machine:  `make repro` (the main job)  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUN    := PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python

.PHONY: setup repro smoke recipe test test-fast bench ui clean

# Create or update .venv from the lock; nothing else.
setup: $(STAMP)
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	touch $(STAMP)

# The whole pipeline on the real data (downloads from the official sources).
repro: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

# Every stage on the real data at small sizes (recipes/smoke.yaml).
smoke: setup
	$(RUN) -m pipeline smoke

# Another recipe as a DVC experiment: make recipe RECIPE=recipes/book-sentiment.yaml
recipe: setup
	$(RUN) -m pipeline recipe $(RECIPE)

# The full suite, as CI runs it. PostgreSQL for tests/test_team.py comes first
# (installed once, on Debian/Ubuntu).
test: setup
	tests/require_postgres.sh
	$(RUN) -m pytest

# The edit loop: unit tests and small integrations (no dvc repro, PostgreSQL or queue).
test-fast: setup
	$(RUN) -m pytest -m "not slow" -q

bench: setup
	$(RUN) benchmarks/run_all.py

# The MLflow UI on the local store: http://127.0.0.1:5000
ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --port 5000

clean:
	rm -rf $(VENV) .pytest_cache
