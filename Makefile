# Two commands for a fresh machine:  make demo  |  make test
# Both create .venv with Python 3.12 and install the package with every optional backend.

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# A working python3.12: on PATH, or a pyenv install of 3.12 (whose shim may not be active).
PY312  := $(shell for c in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 \
             /usr/local/bin/python3.12 /usr/bin/python3.12; do \
             $$c -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null \
             && { echo $$c; break; }; done)

.PHONY: demo test test-all docs lint clean

$(STAMP): pyproject.toml
	@test -n "$(PY312)" || { echo "Python 3.12 not found: install it (e.g. apt-get install python3.12)"; exit 1; }
	$(PY312) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/bayesgmm demo --out out

# Two pytest-xdist workers, a test file each at a time (files share fitted fixtures).
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadfile

test: $(STAMP)
	$(PY) -m pytest -q $(XDIST)

test-all: $(STAMP)
	$(PY) -m pytest -q --run-slow $(XDIST)

# The documentation site, into site/: warnings are errors, the example notebooks run at
# their small sizes.
docs: $(STAMP)
	BAYESGMM_EXAMPLES_SMALL=1 $(VENV)/bin/mkdocs build --strict

lint: $(STAMP)
	$(VENV)/bin/ruff check bayesgmm tests

clean:
	rm -rf $(VENV) out .pytest_cache
