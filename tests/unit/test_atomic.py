"""Atomic folders under kills and races: child processes really killed at random points.

Each child writes a folder of 12 files that all carry one tag through ``atomic_directory``; it is
SIGKILLed at the N-th file-system step (rename, fsync, rmtree, mkdir; N drawn by seed) or after
a random delay. Afterwards the target must be absent, the old folder or the new one (every file
with one tag: never mixed), the next call must repair what was left, and a re-run must succeed
and leave no temporaries behind.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from sae_unlearn.atomic import atomic_directory, locked_parent, read_json, recover_directory, write_json_atomic
from tests.fault_injection import start_child

N_FILES = 12
CHILD = r"""
import time
from sae_unlearn import atomic

target, tag, overwrite = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
start_at, n_files = float(sys.argv[4]), int(sys.argv[5])
arm()
while time.time() < start_at:
    time.sleep(0.001)
print("READY", flush=True)
try:
    with atomic.atomic_directory(target, overwrite=overwrite) as tmp:
        for i in range(n_files):
            (tmp / f"part{i}.txt").write_text(tag * 2000)
            time.sleep(0.002)
except FileExistsError as e:
    print("EXISTS", e, flush=True)
    sys.exit(3)
print("DONE", calls[0], flush=True)
"""


def run_child(target: Path, tag: str, overwrite: bool, kill_at: int = -1, start_at: float = 0.0) -> subprocess.Popen:
    args = [str(target), tag, "1" if overwrite else "0", str(start_at), str(N_FILES)]
    return start_child(CHILD, args, kill_at)


def folder_tag(path: Path) -> str | None:
    """The one tag every file of a complete folder carries; ``None`` if absent; fails if mixed or partial."""
    if not path.exists():
        return None
    files = sorted(path.iterdir())
    assert [f.name for f in files] == sorted(f"part{i}.txt" for i in range(N_FILES)), f"partial folder: {files}"
    tags = {f.read_text()[0] for f in files}
    assert len(tags) == 1 and all(len(f.read_text()) == 2000 for f in files), f"mixed folder: {tags}"
    return tags.pop()


def leftovers(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}."))


def write(target: Path, tag: str, overwrite: bool = False) -> None:
    with atomic_directory(target, overwrite=overwrite) as tmp:
        for i in range(N_FILES):
            (tmp / f"part{i}.txt").write_text(tag * 2000)


@pytest.fixture(scope="module")
def steps_per_write(tmp_path_factory) -> dict[bool, int]:
    """How many patched file-system steps an uninterrupted write takes (new target; overwrite)."""
    root = tmp_path_factory.mktemp("calibrate")
    counts = {}
    for overwrite in (False, True):
        target = root / f"t-{overwrite}"
        if overwrite:
            write(target, "a")
        out, err = run_child(target, "b", overwrite).communicate(timeout=60)
        assert out.startswith("READY\nDONE"), err
        counts[overwrite] = int(out.split()[-1])
    return counts


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("overwrite", [False, True], ids=["new-target", "overwrite"])
def test_killed_write_leaves_old_or_new_and_next_call_repairs(tmp_path, steps_per_write, seed, overwrite):
    rng = random.Random(seed)
    target = tmp_path / "export"
    if overwrite:
        write(target, "o")
    by_step = seed % 2 == 0
    kill_at = rng.randint(1, steps_per_write[overwrite]) if by_step else -1
    child = run_child(target, "n", overwrite, kill_at)
    if not by_step:  # a kill at a random moment of the write
        assert child.stdout.readline().strip() == "READY"
        time.sleep(rng.uniform(0.0, 0.05))
        child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    before = folder_tag(target)  # present: old or new, never mixed
    assert before in ({None, "o", "n"} if overwrite else {None, "n"})
    with locked_parent(target):
        recover_directory(target)  # what any next call does first
    after = folder_tag(target)
    assert after in ({"o", "n"} if overwrite else {None, "n"}), "an existing folder must never vanish"
    if before is not None:
        assert after == before
    write(target, "r", overwrite=True)  # the re-run succeeds
    assert folder_tag(target) == "r" and leftovers(target) == []


def test_two_processes_writing_one_new_target_exactly_one_wins(tmp_path):
    for trial in range(7):
        target = tmp_path / f"race{trial}"
        start = time.time() + 1.0
        children = {tag: run_child(target, tag, False, start_at=start) for tag in "xy"}
        codes = {tag: c.wait(timeout=60) for tag, c in children.items()}
        assert sorted(codes.values()) == [0, 3], f"trial {trial}: exit codes {codes} (one must fail)"
        winner = next(tag for tag, code in codes.items() if code == 0)
        loser_out = children[next(t for t in codes if t != winner)].stdout.read()
        assert "appeared while this write was running" in loser_out or "already exists" in loser_out
        assert folder_tag(target) == winner and leftovers(target) == []


def test_stale_temporaries_of_live_processes_are_left_alone(tmp_path):
    target = tmp_path / "t"
    live = tmp_path / f".t.tmp-{os.getpid()}-abc"
    live.mkdir()
    dead = tmp_path / ".t.tmp-999999999-abc"
    dead.mkdir()
    write(target, "a")
    assert live.exists() and not dead.exists()


def test_error_inside_the_block_keeps_the_old_folder(tmp_path):
    target = tmp_path / "t"
    write(target, "a")
    with pytest.raises(RuntimeError), atomic_directory(target, overwrite=True) as tmp:
        (tmp / "part0.txt").write_text("b")
        raise RuntimeError("boom")
    assert folder_tag(target) == "a" and leftovers(target) == []


def test_write_json_atomic_and_read_json_name_the_file(tmp_path):
    path = tmp_path / "card.json"
    write_json_atomic(path, {"a": 1})
    assert read_json(path) == {"a": 1}
    path.write_text('{"a": ')
    with pytest.raises(ValueError, match=r"card\.json is not valid JSON.*truncated"):
        read_json(path, "unlearning card")
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"holds a JSON list, not an object"):
        read_json(path)
    with pytest.raises(FileNotFoundError, match="missing.json not found"):
        read_json(tmp_path / "missing.json")
