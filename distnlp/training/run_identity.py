"""Which run an output directory and its checkpoints belong to (docs/architecture.md, "Runs").

A run has an id (new for every fresh start) and a hash of its resolved config, without the keys
that may change on resume (step limits, logging, where Ray runs). `output_dir/run.json` holds
both, and every checkpoint's manifest repeats them; a run resumes only its own checkpoints.

- A fresh run refuses an output directory that holds another run, unless told to replace it
  (`overwrite`); replacing removes only the entries distnlp writes there, never other files.
- `resume=true` continues the run in `output_dir`: its config must hash the same, and it must
  have a committed checkpoint; otherwise the error names the directory and the way out.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.paths import absolute_paths
from ..errors import ConfigError
from . import checkpoint as ckpt

RUN_FILE = "run.json"

# Keys that may differ between a run and its resumption: how long it runs, how it logs, where
# and on what it runs (the world size is checked by the checkpoint loader itself).
VOLATILE = {
    "training": ("max_steps", "max_epochs", "patience", "resume", "overwrite", "log_every", "curves", "checkpoints_to_keep", "nonfinite",
                 "output_dir", "prefetch", "loggers"),
    "pretrain": ("max_steps", "max_epochs", "resume", "overwrite", "log_every", "checkpoints_to_keep", "nonfinite", "output_dir", "prefetch"),
}
VOLATILE_SECTIONS = ("distributed",)

# What distnlp writes into an output directory: the only names `overwrite` may remove.
OWNED_NAMES = (RUN_FILE, "checkpoints", "model-best", "model-last", "metrics.jsonl", "config.json", "config.yaml", "ray",
               "log.jsonl", "model-last.bin", "training_curves.png", "tensorboard", "mlflow.db", "mlartifacts", "wandb")
OWNED_PATTERNS = ("model[0-9]*.bin", "model[0-9]*.temp.bin", "run.json.partial", "model*.bin.partial", ".model-best.tmp-*", ".model-last.tmp-*",
                  ".model-best.old-*", ".model-last.old-*")


@dataclass(frozen=True)
class RunIdentity:
    run_id: str
    config_hash: str
    resume: bool = False  # the user asked to continue: finding nothing to restore is an error

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "config_hash": self.config_hash, "resume": self.resume}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunIdentity":
        return cls(str(data["run_id"]), str(data["config_hash"]), bool(data.get("resume", False)))


def stable_config(config: Mapping[str, Any], section: str) -> dict[str, Any]:
    """The config without the keys that may change on resume, with absolute local paths."""
    out = json.loads(json.dumps(absolute_paths(dict(config))))
    for name in VOLATILE_SECTIONS:
        out.pop(name, None)
    node = out.get(section)
    if isinstance(node, dict):
        for key in VOLATILE.get(section, ()):
            node.pop(key, None)
    if section == "training":
        out.pop("pretrain", None)  # the pretraining group is composed into every config, unused here
    return out


def config_hash(config: Mapping[str, Any], section: str) -> str:
    text = json.dumps(stable_config(config, section), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf8")).hexdigest()[:16]


def owned_entries(output_dir: Path) -> list[Path]:
    """The entries of `output_dir` that distnlp wrote (by name), sorted."""
    if not output_dir.is_dir():
        return []
    found = {output_dir / n for n in OWNED_NAMES if (output_dir / n).exists()}
    for pattern in OWNED_PATTERNS:
        found.update(output_dir.glob(pattern))
    return sorted(found)


def committed_checkpoints(directories: Iterable[Path], run_id: str) -> list[Path]:
    """Complete checkpoints of this run under the given directories, oldest step first."""
    found: list[Path] = []
    for directory in directories:
        if not directory.is_dir():
            continue
        for path in directory.iterdir():
            if path.is_dir() and ckpt.is_complete(path) and ckpt.manifest_run_id(path) == run_id:
                found.append(path)
    return sorted(found, key=ckpt.manifest_step)


def _check_directory(output_dir: Path, key: str) -> None:
    """One line, before anything is written, if `output_dir` cannot be a directory: it, or a
    folder above it, is a file; or it cannot be created."""
    for path in (output_dir, *output_dir.parents):
        if path.exists() and not path.is_dir():
            what = "is a file" if path == output_dir else f"is under {path}, which is a file"
            raise ConfigError(key, f"{output_dir} {what}, not a directory", f"point {key} at a directory")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(key, f"cannot create {output_dir}: {exc.strerror or exc}", f"point {key} at a directory you can write") from None


def prepare_output_dir(config: Mapping[str, Any], section: str, output_dir: Path, *, resume: bool, overwrite: bool,
                       checkpoint_dirs: Iterable[Path] = ()) -> RunIdentity:
    """Establish the run's identity (driver or rank 0, before any worker starts)."""
    _check_directory(output_dir, f"{section}.output_dir")
    digest = config_hash(config, section)
    run_file = output_dir / RUN_FILE
    existing = _read_run_file(run_file)
    if resume:
        if existing is None:
            raise ConfigError(f"{section}.resume", f"{output_dir} holds no run to resume (no {RUN_FILE})",
                              f"start it without {section}.resume=true, or point {section}.output_dir at the run to continue")
        if existing.get("config_hash") != digest:
            changed = _changed_keys(existing.get("config") or {}, stable_config(config, section))
            raise ConfigError(f"{section}.resume", f"the config differs from the run in {output_dir} ({', '.join(changed[:6]) or 'config hash'})",
                              f"resume with the config it started with, or start a new run in another {section}.output_dir")
        identity = RunIdentity(str(existing["run_id"]), digest, resume=True)
        dirs = list(checkpoint_dirs)
        if dirs and not committed_checkpoints(dirs, identity.run_id):
            where = ", ".join(str(d) for d in dirs)
            raise ConfigError(f"{section}.resume", f"the run in {output_dir} has no committed checkpoint to resume (looked in {where})",
                              f"start it again with {section}.overwrite=true")
        return identity
    owned = owned_entries(output_dir)
    if owned and existing is None and overwrite:
        # Without a run record nothing proves distnlp wrote these (a user's own config.yaml, say).
        raise ConfigError(f"{section}.output_dir", f"{output_dir} holds {', '.join(p.name for p in owned[:4])} but no {RUN_FILE}, so distnlp will not remove them",
                          f"remove them yourself or choose another {section}.output_dir")
    if owned:
        if not overwrite:
            what = f"run {existing['run_id']}" if existing else f"output of an earlier run ({', '.join(p.name for p in owned[:4])})"
            raise ConfigError(f"{section}.output_dir", f"{output_dir} already holds {what}",
                              f"continue it with {section}.resume=true, replace it with {section}.overwrite=true, or choose another {section}.output_dir")
        for path in owned:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    identity = RunIdentity(uuid.uuid4().hex[:12], digest)
    output_dir.mkdir(parents=True, exist_ok=True)
    record = {**identity.as_dict(), "section": section, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "config": stable_config(config, section)}
    record.pop("resume")
    tmp = run_file.with_name(RUN_FILE + ".partial")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(run_file)
    return identity


def _read_run_file(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        raise ConfigError(str(path), "unreadable run record", "restore it, or replace the run with overwrite=true") from None
    if not isinstance(data, dict) or "run_id" not in data:
        raise ConfigError(str(path), "not a distnlp run record", "restore it, or replace the run with overwrite=true")
    return data


def _changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out += _changed_keys(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else str(key))
        return out
    return [] if old == new else [prefix or "(root)"]
