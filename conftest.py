"""Settings of every test run, the notebooks and tutorials (run by nbmake) included.

- ``SAE_UNLEARN_SMOKE=1``: a notebook's ``parameters`` cell reads it and runs its cells with fewer
  steps (the same cells, every figure and widget; the numbers are not the study's). Set it to
  ``0`` to run the notebooks at their own settings under pytest.
- Under pytest-xdist (``make test`` runs ``pytest -n auto``) each worker gets its share of the
  cores for torch's threads (and so do the notebook kernels and child processes it starts), rather
  than every worker spinning one thread per core.
- The package's third-party imports are imported here, before the package (see
  :func:`_import_dependencies_first`).
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import os
import sys
from pathlib import Path

os.environ.setdefault("SAE_UNLEARN_SMOKE", "1")

_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
if _WORKERS > 1:
    _threads = str(max(1, (os.cpu_count() or 1) // _WORKERS))
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, _threads)
    if "torch" in sys.modules:  # imported by a plugin before this file: set it directly
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


# The longest files first, in this order (each file's tests stay together, so module fixtures are
# built once): pytest-xdist hands out tests in collection order, and a long notebook collected last
# would otherwise run alone on one worker while the other idles. Only the order changes.
LONGEST_FIRST = (
    "tests/integration/test_demo.py",
    "notebooks/tofu_mini_sspu_vs_rmu.ipynb",
    "notebooks/which_method_forgets_which_only_hides.ipynb",
    "notebooks/removed_or_suppressed.ipynb",
    "tutorials/03_unlearning_and_export.ipynb",
    "tests/integration/test_methods.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}

    def place(item) -> int:
        try:
            return rank.get(item.path.relative_to(config.rootpath).as_posix(), len(rank))
        except ValueError:  # a test outside the repository
            return len(rank)

    items.sort(key=place)  # stable: the rest keep pytest's order


def _import_dependencies_first() -> None:
    """Import what ``sae_unlearn``'s modules import at module level (torch, transformers, ...) now,
    outside the package.

    The tests run the package under jaxtyping's import hook (``--jaxtyping-packages`` in
    pyproject.toml: every function's shapes checked at run time). While that hook executes an
    instrumented module, every module imported for the first time from inside it looks for its
    bytecode under jaxtyping's own file name, finds none and is compiled from source (and compiled
    again in every process where ``PYTHONDONTWRITEBYTECODE`` is set): some 4,400 third-party modules,
    17 s of each test worker's start on 2 cores. Imported here first, they load from their ordinary
    bytecode; the package itself is still instrumented (it is not imported here).
    """
    importlib.import_module("beartype")  # the hook's type checker (pyproject.toml), imported by every module
    for path in sorted((Path(__file__).parent / "sae_unlearn").rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Import):
                modules = [(alias.name, []) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [(node.module, [alias.name for alias in node.names])]
            else:
                continue
            for name, attributes in modules:
                if name.split(".")[0] in ("sae_unlearn", "__future__"):
                    continue
                with contextlib.suppress(ImportError):  # the package's own import will say what is missing
                    module = importlib.import_module(name)
                    for attribute in attributes:  # lazy attributes (transformers') load their modules now
                        if getattr(module, attribute, None) is None:  # or a submodule not imported by its package
                            with contextlib.suppress(ImportError):
                                importlib.import_module(f"{name}.{attribute}")


def pytest_collection(session) -> None:
    # before the first test module imports the package; not in pytest-xdist's controller, which
    # collects nothing (its workers do)
    if getattr(session.config, "workerinput", None) is None and session.config.getoption("numprocesses", None):
        return
    _import_dependencies_first()
