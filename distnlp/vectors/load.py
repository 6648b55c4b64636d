"""Read word2vec / GloVe / fastText / numpy vector tables and write a vectors directory
(spaCy's `init vectors`: truncate to the first N rows, prune to N rows + nearest-row mapping)."""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from ..errors import CorpusError, DistnlpError
from ..progress import with_progress
from ..owned_paths import check_replaceable, clean_stale_temps, discard_temp_dir, make_temp_dir, publish_dir
from .table import VECTORS_FILES, Vectors, vectors_entries

__all__ = ["init_vectors", "read_vectors", "FORMATS"]

FORMATS = ("text", "word2vec_bin", "npy")
_CHUNK_LINES = 8192


def init_vectors(
    input_path: str | Path,
    output_dir: str | Path,
    *,
    truncate: int = 0,
    prune: int = -1,
    fmt: str | None = None,
    name: str | None = None,
    words_path: str | Path | None = None,
    key_attr: str = "ORTH",
) -> Vectors:
    """Convert a vectors file to a vectors directory; returns the table that was written.

    OUTPUT_DIR may be new, empty, or a vectors directory distnlp wrote (it is replaced); one
    holding anything else, or holding an input file, is refused before any work (owned_paths).
    """
    out = Path(os.path.abspath(output_dir))  # "." or "..": its parent and name must be real
    owned = vectors_entries(out)
    inputs = [p for p in (input_path, words_path) if p is not None]
    check_replaceable(out, owned, inputs=inputs, what="vectors directory", fix="choose a new or empty OUTPUT_DIR")
    table = read_vectors(input_path, truncate=truncate, fmt=fmt, words_path=words_path, key_attr=key_attr)
    table.name = name or _default_name(Path(input_path))
    if prune is not None and prune > 0:
        table.prune(prune)
    clean_stale_temps(out.parent, f".{out.name}.tmp-", VECTORS_FILES)
    clean_stale_temps(out.parent, f".{out.name}.old-", VECTORS_FILES)
    tmp = make_temp_dir(out.parent, f".{out.name}.tmp-")
    try:
        table.to_disk(tmp)
        publish_dir(tmp, out, owned, what="vectors directory")
    except BaseException:
        discard_temp_dir(tmp, VECTORS_FILES)
        raise
    return table


def read_vectors(
    input_path: str | Path,
    *,
    truncate: int = 0,
    fmt: str | None = None,
    words_path: str | Path | None = None,
    key_attr: str = "ORTH",
) -> Vectors:
    path = Path(input_path)
    if not path.exists():
        raise DistnlpError(f"{path}: vectors file not found")
    fmt = fmt or _guess_format(path)
    if fmt not in FORMATS:
        raise DistnlpError(f"{path}: unknown vectors format {fmt!r} (use one of {', '.join(FORMATS)})")
    truncate = int(truncate or 0)
    if fmt == "npy":
        words, data = _read_npy(path, words_path, truncate)
    elif fmt == "word2vec_bin":
        words, data = _read_word2vec_bin(path, truncate)
    else:
        words, data = _read_text(path, truncate)
    return Vectors(words, data, key_attr=key_attr, source_hash=_file_hash(path, words_path))


def _guess_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes[-1:] == [".gz"]:
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    if last == ".npy":
        return "npy"
    if last == ".bin":
        return "word2vec_bin"
    return "text"


def _default_name(path: Path) -> str:
    name = path.name
    for suf in (".gz", ".txt", ".vec", ".bin", ".npy"):
        if name.lower().endswith(suf):
            name = name[: -len(suf)]
    return name


def _file_hash(path: Path, extra: str | Path | None = None) -> str:
    h = hashlib.sha256()
    for p in (path, Path(extra) if extra else None):
        if p is None:
            continue
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()


def _open(path: Path, mode: str) -> IO:
    if path.suffix.lower() == ".gz":
        return gzip.open(path, mode + "b") if mode == "r" else gzip.open(path, mode)
    return open(path, mode + "b")


# --- text: "word v1 .. vd" lines, optional "rows dim" header (word2vec/fastText) --------------
def _read_text(path: Path, truncate: int) -> tuple[list[str], np.ndarray]:
    words: list[str] = []
    chunks: list[np.ndarray] = []
    dim = -1
    with _open(path, "r") as raw:
        f = io.TextIOWrapper(raw, encoding="utf8", errors="surrogateescape", newline="\n")
        lines = with_progress(_numbered_lines(f), desc="read vectors", unit="line", total=truncate or None)
        pending: list[tuple[int, str]] = []
        for lineno, line in lines:
            if truncate and len(words) + len(pending) >= truncate:
                break
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            if dim < 0:
                parts = line.split()
                if lineno == 1 and len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                    dim = int(parts[1])  # word2vec / fastText header
                    continue
                dim = len(line.rstrip(" ").rsplit(" ")) - 1
                if dim < 1:
                    raise CorpusError(f"{path}:{lineno}", "expected a word followed by its vector values")
            pending.append((lineno, line))
            if len(pending) >= _CHUNK_LINES:
                _parse_chunk(path, pending, dim, words, chunks)
                pending = []
        if pending:
            _parse_chunk(path, pending, dim, words, chunks)
    if dim < 0 or not words:
        raise CorpusError(str(path), "no vectors found", "expected lines of `word v1 v2 ...`")
    return words, np.concatenate(chunks) if chunks else np.zeros((0, dim), np.float32)


