"""Fault injection for the kill tests: child processes that SIGKILL themselves at the N-th
file-system step.

:data:`KILLER` is Python source a child script starts with. After ``arm()``, every call of
``os.rename``, ``os.replace``, ``os.fsync``, ``os.mkdir`` and ``shutil.rmtree`` (the steps of
writing weights, cards, checkpoints and atomic folders) is counted, and the call numbered
``$KILL_AT`` kills the process instead of running; ``calls[0]`` is the count so far (an
uninterrupted run prints it, so a test can draw N among the steps that really happen).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

KILLER = r"""
import os, shutil, signal, sys
calls = [0]
kill_at = int(os.environ.get("KILL_AT", "-1"))

def killing(fn):
    def wrapped(*a, **k):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return fn(*a, **k)
    return wrapped

def arm():
    for name in ("rename", "replace", "fsync", "mkdir"):
        setattr(os, name, killing(getattr(os, name)))
    shutil.rmtree = killing(shutil.rmtree)
"""


def start_child(code: str, args: list[str], kill_at: int = -1) -> subprocess.Popen:
    """Start ``python -c KILLER + code args…`` in the repository root (``tests`` importable)."""
    return subprocess.Popen(
        [sys.executable, "-c", KILLER + code, *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "KILL_AT": str(kill_at), "OMP_NUM_THREADS": "1"},
    )


def run_child(code: str, args: list[str], kill_at: int = -1, timeout: float = 300) -> tuple[int, str]:
    """Run a child to its end (or its kill); return its exit code (-9 when killed) and output."""
    child = start_child(code, args, kill_at)
    out, err = child.communicate(timeout=timeout)
    return child.returncode, out + err[-3000:]
