# The two commands of the README, and the setup they share. Both are idempotent: a set-up .venv is
# reused (re-installed only when pyproject.toml changes).
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: repro test test-fast setup gpu-check

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	# torch first, exactly pinned (on our machines this is served from local disk). Byte-compiled at install: with
	# --no-compile setup is 27 s faster, but with PYTHONDONTWRITEBYTECODE=1 (set on our CI machines) every process
	# then compiles what it imports from source again (a fresh-clone make test took 160 s more CPU; Xeon).
	$(PY) -m pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

repro: $(STAMP)
	dvc repro

# The browser tests need Chromium and the real-SLURM test SLURM and munge: found, or installed with apt-get where
# that is possible, else one line says what to install (tests/ensure_chromium.sh, tests/ensure_slurm.sh).
# One pytest-xdist worker per core: one takes the tests of the pipeline runs (one group, first) and starts the runs
# in the background, the others run the unit tests meanwhile (tests/conftest.py). PYTEST_ARGS='-n 0': one process.
test: $(STAMP)
	@CHROMIUM="$$(bash tests/ensure_chromium.sh)" && export CHROMIUM && bash tests/ensure_slurm.sh && \
	  $(PY) -m pytest -n auto $(PYTEST_ARGS)

# The edit loop: every test not marked slow (no pipeline run, no browser, no multi-process training), spread over
# the cores by pytest-xdist: 407 tests in 1 min 41 s on two Xeon cores (388 in one process: 2 min 17 s;
# docs/performance.md); `make test` remains the command that proves everything.
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" -n auto $(PYTEST_ARGS)

# The GPU measurements of the training and performance issues in one run, each step under a time limit
# (pipeline/gpu_check.sh says which): every method's training throughput at batch 8 / 256 px, the real
# trainer end to end, SAFIN at 2048/4096 px, the data loader, torch.compile, torchrun. Needs a CUDA GPU
# and the CUDA build of torch in $(VENV) (PyPI's Linux wheel is one). Results: metrics/gpu/.
gpu-check: $(STAMP)
	PY=$(abspath $(PY)) GPU_OUT=metrics/gpu bash pipeline/gpu_check.sh
