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

from sae_unlearn.atomic import (
    FolderBusyError,
    atomic_directory,
    locked_parent,
    output_lock,
    read_json,
    recover_directory,
    write_json_atomic,
    write_text_atomic,
)
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
    """Temporaries left beside ``target`` (its ``.lock`` file, empty and held only by live
    processes' kernel locks, is not one)."""
    return sorted(
        p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.") and p.suffix != ".lock"
    )


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


SETTINGS_WRITER = r"""
sys.path.insert(0, "benchmarks")
from pathlib import Path
from settings_file import write_settings

path = Path(sys.argv[1])
chosen = {"secrets": {"rmu": {"lr": 0.002, "padding": "x" * 4_000_000}}}
arm()
print("READY", flush=True)
write_settings(path, chosen)
print("DONE", calls[0], flush=True)
"""


def test_a_sweep_killed_while_writing_its_settings_keeps_the_old_file(tmp_path):
    """``method_sweep.py --write`` killed at each step of the write (or at a random moment):
    method_settings.json is the old file or the merged new one, never empty or partial."""
    path = tmp_path / "method_settings.json"
    old = {"secrets": {"rmu": {"lr": 0.001}, "sspu": {"lr": 0.003}}, "tofu-mini": {"rmu": {"lr": 0.005}}}
    rc, out = run_child_to_end(SETTINGS_WRITER, [str(path)], -1, old, path)
    assert rc == 0 and "DONE" in out, out
    n_steps = int(out.split("DONE")[1].split()[0])
    merged = read_json(path)
    assert merged["secrets"]["sspu"] == {"lr": 0.003} and merged["tofu-mini"] == old["tofu-mini"]
    assert merged["secrets"]["rmu"]["lr"] == 0.002
    for kill_at in [*range(1, n_steps + 1), "random"]:
        rc, out = run_child_to_end(SETTINGS_WRITER, [str(path)], kill_at, old, path)
        got = read_json(path)  # parses: never empty, never half-written
        assert got in (old, merged), f"kill at {kill_at}: {str(got)[:200]}"
        if kill_at != "random":
            assert rc == -signal.SIGKILL and got == old, f"kill at step {kill_at}: {out[-500:]}"
    write_json_atomic(path, old)  # the next write removes what the killed ones left
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == [path.name]


def run_child_to_end(code: str, args: list[str], kill_at, old: dict, path: Path) -> tuple[int, str]:
    """Reset ``path`` to ``old``, run the writer child and kill it at step ``kill_at`` (an int), at a
    random moment of its write (``"random"``) or never (-1); return its exit code and output."""
    write_json_atomic(path, old)
    child = start_child(code, args, kill_at if isinstance(kill_at, int) else -1)
    if kill_at == "random":
        assert child.stdout.readline().strip() == "READY"
        time.sleep(random.Random(0).uniform(0.0, 0.2))
        child.send_signal(signal.SIGKILL)
    out, err = child.communicate(timeout=120)
    return child.returncode, out + err[-2000:]


def test_written_files_and_folders_follow_the_umask(tmp_path):
    """mkstemp/mkdtemp would make 0600 files and 0700 folders: exports and reports unreadable to
    the group on a shared cluster. They get what ``open``/``mkdir`` give under the umask."""
    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "report.json", {"a": 1})
        write_text_atomic(tmp_path / "report.md", "# report\n")
        with atomic_directory(tmp_path / "export") as tmp:
            (tmp / "config.json").write_text("{}")
        assert (tmp_path / "report.json").stat().st_mode & 0o777 == 0o644
        assert (tmp_path / "report.md").stat().st_mode & 0o777 == 0o644
        assert (tmp_path / "export").stat().st_mode & 0o777 == 0o755
        os.umask(0o077)
        write_json_atomic(tmp_path / "private.json", {"a": 1})
        assert (tmp_path / "private.json").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


HOLDER = r"""
from sae_unlearn.atomic import output_lock
with output_lock(sys.argv[1], "demo"):
    print("READY", flush=True)
    time.sleep(60)
"""


def test_a_second_writer_of_one_output_folder_fails_at_once(tmp_path):
    """One writer per output folder: while another process holds it, a second fails at once, naming
    the folder; once the holder dies (killed), the folder is free again."""
    folder = tmp_path / "demo_out"
    holder = start_child("import time\n" + HOLDER, [str(folder)])
    try:
        assert holder.stdout.readline().strip() == "READY"
        t0 = time.time()
        with pytest.raises(FolderBusyError, match=r"demo_out is being written by another process"):
            with output_lock(folder, "demo"):
                pass
        assert time.time() - t0 < 2.0
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    with output_lock(folder, "demo") as got:  # a killed holder leaves no stale lock
        assert got == folder and folder.is_dir()


FILLER = r"""
from sae_unlearn.atomic import cache_fill_lock
from pathlib import Path
entry = Path(sys.argv[1])
with cache_fill_lock(entry, "a test entry"):
    print("READY", flush=True)
    time.sleep(1.5)
    entry.mkdir()
    (entry / "done").write_text("built by the first process")
"""


def test_a_cache_entry_is_filled_by_one_process_while_the_other_waits(tmp_path, caplog):
    """The second process asking for an entry that another fills waits (saying so), then finds it built."""
    from sae_unlearn.atomic import cache_fill_lock

    entry = tmp_path / "saes"
    filler = start_child("import time\n" + FILLER, [str(entry)])
    assert filler.stdout.readline().strip() == "READY"
    with caplog.at_level("WARNING", logger="sae_unlearn.atomic"), cache_fill_lock(entry, "SAEs"):
        assert (entry / "done").read_text() == "built by the first process"  # it waited for the build
    assert "waiting for another process that is building SAEs" in caplog.text
    assert filler.wait(timeout=30) == 0
