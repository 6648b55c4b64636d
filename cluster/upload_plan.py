"""What `ray job submit --working-dir .` would upload, made safe before it is tried.

    python3 cluster/upload_plan.py WORKING_DIR cluster/runtime_env.yaml > runtime_env.json

Ray zips the working directory (minus .gitignore'd files and the runtime env's `excludes`) and
sends it to the dashboard, which refuses more than 100 MiB with a bare HTTP 413. This script
(standard library only; PyYAML is used when present) writes the runtime env as JSON with more
excludes: every virtualenv (a directory holding pyvenv.cfg, whatever its name) and conda env,
and, in a git checkout, every untracked file or directory larger than DISTNLP_UPLOAD_MAX_FILE_MB
(default 10). Each exclusion is reported on stderr. If what is left is still larger than
DISTNLP_UPLOAD_LIMIT_MB (default 95, under Ray's 100 MiB), it exits 1 with one readable message
naming the biggest paths, before anything is uploaded.
"""
from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

MB = 1024 * 1024


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: upload_plan.py WORKING_DIR RUNTIME_ENV_YAML", file=sys.stderr)
        return 2
    root, env_file = Path(argv[0]).resolve(), Path(argv[1])
    env = read_runtime_env(env_file)
    excludes = list(env.get("excludes") or [])
    files = candidate_files(root)  # relative posix paths -> size
    files = {p: s for p, s in files.items() if not excluded(p, excludes)}
    extra: list[str] = []
    for env_dir in sorted(python_envs(root)):
        note(f"excluding the Python environment {env_dir}/ (it is never uploaded)")
        extra.append(f"/{env_dir}")
    max_file = float(os.environ.get("DISTNLP_UPLOAD_MAX_FILE_MB", "10")) * MB
    for path, size in sorted(large_untracked(root, files, max_file).items()):
        note(f"excluding untracked {path} ({size / MB:.1f} MiB); commit it or put it on shared storage if the job needs it")
        extra.append(f"/{path}")
    files = {p: s for p, s in files.items() if not excluded(p, extra)}
    limit = float(os.environ.get("DISTNLP_UPLOAD_LIMIT_MB", "95")) * MB
    total = sum(files.values())
    if total > limit:
        biggest = ", ".join(f"{p} ({s / MB:.1f} MiB)" for p, s in biggest_paths(files))
        print(
            f"cluster/submit.sh: the working directory would upload {total / MB:.0f} MiB, over the "
            f"{limit / MB:.0f} MiB Ray accepts; biggest: {biggest} (add them to excludes in {env_file}, "
            "or to .gitignore/.rayignore, or move data to shared storage such as s3://)",
            file=sys.stderr,
        )
        return 1
    env["excludes"] = excludes + extra
    json.dump(env, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def note(message: str) -> None:
    print(f"cluster/submit.sh: {message}", file=sys.stderr)


def read_runtime_env(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    try:
        import yaml
    except ImportError:
        return _simple_yaml(text)
    return dict(yaml.safe_load(text) or {})


def _simple_yaml(text: str) -> dict[str, Any]:
    """The subset runtime_env.yaml uses: top-level keys holding a list or a flat mapping."""
    out: dict[str, Any] = {}
    key = ""
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        if not line.startswith((" ", "-")):
            key = line.rstrip(":").strip()
            out[key] = None
        elif line.strip().startswith("- "):
            out[key] = (out[key] or []) + [_scalar(line.strip()[2:])]
        else:
            k, _, v = line.strip().partition(":")
            out[key] = {**(out[key] or {}), k.strip(): _scalar(v)}
    return out


def _scalar(v: str) -> str:
    v = v.strip()
    return v[1:-1] if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'" else v


def candidate_files(root: Path) -> dict[str, int]:
    """Files Ray would consider: in a git checkout, tracked + untracked files not excluded by a
    .gitignore. Ray reads .gitignore files only: what .git/info/exclude or a global excludes file
    hides from git is still uploaded, so it must count here too. Elsewhere every file."""
    listed = _git(root, "ls-files", "-z", "--cached", "--others", "--exclude-per-directory=.gitignore")
    if listed is not None:
        names = [n for n in listed.split("\0") if n]
    else:
        names = []
        for d, dirs, fs in os.walk(root):
            dirs[:] = [x for x in dirs if x != ".git"]
            names += [Path(d, f).relative_to(root).as_posix() for f in fs]
    out: dict[str, int] = {}
    for name in names:
        try:
            st = (root / name).lstat()
        except OSError:
            continue  # deleted but still in the index
        out[name] = st.st_size
    return out


def _git(root: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return proc.stdout


def python_envs(root: Path) -> list[str]:
    """Directories (relative) that are virtualenvs (pyvenv.cfg) or conda envs (conda-meta/)."""
    found: list[str] = []
    for d, dirs, files in os.walk(root):
        if "pyvenv.cfg" in files or "conda-meta" in dirs:
            found.append(Path(d).relative_to(root).as_posix())
            dirs[:] = []
            continue
        dirs[:] = [x for x in dirs if x != ".git"]
    return [f for f in found if f != "."]


def large_untracked(root: Path, files: dict[str, int], max_size: float) -> dict[str, int]:
    """Untracked files over max_size, and untracked directories whose files add up to more."""
    tracked_out = _git(root, "ls-files", "-z", "--cached")
    if tracked_out is None:
        return {}
    tracked = set(tracked_out.split("\0"))
    tracked_tops = {t.split("/", 1)[0] for t in tracked}
    untracked = {p: s for p, s in files.items() if p not in tracked}
    by_top: dict[str, int] = {}
    for p, s in untracked.items():
        top = p.split("/", 1)[0]
        if "/" in p and top not in tracked_tops:
            by_top[top] = by_top.get(top, 0) + s  # a wholly untracked directory: judged as one
    out = {d: s for d, s in by_top.items() if s > max_size}
    for p, s in untracked.items():
        if s > max_size and not any(p.startswith(d + "/") for d in out):
            out[p] = s
    return out


def excluded(path: str, patterns: list[str]) -> bool:
    """gitignore-style: "/x" anchors at the root, "x" matches any path component."""
    parts = path.split("/")
    for pat in patterns:
        pat = pat.rstrip("/")
        if pat.startswith("/"):
            anchored = pat[1:].split("/")
            if len(parts) >= len(anchored) and all(fnmatch.fnmatchcase(a, b) for a, b in zip(parts, anchored)):
                return True
        elif "/" in pat:
            if fnmatch.fnmatchcase(path, pat) or fnmatch.fnmatchcase(path, pat + "/*"):
                return True
        elif any(fnmatch.fnmatchcase(part, pat) for part in parts):
            return True
    return False


def biggest_paths(files: dict[str, int], n: int = 5) -> list[tuple[str, int]]:
    """The largest top-level entries of what would be uploaded (a directory's files summed)."""
    by_top: dict[str, int] = {}
    for p, s in files.items():
        top = p.split("/", 1)[0] + ("/" if "/" in p else "")
        by_top[top] = by_top.get(top, 0) + s
    return sorted(by_top.items(), key=lambda kv: -kv[1])[:n]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
