# The two set-up commands of the README:
#   make demo   installs the toolkit into .venv and runs the main job (report in demo_out/)
#   make test   installs the toolkit and the test tools into .venv and runs the test suite, one
#               pytest-xdist worker per core
#   make test-fast  the unit tests only (no zoo model): the inner loop
#   make tables  regenerates the tables in benchmarks/*.md from the results in benchmarks/results/*.json
# make lint (ruff, ruff format, mypy) is what CI runs besides them.
# Both install the versions in constraints.txt (the set the tests last passed with); after a green
# `make test` on newer versions, `make constraints` rewrites it from .venv.
# On a machine without an NVIDIA GPU, torch is pinned to a CPU build (TORCH=...) so no CUDA
# wheels are downloaded; override TORCH to choose another build.
#
# The notebooks:
#   make lab    installs JupyterLab and jupytext into .venv (the `lab` extra, once: a stamp file
#               keeps later runs offline) and opens JupyterLab at tutorials/ on a kernel that runs
#               the .venv Python. Without a display no browser is started: open the printed URL
#               (it carries the token). LAB_ARGS="--port=8890" passes options to jupyter lab.
#   make notebooks  syncs every notebook with its jupytext percent script (tutorials/01_models_and_capture.py
#               beside tutorials/01_models_and_capture.ipynb, ...): whichever of the pair was saved last
#               wins, then the .ipynb files are stripped of outputs. Run it after editing either side;
#               tests/unit/test_notebooks_in_sync.py fails until the pairs agree.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= demo_out
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo yes)
TORCH  ?= $(if $(HAS_GPU),torch>=2.4,torch==2.13.0)
PYTEST_ARGS ?=
PYTEST_JOBS ?= auto
LAB_ARGS ?=
# No $DISPLAY / $WAYLAND_DISPLAY (and not macOS): print the URL rather than look for a browser.
NO_BROWSER := $(if $(DISPLAY)$(WAYLAND_DISPLAY)$(filter Darwin,$(shell uname -s)),,--no-browser)
# Jupyter refuses to run as root unless told; in a container root is the usual user.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
# The percent scripts paired with a notebook (their jupytext header names the pairing).
NOTEBOOK_SCRIPTS := $(shell grep -l 'formats: ipynb,py:percent' tutorials/*.py notebooks/*.py tests/browser/*.py 2>/dev/null)

.PHONY: base-install install demo test test-fast tables zoo lint clean lab notebooks constraints

# pip byte-compiles every installed file on one core; compileall does the same on every core (the
# same .pyc files, on 2 cores a fresh install 3:34 -> 2:46). Like pip, a file that does not compile
# is skipped.
PIP     := $(BIN)/python -m pip install --quiet --no-compile
COMPILE := $(BIN)/python -m compileall -q -j 0 \
	$$($(BIN)/python -c 'import sysconfig as s; print(*{s.get_path("purelib"), s.get_path("platlib")})') >/dev/null || true

# Two stamps: the toolkit alone (what `make demo` needs: about half the install time) and the test
# and lint tools on top of it (`make test`, `make lint`).
$(BIN)/.base-installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) "$(TORCH)"
	$(PIP) -c constraints.txt -e .
	$(COMPILE)
	touch $@

$(BIN)/.installed: $(BIN)/.base-installed
	$(PIP) -c constraints.txt -e ".[dev]"
	$(COMPILE)
	touch $@

base-install: $(BIN)/.base-installed

install: $(BIN)/.installed

# After the base install, so torch stays the build TORCH chose. The kernelspec named python3 (the
# notebooks' kernel) is rewritten in .venv with this Python's absolute path.
$(BIN)/.lab-installed: $(BIN)/.installed pyproject.toml
	$(PIP) -c constraints.txt -e ".[lab]"
	$(COMPILE)
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (sae-unlearn .venv)"
	touch $@

lab: $(BIN)/.lab-installed
	$(BIN)/python -m jupyterlab --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/tutorials $(NO_BROWSER) $(ALLOW_ROOT) $(LAB_ARGS)

demo: base-install
	$(BIN)/python -m sae_unlearn demo --out $(OUT)

# One pytest-xdist worker per core (conftest.py gives each its share of torch's threads); no test
# relies on another having run in its process. PYTEST_JOBS=0: one process.
test: install
	$(BIN)/python -m pytest -n $(PYTEST_JOBS) $(PYTEST_ARGS)

# The inner loop: the model-free unit tests (no zoo model is built or loaded).
test-fast: install
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

# The benchmark tables from their results files (benchmarks/tables.py; `--check` only compares).
tables: install
	$(BIN)/python benchmarks/tables.py

# Rewrite constraints.txt from what .venv holds now (after a green `make test` on new versions).
constraints: install
	{ sed -n '/^#/p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable \
	  | grep -viE '^(torch==|sae-unlearn|nvidia-|triton)' | LC_ALL=C sort -f; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

zoo: install
	$(BIN)/python -m sae_unlearn zoo build

# What CI checks besides the tests (.ci/run): ruff over everything git tracks (package, tests,
# benchmarks, notebook scripts, the README's code), formatting, and mypy over the package.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

notebooks: install
	$(BIN)/jupytext --sync $(NOTEBOOK_SCRIPTS)
	$(BIN)/jupyter nbconvert --log-level=WARN --clear-output --inplace $(NOTEBOOK_SCRIPTS:.py=.ipynb)

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
