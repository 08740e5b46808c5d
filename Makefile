# `make demo` runs the app on the embedded model; `make test` runs every test.
# Both create .venv on first use with the CPU build of torch that this machine keeps on disk;
# `make test` also installs what the tests need beyond Python packages (`make prerequisites`).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0

.PHONY: install prerequisites demo test lint bench evaluate

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

# Fashion-MNIST and a Chromium for the browser tests: Debian's packages where apt may be used,
# else Playwright's own Chromium; otherwise one line naming the command to run (tests/prerequisites.py)
prerequisites: install
	$(PY) tests/prerequisites.py --install

demo: install
	$(PY) app.py

test: prerequisites
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: install
	$(PY) -m dit_demo bench

evaluate: install
	$(PY) -m dit_demo.evaluate
