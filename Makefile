# salesops — every target sets up .venv on its own when needed (fresh clone friendly).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.salesops-installed
export SALESOPS_HOME ?= $(CURDIR)/data
export DAGSTER_HOME ?= $(SALESOPS_HOME)/dagster_home
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export DBT_VERSION_CHECK := false
export DO_NOT_TRACK := 1
export RUNTIME__DLTHUB_TELEMETRY := false
export DBT_PROFILES_DIR := $(CURDIR)/dbt_project
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup demo test lint ui docs bench lock clean manifest

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "[setup] installing salesops and its pinned dependencies into $(VENV) (first time ~1 min)"
	@$(BIN)/python -m pip install -q --upgrade pip > $(VENV)/pip-install.log 2>&1 \
		|| { cat $(VENV)/pip-install.log; exit 1; }
	@$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]' >> $(VENV)/pip-install.log 2>&1 \
		|| { tail -50 $(VENV)/pip-install.log; echo "[setup] install failed: full log in $(VENV)/pip-install.log"; exit 1; }
	@touch $(STAMP)

manifest: setup
	@$(BIN)/python -m orchestration.manifest

demo: setup manifest
	@$(BIN)/python -m orchestration.demo

test: setup manifest
	@$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: setup
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@cd dbt_project && ../$(BIN)/sqlfluff lint models tests macros analyses --disable-progress-bar --nocolor

ui: setup manifest
	@$(BIN)/python -m orchestration.ui

docs: setup manifest
	@$(BIN)/python -m orchestration.dbt_docs

bench: setup manifest
	@$(BIN)/python -m benchmarks.e2e --scale $(or $(SCALE),small)

lock:
	@rm -rf /tmp/salesops-lock && $(PYTHON) -m venv /tmp/salesops-lock
	@/tmp/salesops-lock/bin/pip install -q --upgrade pip && /tmp/salesops-lock/bin/pip install -q -e '.[dev]'
	@{ echo "# Exact resolved set (pip freeze of a clean install). make installs with: pip install -c constraints.txt -e .[dev]"; echo "# Regenerate: make lock"; /tmp/salesops-lock/bin/pip freeze | grep -v -E '^(salesops|-e )'; } > constraints.txt

clean:
	rm -rf $(SALESOPS_HOME) dbt_project/target dbt_project/logs
