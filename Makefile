# posefast: one entry point for set-up, the main job, tests and benchmarks.
#
#   make train   # set up (venv, torch, extension) and train on the built-in synthetic set
#   make test    # set up and run the test suite
#   make bench   # set up and run the kernel benchmarks
#   make check-cuda  # compile every CUDA source with nvcc, without linking (any torch build)
#
# Set-up creates .venv, installs torch==2.14.1 / torchvision==0.29.1 (or TORCH_SPEC, or
# reuses a torch the system Python already has), the requirements, and builds the extension
# posefast._C. CUDA kernels are compiled when nvcc is found and a GPU is visible, or with
# FORCE_CUDA=1 (which needs a CUDA build of torch to link against). torchvision is optional.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
CUDA_HOME ?= $(wildcard /usr/local/cuda)
export CUDA_HOME
EXT_SOURCES := setup.py $(shell find csrc -type f 2>/dev/null)
PYTEST_ARGS ?=

.PHONY: setup train test bench check-cuda clean

setup: $(VENV)/.deps-installed $(VENV)/.ext-built

$(VENV)/.deps-installed: requirements.txt
	@if $(PYTHON) -c "import torch" 2>/dev/null; then \
		echo "posefast: reusing the system's torch (venv with --system-site-packages)"; \
		$(PYTHON) -m venv --system-site-packages $(VENV); \
	else \
		$(PYTHON) -m venv $(VENV) && $(PY) -m pip install -q $(TORCH_SPEC); \
	fi
	$(PY) -m pip install -q -r requirements.txt
	@touch $@

$(VENV)/.ext-built: $(VENV)/.deps-installed $(EXT_SOURCES)
	$(PY) -m pip install -q -e . --no-build-isolation --use-pep517 --no-deps
	@touch $@

train: setup
	$(PY) -m posefast.train $(ARGS)

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS) tests

bench: setup
	$(PY) benchmarks/run.py $(ARGS)

check-cuda: $(VENV)/.deps-installed
	$(PY) scripts/check_cuda_compiles.py

clean:
	rm -rf build *.egg-info posefast/_C*.so $(VENV)/.ext-built
