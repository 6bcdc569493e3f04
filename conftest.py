"""Settings of every test run, the notebooks and tutorials (run by nbmake) included.

- ``SAE_UNLEARN_SMOKE=1``: a notebook's ``parameters`` cell reads it and runs its cells with fewer
  steps (the same cells, every figure and widget; the numbers are not the study's). Set it to
  ``0`` to run the notebooks at their own settings under pytest.
- Under pytest-xdist (``make test`` runs ``pytest -n auto``) each worker gets its share of the
  cores for torch's threads (and so do the notebook kernels and child processes it starts), rather
  than every worker spinning one thread per core.
"""

from __future__ import annotations

import os
import sys

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
