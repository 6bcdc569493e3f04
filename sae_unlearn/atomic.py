"""Writes that survive a kill or a second process doing the same: atomic files and folders.

A folder is written into a temporary sibling ``.<name>.tmp-<pid>-<random>`` and moved into place
only once complete, under an exclusive lock on the target (``filelock`` on a sibling
``.<name>.lock``, the lock the Hugging Face stack uses; it works on every platform):

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

Single files rewritten in place (JSON, Markdown, figures) go through :func:`atomic_file`: a
temporary beside the file, ``fsync``, ``os.replace``. What is written gets the permissions an
ordinary ``open`` would give under the process's umask (``mkstemp``/``mkdtemp`` alone would make
every export ``0600``/``0700``, unreadable to the group on a shared cluster).

Two locks serialise whole jobs:

- :func:`cache_fill_lock` (blocking): one process fills a cache entry (a zoo model, a tokenizer,
  an SAE fit) while the others wait, then load what it built;
- :func:`output_lock` (non-blocking): one writer per output folder; a second demo, fit or sweep
  into a folder that another process is writing fails at once with :class:`FolderBusyError`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from filelock import FileLock, Timeout

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


def _lock_path(path: Path) -> Path:
    return path.parent / f".{path.name}.lock"


@contextlib.contextmanager
def locked_parent(path: str | Path) -> Iterator[None]:
    """Hold the exclusive lock that guards ``path``'s atomic writes (``.<name>.lock`` beside it;
    the parent folder is created if missing). Blocks until the lock is free."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(_lock_path(path), mode=_file_mode()):
        yield


class FolderBusyError(RuntimeError):
    """Another process is writing the output folder (it holds its :func:`output_lock`)."""


@contextlib.contextmanager
def output_lock(path: str | Path, what: str = "run", folder: bool = True) -> Iterator[Path]:
    """Be the only writer of ``path`` for the whole block; yield it (a folder is created if missing).

    ``path`` is an output folder (``folder=True``) or a single file that a job rewrites (a settings
    file). The lock is ``.<name>.writer.lock`` beside it, held by the operating system: a killed
    holder releases it. A second process asking for the same path fails at once with
    :class:`FolderBusyError` naming it and the fix, before it has written anything. A folder this
    call created is removed again when the block fails while it is still empty.
    """
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path.parent / f".{path.name}.writer.lock", mode=_file_mode())
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise FolderBusyError(
            f"{path} is being written by another process (another {what} holds {lock.lock_file}); "
            "wait for it to finish or choose another output path."
        ) from None
    created = folder and not path.exists()
    try:
        if folder:
            path.mkdir(parents=True, exist_ok=True)
        yield path
    except BaseException:
        if created:  # a run refused or failed before writing anything leaves no empty folder behind
            with contextlib.suppress(OSError):
                path.rmdir()  # only if still empty
        raise
    finally:
        lock.release()


@contextlib.contextmanager
def cache_fill_lock(entry: str | Path, what: str = "cache entry") -> Iterator[None]:
    """Hold the lock that lets one process fill the cache entry ``entry`` while others wait.

    Callers check for the finished entry again inside the block: a process that waited finds
    what the first one built and loads it instead of building it twice.
    """
    entry = Path(entry)
    entry.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(entry.parent / f".{entry.name}.fill.lock", mode=_file_mode())
    try:
        lock.acquire(timeout=0)
    except Timeout:
        logger.warning("waiting for another process that is building %s (%s)", what, entry)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _file_mode() -> int:
    """The mode ``open(..., "w")`` gives a new file under the current umask."""
    return 0o666 & ~_umask()


def _dir_mode() -> int:
    """The mode ``mkdir`` gives a new folder under the current umask."""
    return 0o777 & ~_umask()


def _drop_private_locks(tmp: Path) -> None:
    """Remove the lock files that atomic writes nested inside the private temporary ``tmp`` left
    (an export inside a recipe's folder): no other process knows ``tmp``, and every nested write has
    finished, so no lock in it can be held; the finished folder holds only what was written."""
    for lock in tmp.rglob(".*.lock"):
        lock.unlink(missing_ok=True)


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
    os.chmod(tmp, _dir_mode())  # mkdtemp makes it 0700 whatever the umask
    try:
        yield tmp
        _drop_private_locks(tmp)
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


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Rewrite the file ``path`` atomically: yield an open temporary beside it, then ``fsync`` and
    ``os.replace`` it onto ``path``. A kill or an exception at any point leaves the old file whole
    (the temporary is removed on an exception). ``mode`` is ``"w"`` (text) or ``"wb"`` (bytes);
    the file gets the umask's permissions, like ``open``."""
    if mode not in ("w", "wb"):
        raise ValueError(f"mode={mode!r}; use 'w' or 'wb'.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_parts(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-", suffix=".part", dir=path.parent)
    try:
        os.fchmod(fd, _file_mode())  # mkstemp makes it 0600 whatever the umask
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _remove_dead_parts(path: Path) -> None:
    """Remove the temporaries that killed :func:`atomic_file` writes of ``path`` left behind."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.tmp-(\d+)-.*\.part$")
    for entry in path.parent.iterdir():
        m = pattern.match(entry.name)
        if m and not pid_alive(int(m.group(1))):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through :func:`atomic_file` (never a half-written file)."""
    with atomic_file(path) as fh:
        fh.write(text)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write JSON through :func:`atomic_file` (temporary, ``fsync``, ``os.replace``: never a half-written file)."""
    with atomic_file(path) as fh:
        json.dump(obj, fh, indent=2, sort_keys=False, default=_json_default)
        fh.write("\n")


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
    "FolderBusyError",
    "atomic_directory",
    "atomic_file",
    "cache_fill_lock",
    "fsync_tree",
    "locked_parent",
    "output_lock",
    "pid_alive",
    "read_json",
    "recover_directory",
    "write_json_atomic",
    "write_text_atomic",
]
