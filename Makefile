# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
DEMO_DIR ?= demo-night

.PHONY: demo test bench venv clean system-deps

venv: $(STAMP)

# Reinstall only when the project's declared dependencies change.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/clinepipe demo $(DEMO_DIR)

test: $(STAMP)
	$(PY) -m pytest -q -n 2

bench: $(STAMP)
	$(PY) bench/run_all.py

# System packages the full test suite uses (PostgreSQL, Chromium, astrometry.net); needs root.
system-deps:
	bash scripts/install-system-deps.sh

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
