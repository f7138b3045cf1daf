# The two commands of the README, and the setup they share. Both are idempotent: a set-up .venv is
# reused (re-installed only when pyproject.toml changes).
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: repro test setup gpu-check

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

# The GPU measurements of the performance issue, on a machine with a CUDA GPU (needs the CUDA build of
# torch in $(VENV)): SAFIN inference at 2048 and 4096 px (peak = CUDA max allocated), then training
# throughput of every method at the paper's batch 8 / 256 px with bf16, channels_last and fused Adam:
# images/s, TFLOP/s, fraction of the GPU's datasheet peak and the hours of the 160k-iteration recipe.
gpu-check: $(STAMP)
	safin bench --method safin --size 2048 --size 4096 --no-naive --runs 3 --wct-size 0 --train-runs 0 \
		--out metrics/speed_gpu_inference.json
	safin bench --train-only --train-runs 10 --out metrics/speed_gpu_train.json
