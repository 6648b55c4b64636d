"""cluster/submit.sh never uploads a virtualenv (whatever its name) or large untracked files, and
stops with a readable message, before uploading, when the working directory is too large."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024


def _sparse(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)  # st_size without using the disk


def _repo(tmp_path: Path) -> Path:
    """A copy of the repository's cluster/ with some code and two virtualenvs not named .venv."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "cluster", repo / "cluster")
    (repo / "train.py").write_text("print('hi')\n")
    for env in ("venv", "tools/env"):
        (repo / env).mkdir(parents=True)
        (repo / env / "pyvenv.cfg").write_text("home = /usr/bin\n")
        _sparse(repo / env / "lib" / "torch.so", 300 * MB)
    return repo


def _plan(repo: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "cluster/upload_plan.py", ".", "cluster/runtime_env.yaml"],
        cwd=repo, capture_output=True, text=True, env={**os.environ, **env},
    )


def test_virtualenvs_are_excluded_whatever_their_name(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    run = _plan(repo)
    assert run.returncode == 0, run.stderr
    env = json.loads(run.stdout)
    assert "/venv" in env["excludes"] and "/tools/env" in env["excludes"] and "/.git" in env["excludes"]
    assert env["env_vars"]["PYTHONUNBUFFERED"] == "1"
    assert "tools/env" in run.stderr


def test_too_large_fails_early_naming_the_biggest_paths(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    _sparse(repo / "data" / "big.parquet", 150 * MB)
    run = _plan(repo)
    assert run.returncode == 1 and run.stdout == ""
    assert "Traceback" not in run.stderr and "data/ (150.0 MiB)" in run.stderr and "100 MiB" not in run.stdout
    assert len(run.stderr.strip().splitlines()) == 3  # two exclusion notes + the one-line error


def test_large_untracked_files_are_excluded_in_a_git_checkout(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "train.py", "cluster"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=repo, check=True)
    _sparse(repo / "scratch" / "dump.bin", 60 * MB)  # an untracked directory
    _sparse(repo / "notes.pdf", 40 * MB)  # an untracked file
    (repo / "small.txt").write_text("kept")
    run = _plan(repo)
    assert run.returncode == 0, run.stderr
    excludes = json.loads(run.stdout)["excludes"]
    assert "/scratch" in excludes and "/notes.pdf" in excludes and "/small.txt" not in excludes


def test_what_only_git_info_exclude_hides_still_counts(tmp_path: Path) -> None:
    """Ray honours .gitignore files only: a directory hidden by .git/info/exclude is uploaded,
    so it must be judged (and here excluded) like any untracked one. It once slipped through and
    the upload ended in an HTTP 413."""
    repo = _repo(tmp_path)
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "train.py", "cluster"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=repo, check=True)
    (repo / ".git" / "info" / "exclude").write_text("/pre/\n")
    _sparse(repo / "pre" / "model0.bin", 60 * MB)
    _sparse(repo / "pre" / "model1.bin", 60 * MB)
    run = _plan(repo)
    assert run.returncode == 0, run.stderr
    assert "/pre" in json.loads(run.stdout)["excludes"] and "pre (120.0 MiB)" in run.stderr


def _fake_ray(tmp_path: Path) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    ray = bindir / "ray"
    ray.write_text(
        "#!/usr/bin/env bash\n"
        f"echo \"$@\" > {tmp_path}/ray-args\n"
        "while [ $# -gt 0 ]; do if [ \"$1\" = --runtime-env ]; then cp \"$2\" " f"{tmp_path}/ray-env; fi; shift; done\n"
    )
    ray.chmod(ray.stat().st_mode | stat.S_IEXEC)
    return bindir


def test_submit_script_uses_the_plan_and_stops_before_uploading(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    env = {**os.environ, "PATH": f"{_fake_ray(tmp_path)}{os.pathsep}{os.environ['PATH']}",
           "RAY_ADDRESS": "http://127.0.0.1:1", "PYTHON": sys.executable}
    run = subprocess.run(["bash", "cluster/submit.sh", "training.max_steps=1"], cwd=repo, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "/venv" in json.loads((tmp_path / "ray-env").read_text())["excludes"]
    assert "-- distnlp train distributed=ray training.max_steps=1" in (tmp_path / "ray-args").read_text()
    (tmp_path / "ray-args").unlink()
    _sparse(repo / "data" / "big.parquet", 150 * MB)
    run = subprocess.run(["bash", "cluster/submit.sh"], cwd=repo, env=env, capture_output=True, text=True)
    assert run.returncode == 1 and "data/" in run.stderr
    assert not (tmp_path / "ray-args").exists()  # ray job submit never ran
