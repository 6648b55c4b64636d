"""owned_paths: distnlp replaces or removes only what it wrote (docs/architecture.md, decision 8)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from distnlp.owned_paths import (
    MARKER, NotOwnedError, check_replaceable, clean_stale_temps, make_temp_dir, publish_dir, remove_owned,
)


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(proc.stdout)


def _fake_temp(parent: Path, name: str, pid: int, files: dict[str, str]) -> Path:
    d = parent / name
    d.mkdir()
    (d / MARKER).write_text(json.dumps({"pid": pid, "host": socket.gethostname()}))
    for k, v in files.items():
        (d / k).write_text(v)
    return d


def test_check_replaceable(tmp_path: Path) -> None:
    check_replaceable(tmp_path / "absent", {"a"})
    (tmp_path / "empty").mkdir()
    check_replaceable(tmp_path / "empty", ())
    d = tmp_path / "d"
    d.mkdir()
    (d / "a").write_text("ours")
    check_replaceable(d, {"a"})
    (d / "notes.txt").write_text("theirs")
    with pytest.raises(NotOwnedError, match=r"holds notes\.txt, which distnlp did not write"):
        check_replaceable(d, {"a"})
    with pytest.raises(NotOwnedError, match=r"the input .*a is inside it"):
        check_replaceable(d, {"a", "notes.txt"}, inputs=[d / "a"])
    with pytest.raises(NotOwnedError, match="is inside it"):
        check_replaceable(d, {"a", "notes.txt"}, inputs=[d])
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotOwnedError, match="not a directory"):
        check_replaceable(tmp_path / "file", ())


def test_remove_owned_removes_only_listed_entries(tmp_path: Path) -> None:
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "x").write_text("x")
    (d / "a").write_text("a")
    (d / "notes.txt").write_text("keep")
    with pytest.raises(NotOwnedError):
        remove_owned(d, {"a", "sub"})
    assert sorted(p.name for p in d.iterdir()) == ["a", "notes.txt", "sub"]  # nothing removed
    (d / "notes.txt").unlink()
    remove_owned(d, lambda name: name in ("a", "sub"))
    assert not d.exists()


def test_publish_replaces_an_owned_directory(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "old").write_text("old")
    tmp = make_temp_dir(tmp_path, ".out.tmp-")
    assert (tmp / MARKER).exists()
    (tmp / "new").write_text("new")
    publish_dir(tmp, target, {"old", "new"})
    assert sorted(p.name for p in target.iterdir()) == ["new"]  # marker dropped, old removed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    tmp = make_temp_dir(tmp_path, ".out.tmp-")
    (target / "mine.txt").write_text("mine")
    with pytest.raises(NotOwnedError):
        publish_dir(tmp, target, {"new"})
    assert (target / "mine.txt").read_text() == "mine"


def test_clean_stale_temps_only_removes_dead_marked_ones(tmp_path: Path) -> None:
    dead = _dead_pid()
    stale = _fake_temp(tmp_path, ".out.tmp-aaaa", dead, {"shard": "s"})
    alive = _fake_temp(tmp_path, ".out.tmp-bbbb", os.getppid(), {"shard": "s"})
    foreign = _fake_temp(tmp_path, ".out.tmp-cccc", dead, {"shard": "s", "notes.txt": "keep"})
    unmarked = tmp_path / ".out.tmp-dddd"
    unmarked.mkdir()
    (unmarked / "shard").write_text("s")
    removed = clean_stale_temps(tmp_path, ".out.tmp-", {"shard"})
    assert removed == [stale] and not stale.exists()
    assert alive.exists() and foreign.exists() and (foreign / "notes.txt").exists() and unmarked.exists()


def test_a_killed_writer_leaves_a_temp_that_the_next_run_removes(tmp_path: Path) -> None:
    # the process dies between writing and publishing, as with `kill -9` mid-conversion
    script = (
        "import os, sys\n"
        "from distnlp.owned_paths import make_temp_dir\n"
        f"t = make_temp_dir({str(tmp_path)!r}, '.out.tmp-')\n"
        "(t / 'shard').write_text('half')\n"
        "os._exit(9)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=False)
    (left,) = tmp_path.glob(".out.tmp-*")
    assert clean_stale_temps(tmp_path, ".out.tmp-", {"shard"}) == [left]
    assert list(tmp_path.iterdir()) == []


def test_a_symlinked_directory_is_not_replaced(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(NotOwnedError, match="symbolic link.*real"):
        check_replaceable(tmp_path / "link", ())


def test_the_current_directory_is_not_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cwd" / "sub").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "cwd" / "sub")
    for d in (Path("."), Path("..")):  # an empty cwd would otherwise be swapped out from under the shell
        with pytest.raises(NotOwnedError, match="current directory"):
            check_replaceable(d, lambda name: True)
