# The two set-up commands of the README:
#   make demo   installs into .venv and runs the main job (report in demo_out/)
#   make test   installs into .venv and runs the test suite
# On a machine without an NVIDIA GPU, torch is pinned to a CPU build (TORCH=...) so no CUDA
# wheels are downloaded; override TORCH to choose another build.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= demo_out
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo yes)
TORCH  ?= $(if $(HAS_GPU),torch>=2.4,torch==2.13.0)
PYTEST_ARGS ?=

.PHONY: install demo test zoo lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/python -m sae_unlearn demo --out $(OUT)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

zoo: install
	$(BIN)/python -m sae_unlearn zoo build

lint: install
	$(BIN)/ruff check sae_unlearn tests benchmarks

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
