# Set-up, demo and tests for parcelguard on a Debian machine with Python 3.11.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# Two installs: the lean one runs the demo, a station and a server (no PyTorch, which only training
# needs); the full one adds the dev tools and the train extra for the tests.
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
# fonts-wqy-zenhei: Chinese glyphs (TrueType) for the referral letter the server renders.
RUN_SYSTEM_PACKAGES := libzbar0 fonts-wqy-zenhei
SYSTEM_PACKAGES := $(RUN_SYSTEM_PACKAGES) chromium chromium-driver

.PHONY: setup setup-run system-packages run-system-packages install-system-packages demo train-deps examples test lint typecheck \
	pytest clean catalogs compile-catalogs

setup: system-packages $(STAMP)

setup-run: run-system-packages $(RUN_STAMP)

system-packages:
	@$(MAKE) --no-print-directory install-system-packages PACKAGES="$(SYSTEM_PACKAGES)"

run-system-packages:
	@$(MAKE) --no-print-directory install-system-packages PACKAGES="$(RUN_SYSTEM_PACKAGES)"

# Installs only what is missing; needs root (or sudo) the first time.
install-system-packages:
	@missing=""; for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

$(VENV)/bin/python:
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install -q -e .
	$(BIN)/python -m server.web.catalog_tool --compile-only
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install -q -e '.[dev,train]'
	$(BIN)/python -m server.web.catalog_tool --compile-only
	touch $(STAMP) $(RUN_STAMP)

demo: setup-run
	$(BIN)/parcelguard demo

# PyTorch and the pretrained weights, for `parcelguard model build|finetune` (about 750 MB).
train-deps: setup-run
	$(BIN)/python -m pip install -q -e '.[train]'

# The example configs and hardware.md ship inside the package: copy the originals there after editing.
examples:
	cp config/edge.example.toml config/server.example.toml config/line.example.toml hardware.md edge/examples/

# The words of the server pages and the terminal: folds words waiting in server/web/words.py and
# edge/web/i18n.py into the gettext catalogs, adds keys the pages use but the catalogs lack, compiles.
catalogs: setup-run
	$(BIN)/python -m server.web.catalog_tool

compile-catalogs: setup-run
	$(BIN)/python -m server.web.catalog_tool --compile-only

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy edge models scanner_drivers server tests

pytest: setup
	$(BIN)/pytest

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
