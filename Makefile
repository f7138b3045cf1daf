# The two commands of the README, and the setup they share. Both are idempotent: a set-up .venv is
# reused (re-installed only when pyproject.toml changes).
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: repro test setup

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	# torch first, exactly pinned (on our machines this is served from local disk)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

repro: $(STAMP)
	dvc repro

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)
