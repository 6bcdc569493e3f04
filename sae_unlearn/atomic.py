"""Writes that survive a kill or a second process doing the same: atomic files and folders.

A folder is written into a temporary sibling ``.<name>.tmp-<pid>-<random>`` and moved into place
only once complete, under an exclusive lock on the parent folder (``flock`` on its file
descriptor, so no lock file is left behind):

- without ``overwrite`` the final step is exclusive: if the target appeared meanwhile (another
  process finished first) the write fails with ``FileExistsError`` and the other result stays;
- with ``overwrite`` the complete new folder is first renamed to ``.<name>.new-<pid>``, then the
  old target to ``.<name>.old-<pid>``, then the new one onto the target, then the old one is
  removed. A kill between any two of these steps leaves a state the next call (any process,
  under the same lock) repairs: a staged new folder whose old one was already moved aside is
  moved into place (the overwrite is *finished*), an old folder with no target and no staged new
  one is moved back (*rolled back*), and temporaries whose process is dead are removed.

Readers therefore see the old folder or the new one, never a mix, and never nothing once a
folder existed. "Dead" is judged by process id on this host (``os.kill(pid, 0)``); folders on a
file system shared between hosts are outside what this protects.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_STALE = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|new|old)-(?P<pid>\d+)(?:-.*)?$")


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host (permission errors count as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def locked_parent(path: str | Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the folder that holds ``path`` (created if missing)."""
    parent = Path(path).parent
    parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Flush every file under ``root`` and the folders themselves to disk."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _leftovers(target: Path) -> dict[str, list[tuple[int, Path]]]:
    """Temporaries of ``target`` in its parent, by kind (``tmp``, ``new``, ``old``)."""
    found: dict[str, list[tuple[int, Path]]] = {"tmp": [], "new": [], "old": []}
    if not target.parent.is_dir():
        return found
    for entry in target.parent.iterdir():
        m = _STALE.match(entry.name)
        if m and m["name"] == target.name:
            found[m["kind"]].append((int(m["pid"]), entry))
    return found


def recover_directory(target: str | Path) -> str | None:
    """Repair what a killed :func:`atomic_directory` left beside ``target``; return what was done.

    Call with the parent lock held (:func:`atomic_directory` does). Only temporaries of dead
    processes are touched: an interrupted overwrite is finished (its complete new folder moved
    into place) or rolled back (the old folder moved back), and unfinished temporary folders are
    removed.
    """
    target = Path(target)
    found = _leftovers(target)
    dead = {k: [(pid, p) for pid, p in v if not pid_alive(pid)] for k, v in found.items()}
    action = None
    for pid, old in dead["old"]:
        staged = [p for q, p in dead["new"] if q == pid]  # the same overwrite's complete new folder
        if not target.exists() and staged:
            os.rename(staged[0], target)
            dead["new"] = [(q, p) for q, p in dead["new"] if p != staged[0]]
            action = f"finished an interrupted overwrite of {target}"
        elif not target.exists():
            os.rename(old, target)
            action = f"rolled back an interrupted overwrite of {target} (the previous folder is back)"
            continue
        shutil.rmtree(old, ignore_errors=True)
    for kind in ("new", "tmp"):
        for _, p in dead[kind]:
            shutil.rmtree(p, ignore_errors=True)
            action = action or f"removed temporaries of a killed write of {target}"
    if action:
        logger.warning("%s", action)
    return action


@contextlib.contextmanager
def atomic_directory(target: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Write a directory atomically: yield an empty temporary sibling, move it onto ``target`` on success.

    An exception inside the block removes the temporary folder and leaves ``target`` as it was.
    Without ``overwrite`` an existing ``target`` raises ``FileExistsError``, checked before the
    block runs and again, under the lock, at the final step (so of two processes writing the
    same new target exactly one succeeds). With ``overwrite`` the old folder is replaced; see the
    module docstring for how a kill at any point is repaired by the next call.
    """
    target = Path(target)
    with locked_parent(target):
        recover_directory(target)
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} already exists; pass overwrite=True or choose another path.")
    pid = os.getpid()
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{pid}-", dir=target.parent))
    try:
        yield tmp
        fsync_tree(tmp)
        with locked_parent(target):
            recover_directory(target)
            if not target.exists():
                os.rename(tmp, target)
            elif not overwrite:
                raise FileExistsError(
                    f"{target} appeared while this write was running (another process wrote it); "
                    "it was left as it is. Pass overwrite=True to replace it, or choose another path."
                )
            else:
                new = target.with_name(f".{target.name}.new-{pid}")
                old = target.with_name(f".{target.name}.old-{pid}")
                for stale in (new, old):  # a dead process with our pid (reused id) may have left these
                    shutil.rmtree(stale, ignore_errors=True)
                os.rename(tmp, new)
                os.rename(target, old)
                os.rename(new, target)
                shutil.rmtree(old, ignore_errors=True)
            _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write JSON through a temporary file, ``fsync`` and ``os.replace`` (never a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=2, sort_keys=False, default=_json_default)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _json_default(obj: Any) -> Any:
    import torch  # only when a tensor may be in the object: keeps this module import-light

    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_json(path: str | Path, what: str = "file") -> dict:
    """Read a JSON object, naming the file and the fix when it is missing, corrupt or not an object."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {path} not found.") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(
            f"{what} {path} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); "
            "it may be truncated or hand-edited: restore it or write it again."
        ) from None
    if not isinstance(value, dict):
        raise ValueError(f"{what} {path} holds a JSON {type(value).__name__}, not an object; restore it.")
    return value


__all__ = [
    "atomic_directory",
    "fsync_tree",
    "locked_parent",
    "pid_alive",
    "read_json",
    "recover_directory",
    "write_json_atomic",
]
