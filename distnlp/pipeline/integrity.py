"""A saved model's integrity: meta.json lists every file `Pipeline.to_disk` wrote with its size and
SHA-256 (`checksums`), and loading checks them before reading anything, then refuses weights that
hold NaN or inf. A model saved before checksums (meta.json without `checksums`, or no meta.json)
loads unchecked, as it did.

The checksums are those of the checkpoint manifest (training/checkpoint.py): sizes catch a torn
copy at a glance, SHA-256 catches bytes changed in place (bit rot, an edit, a torn write). Each
error is one line naming the file (and the tensor) and what to do.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import torch

from ..errors import ModelError
from ..hashed_files import file_sha256

log = logging.getLogger(__name__)

META_FILE = "meta.json"
CHECKSUMS = "checksums"  # meta.json key: {relative posix path: {"size": int, "sha256": hex}}
FIX = "re-save the model, or train again"
NONFINITE_FIX = "the weights were saved after training diverged, or the file was damaged: save the model again from a good checkpoint, or train again"


def complete_checksums(root: Path, recorded: Mapping[str, Mapping[str, Any]], skip: frozenset[str]) -> dict[str, dict[str, Any]]:
    """`recorded` (hashed while writing) plus every other file under `root` (written by code that
    does not hash: vectors/, transformer/), hashed now; `skip`: names never listed (meta.json itself)."""
    sums = {name: dict(entry) for name, entry in recorded.items()}
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if name in sums or name in skip or path.is_symlink() or not path.is_file():
            continue
        sums[name] = {"size": path.stat().st_size, "sha256": file_sha256(path)}
    return dict(sorted(sums.items()))


def read_meta(path: Path) -> dict[str, Any] | None:
    """The model's meta.json, None when there is none (a model saved before meta.json existed)."""
    meta_path = path / META_FILE
    if not meta_path.exists():
        return None
    try:
        info = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ModelError(str(meta_path), f"unreadable ({type(exc).__name__}: {_one_line(exc)}); the file was changed or damaged after saving", FIX) from None
    if not isinstance(info, dict):
        raise ModelError(str(meta_path), "not a JSON object; the file was changed or damaged after saving", FIX)
    return info


def verify_files(path: Path, info: Mapping[str, Any] | None) -> int:
    """Check every file meta.json lists: present, its size, then its SHA-256. Returns how many were
    checked (0: a model saved before checksums). Raises ModelError naming the first bad file."""
    sums = None if info is None else info.get(CHECKSUMS)
    if sums is None:
        log.debug("%s: saved without checksums in meta.json (before distnlp recorded them); files not verified", path)
        return 0
    meta_path = path / META_FILE
    if not isinstance(sums, dict):
        raise ModelError(str(meta_path), f"{CHECKSUMS!r} is not a mapping; the file was changed or damaged after saving", FIX)
    entries: list[tuple[Path, int, str]] = []
    for name, entry in sums.items():
        rel = PurePosixPath(name)
        size = entry.get("size") if isinstance(entry, dict) else None
        sha = entry.get("sha256") if isinstance(entry, dict) else None
        if (not name or rel.is_absolute() or ".." in rel.parts or not isinstance(size, int) or isinstance(size, bool)
                or not isinstance(sha, str) or len(sha) != 64):
            raise ModelError(str(meta_path), f"malformed {CHECKSUMS} entry {name!r}; the file was changed or damaged after saving", FIX)
        entries.append((path.joinpath(*rel.parts), size, sha))
    for file, size, _ in entries:  # sizes first: cheap, and a torn copy shows at once
        if not file.is_file():
            raise ModelError(str(file), "missing (meta.json lists it); the model directory is incomplete", "copy the whole model directory again, or re-save the model")
        actual = file.stat().st_size
        if actual != size:
            raise ModelError(str(file), f"{actual:,} bytes, meta.json says {size:,} (the file is truncated, or was changed after saving)", FIX)
    for file, _, sha in entries:
        if file_sha256(file) != sha:
            raise ModelError(str(file), "SHA-256 differs from meta.json (the file, or meta.json, was changed or damaged after saving)", FIX)
    return len(entries)


def check_finite(state: Mapping[str, torch.Tensor], file: Path | str) -> None:
    """Refuse NaN or inf in any floating tensor, naming the file and the first such tensor."""
    for name, tensor in state.items():
        if not all_finite(tensor):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ModelError(str(file), f"tensor {name!r} holds {bad:,} non-finite value(s) (NaN or inf)", NONFINITE_FIX)


def check_finite_array(data: Any, file: Path | str, name: str) -> None:
    """The same for a NumPy matrix (a vectors table)."""
    import numpy as np

    arr = np.asarray(data)
    if arr.dtype.kind not in "fc" or arr.size == 0:
        return
    # min and max propagate NaN and show an inf: no boolean copy of the matrix
    ok = bool(np.isfinite(arr).all()) if arr.dtype.kind == "c" else bool(np.isfinite(arr.min()) and np.isfinite(arr.max()))
    if not ok:
        bad = int((~np.isfinite(arr)).sum())
        raise ModelError(str(file), f"tensor {name!r} holds {bad:,} non-finite value(s) (NaN or inf)", NONFINITE_FIX)


def all_finite(tensor: torch.Tensor) -> bool:
    """No NaN or inf. Min and max propagate NaN and are +-inf where an inf is: one pass without the
    boolean copy `isfinite(t).all()` makes (15x faster on CPU)."""
    if tensor.is_complex():
        return bool(torch.isfinite(tensor).all())
    if not tensor.is_floating_point() or tensor.numel() == 0:
        return True
    lo, hi = torch.aminmax(tensor)
    return bool(torch.isfinite(lo)) and bool(torch.isfinite(hi))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
