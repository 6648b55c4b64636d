"""The static vectors table and the protocol a user's table must meet.

A vectors directory holds `vectors.safetensors` (`vectors`: float32 [rows, dim]; `key_rows`:
int64 row of each word, several words may share a row after pruning), `words.txt` (one word a
line, in key order) and `vectors.json` (dim, rows, name, source and content hashes, key_attr).
Nothing is pickled.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from safetensors.numpy import load_file, save_file

from ..errors import CheckpointError, ConfigError, did_you_mean
from ..registry import vectors as vectors_registry
from .nearest import nearest_rows

__all__ = ["KEY_ATTRS", "VECTORS_FILES", "Vectors", "VectorsLike", "load_vectors", "vectors_entries"]

FORMAT_VERSION = 1
VECTORS_FILES = ("vectors.safetensors", "words.txt", "vectors.json")
# How a word is looked up (spaCy's StaticVectors key_attr): ORTH as written, LOWER/NORM lowercased.
KEY_ATTRS = ("ORTH", "LOWER", "NORM")


@runtime_checkable
class VectorsLike(Protocol):
    """What Doc.vocab_vectors, Token.vector and the static-vectors embedding need of a table."""

    @property
    def dim(self) -> int: ...

    def get(self, word: str) -> np.ndarray: ...

    def has(self, word: str) -> bool: ...

    def get_batch(self, words: Sequence[str]) -> np.ndarray: ...


class Vectors:
    """words -> rows of a float32 matrix. OOV words get zero vectors."""

    def __init__(
        self,
        words: Sequence[str],
        data: np.ndarray,
        *,
        key_rows: Sequence[int] | np.ndarray | None = None,
        name: str | None = None,
        key_attr: str = "ORTH",
        source_hash: str | None = None,
    ) -> None:
        data = np.ascontiguousarray(data, dtype=np.float32)
        if data.ndim != 2:
            raise ValueError(f"vectors must be a 2-d matrix, got shape {data.shape}")
        rows = np.arange(len(words), dtype=np.int64) if key_rows is None else np.asarray(key_rows, dtype=np.int64)
        if len(rows) != len(words):
            raise ValueError(f"{len(words)} words but {len(rows)} key rows")
        if len(rows) and (rows.min() < 0 or rows.max() >= data.shape[0]):
            raise ValueError(f"key rows must lie in [0, {data.shape[0]})")
        key_attr = str(key_attr).upper()
        if key_attr not in KEY_ATTRS:
            raise ConfigError("key_attr", f"unknown lookup attribute {key_attr!r}", did_you_mean(key_attr, KEY_ATTRS))
        self.data = data
        self.words = list(words)
        self.key_rows = rows
        self.name = name
        self.key_attr = key_attr
        self.source_hash = source_hash
        self._lower = key_attr != "ORTH"
        self._row: dict[str, int] = {}
        for w, r in zip(self.words, rows.tolist()):
            self._row.setdefault(w.lower() if self._lower else w, r)  # first occurrence wins

    # --- lookups -----------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self.data.shape[1])

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.data.shape[0]), int(self.data.shape[1]))

    def __len__(self) -> int:
        return len(self._row)

    def __contains__(self, word: str) -> bool:
        return self.has(word)

    def _key(self, word: str) -> str:
        return word.lower() if self._lower else word

    def has(self, word: str) -> bool:
        return self._key(word) in self._row

    def row(self, word: str) -> int:
        return self._row.get(self._key(word), -1)

    def get(self, word: str) -> np.ndarray:
        r = self._row.get(self._key(word), -1)
        return self.data[r].copy() if r >= 0 else np.zeros((self.dim,), dtype=np.float32)

    def rows(self, words: Sequence[str]) -> np.ndarray:
        """int64 row of each word, -1 where missing."""
        get = self._row.get
        keys = (w.lower() for w in words) if self._lower else iter(words)
        return np.fromiter((get(k, -1) for k in keys), dtype=np.int64, count=len(words))

    def get_batch(self, words: Sequence[str]) -> np.ndarray:
        rows = self.rows(words)
        out = self.data[np.maximum(rows, 0)]
        out[rows < 0] = 0.0
        return out

    def most_similar(self, word: str, n: int = 10) -> list[tuple[str, float]]:
        """The n nearest words by cosine (brute force; for inspection and tests)."""
        q = self.get(word)
        norms = np.linalg.norm(self.data, axis=1) * (np.linalg.norm(q) or 1.0)
        sims = self.data @ q / np.maximum(norms, 1e-12)
        best: list[tuple[str, float]] = []
        seen: set[int] = set()
        row_words: dict[int, str] = {}
        for w, r in zip(self.words, self.key_rows.tolist()):
            row_words.setdefault(r, w)
        for r in np.argsort(-sims):
            r = int(r)
            if r in seen or r not in row_words or row_words[r] == word:
                continue
            seen.add(r)
            best.append((row_words[r], float(sims[r])))
            if len(best) >= n:
                break
        return best

    # --- pruning -----------------------------------------------------------------------------
    def prune(self, n_rows: int, batch_size: int = 4096) -> dict[str, tuple[str, float]]:
        """Keep the first n_rows rows; every word of a removed row now points to the kept row
        nearest by cosine (spaCy's Vectors.prune_vectors). Returns {removed: (kept, score)}."""
        n_rows = int(n_rows)
        if n_rows < 1:
            raise ValueError(f"prune needs at least 1 row, not {n_rows}")
        if n_rows >= self.data.shape[0]:
            return {}
        kept, removed = self.data[:n_rows], self.data[n_rows:]
        best, scores = nearest_rows(removed, kept, batch_size=batch_size)
        remap_rows = np.concatenate([np.arange(n_rows, dtype=np.int64), best])
        old = self.key_rows
        self.key_rows = remap_rows[old]
        self.data = np.ascontiguousarray(kept)
        first_word = {}
        for w, r in zip(self.words, old.tolist()):
            first_word.setdefault(r, w)
        remap: dict[str, tuple[str, float]] = {}
        for w, r in zip(self.words, old.tolist()):
            if r >= n_rows:
                remap[w] = (first_word.get(int(best[r - n_rows]), ""), float(scores[r - n_rows]))
        self._row = {}
        for w, r in zip(self.words, self.key_rows.tolist()):
            self._row.setdefault(self._key(w), r)
        return remap

    # --- serialization -----------------------------------------------------------------------
    def content_hash(self) -> str:
        """sha256 of matrix, key rows and words: replicas compare it to be sure they share a table."""
        h = hashlib.sha256()
        h.update(np.asarray(self.data.shape, dtype=np.int64).tobytes())
        h.update(self.data.tobytes())
        h.update(self.key_rows.tobytes())
        h.update("\n".join(self.words).encode("utf8", "surrogatepass"))
        return h.hexdigest()

    def to_disk(self, path: str | Path) -> Path:
        path = Path(path)
        bad = next((w for w in self.words if "\n" in w or "\r" in w), None)
        if bad is not None:
            raise ValueError(f"word {bad!r} contains a line break and cannot be written to words.txt")
        path.mkdir(parents=True, exist_ok=True)
        save_file({"vectors": self.data, "key_rows": self.key_rows}, str(path / "vectors.safetensors"))
        with open(path / "words.txt", "w", encoding="utf8", newline="\n", errors="surrogatepass") as f:
            f.write("".join(w + "\n" for w in self.words))
        meta = {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "dim": self.dim,
            "rows": int(self.data.shape[0]),
            "n_words": len(self.words),
            "key_attr": self.key_attr,
            "source_hash": self.source_hash,
            "vectors_hash": self.content_hash(),
        }
        (path / "vectors.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf8")
        return path

    @classmethod
    def from_disk(cls, path: str | Path, key_attr: str | None = None) -> "Vectors":
        path = Path(path)
        for fname in ("vectors.safetensors", "words.txt", "vectors.json"):
            if not (path / fname).exists():
                raise CheckpointError(
                    f"{path}: not a vectors directory ({fname} is missing; create one with `distnlp init vectors`)"
                )
        try:
            meta = json.loads((path / "vectors.json").read_text(encoding="utf8"))
            tensors = load_file(str(path / "vectors.safetensors"))
            with open(path / "words.txt", encoding="utf8", newline="", errors="surrogatepass") as f:
                text = f.read()
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: cannot read the vectors table: {exc}") from exc
        words = text[:-1].split("\n") if text else []  # split on \n only: words may hold \x85, \u2028
        data, key_rows = tensors.get("vectors"), tensors.get("key_rows")
        if data is None or key_rows is None or len(words) != len(key_rows) or data.ndim != 2:
            raise CheckpointError(f"{path}: vectors.safetensors and words.txt do not match")
        if int(meta.get("dim", data.shape[1])) != data.shape[1]:
            raise CheckpointError(f"{path}: vectors.json says dim {meta.get('dim')}, the matrix has {data.shape[1]}")
        return cls(
            words, data, key_rows=key_rows, name=meta.get("name"),
            key_attr=key_attr or meta.get("key_attr", "ORTH"), source_hash=meta.get("source_hash"),
        )

    def __repr__(self) -> str:
        return f"Vectors(name={self.name!r}, words={len(self.words)}, shape={self.shape}, key_attr={self.key_attr})"


@vectors_registry("distnlp.Vectors.v1")
def load_vectors(path: str, key_attr: str | None = None) -> Vectors:
    """A vectors table from a directory written by `distnlp init vectors` (or Vectors.to_disk)."""
    if not path:
        raise ConfigError("path", "no vectors directory given", "set it to the output of `distnlp init vectors`")
    if not Path(path).is_dir():
        raise ConfigError("path", f"vectors directory not found: {path}", "run `distnlp init vectors INPUT OUTPUT_DIR` first")
    return Vectors.from_disk(path, key_attr=key_attr)


def vectors_entries(path: str | Path) -> tuple[str, ...]:
    """The files a new `init vectors` may replace in `path`: all three when its vectors.json was
    written by distnlp, none otherwise (a folder of the user's own is never a vectors table)."""
    try:
        meta = json.loads((Path(path) / "vectors.json").read_text(encoding="utf8"))
    except (OSError, ValueError):
        return ()
    return VECTORS_FILES if isinstance(meta, dict) and "format_version" in meta else ()