def _numbered_lines(f: IO[str]) -> Iterator[tuple[int, str]]:
    # iterate on "\n" only (TextIOWrapper with newline="\n"); words may contain \x85 or \u2028
    for i, line in enumerate(f, start=1):
        yield i, line


def _parse_chunk(path: Path, pending: list[tuple[int, str]], dim: int, words: list[str], chunks: list[np.ndarray]) -> None:
    chunk_words: list[str] = []
    values: list[str] = []
    for lineno, line in pending:
        pieces = line.rstrip(" ").rsplit(" ", dim)
        if len(pieces) != dim + 1 or not pieces[0]:
            raise CorpusError(f"{path}:{lineno}", f"expected a word and {dim} values, found {len(pieces) - 1} values")
        word = pieces[0]
        if " " in word and _is_float(word.rsplit(" ", 1)[1]):
            # GloVe 840B has words with spaces, but a numeric last piece means extra columns
            raise CorpusError(f"{path}:{lineno}", f"expected a word and {dim} values, found more columns")
        chunk_words.append(word)
        values.append(" ".join(pieces[1:]))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # older numpy warns and stops early on a bad token
            flat = np.fromstring(" ".join(values), dtype=np.float32, sep=" ")
    except ValueError:  # newer numpy raises; either way find the line below
        flat = np.zeros(0, dtype=np.float32)
    if flat.size != len(values) * dim:
        for (lineno, _), vals in zip(pending, values):
            for tok in vals.split(" "):
                if not _is_float(tok):
                    raise CorpusError(f"{path}:{lineno}", f"not a number: {tok[:40]!r}")
        raise CorpusError(f"{path}:{pending[0][0]}", "could not parse the vector values in this block")
    words.extend(chunk_words)
    chunks.append(flat.reshape(len(values), dim))


def _is_float(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


# --- word2vec binary: "rows dim\n" then per row: word, space, dim float32 (little endian) ----
def _read_word2vec_bin(path: Path, truncate: int) -> tuple[list[str], np.ndarray]:
    with _open(path, "r") as f:
        buf = f.read()
    end = buf.find(b"\n")
    header = buf[:end].split() if end >= 0 else []
    if len(header) != 2 or not all(h.isdigit() for h in header):
        raise CorpusError(f"{path}:1", "expected a word2vec binary header `rows dim`")
    n, dim = int(header[0]), int(header[1])
    if truncate:
        n = min(n, truncate)
    words: list[str] = []
    data = np.empty((n, dim), dtype=np.float32)
    pos, width = end + 1, 4 * dim
    for i in with_progress(range(n), desc="read vectors", unit="row", total=n):
        while pos < len(buf) and buf[pos:pos + 1] in (b"\n", b" "):
            pos += 1
        space = buf.find(b" ", pos)
        if space < 0 or space + 1 + width > len(buf):
            raise CorpusError(f"{path}:entry {i + 1}", f"file ends early: header says {header[0].decode()} rows")
        try:
            words.append(buf[pos:space].decode("utf8"))
        except UnicodeDecodeError as exc:
            raise CorpusError(f"{path}:entry {i + 1}", f"word is not valid UTF-8 ({exc.reason})") from exc
        data[i] = np.frombuffer(buf, dtype="<f4", count=dim, offset=space + 1)
        pos = space + 1 + width
    return words, data


# --- numpy matrix + words file (one per line, or Parquet with an `index` column) -----------
def _read_npy(path: Path, words_path: str | Path | None, truncate: int) -> tuple[list[str], np.ndarray]:
    if words_path is None:
        beside = path.with_name("words.txt")
        if not beside.exists():
            raise DistnlpError(f"{path}: a .npy matrix needs its words: pass --words FILE (one word a line, or Parquet)")
        words_path = beside
    try:
        mat = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise CorpusError(str(path), f"not a numeric .npy matrix: {exc}") from exc
    if mat.ndim != 2:
        raise CorpusError(str(path), f"expected a 2-d matrix, got shape {mat.shape}")
    words = _read_words(Path(words_path))
    if len(words) != mat.shape[0]:
        raise CorpusError(str(words_path), f"{len(words)} words for a matrix of {mat.shape[0]} rows")
    if truncate:
        words, mat = words[:truncate], mat[:truncate]
    return words, np.array(mat, dtype=np.float32)


def _read_words(path: Path) -> list[str]:
    if not path.exists():
        raise DistnlpError(f"{path}: words file not found")
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        col = next((c for c in ("index", "word", "words") if c in table.column_names), None)
        if col is None:
            raise CorpusError(str(path), f"no `index` or `word` column (columns: {table.column_names})")
        words = table.column(col).to_pylist()
        if any(w is None for w in words):
            raise CorpusError(str(path), f"column {col!r} has null words")
        return [str(w) for w in words]
    with _open(path, "r") as raw:
        text = raw.read().decode("utf8", errors="surrogateescape")
    if text.endswith("\n"):
        text = text[:-1]
    return [w.rstrip("\r") for w in text.split("\n")] if text else []
