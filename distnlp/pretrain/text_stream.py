"""Raw text for pretraining, this rank's disjoint share, with a resumable cursor.

`open_text_stream(path, ...)` picks the reader:
- a directory with `meta.json`: a converted Parquet corpus, streamed by `DocStream` (row groups
  assigned to ranks as in training);
- a `.jsonl` / `.json` file (one `{"text": ...}` per line), a spaCy `.spacy` DocBin (one doc per
  doc, its own tokenization), any other file (one doc per non-blank line), or a directory of such
  files (`*.jsonl`, `*.json`, `*.txt`, `*.spacy`, sorted by name).

`TextStream` indexes the byte offset of every line once (one pass, 8 bytes a line), then each
epoch orders the lines (shuffled by `(seed, epoch)` when `shuffle`) and stripes them across
ranks: rank r gets lines r, r + world_size, ... of that order, so shares are disjoint and cover
the corpus. Lines are tokenized with distnlp's Tokenizer and filtered by token count
(`min_length <= len(doc) <= max_length`, 0 = no limit). The cursor `(epoch, position)` counts
lines of this rank's share already handed out (filtered and blank ones included) and behaves as
`DocStream`'s, so `training.batches.ResumableBatches` resumes it exactly.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..data.cursor import CursorStream
from ..data.doc import Doc
from ..data.stream import DocStream
from ..data.tokenizer import Tokenizer
from ..errors import ConfigError, CorpusError
from .docbin_text import DOCBIN_SUFFIX, Tokens, load_docbin_tokens

JSONL_SUFFIXES = (".jsonl", ".json")
TEXT_SUFFIXES = (".txt", ".text")


def _text_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in JSONL_SUFFIXES + TEXT_SUFFIXES + (DOCBIN_SUFFIX,))
        if not files:
            raise CorpusError(str(path), "no .jsonl, .json, .txt or .spacy files and no meta.json", "pass a JSONL/text file, a directory of them, or a corpus written by distnlp convert")
        return files
    if not path.exists():
        raise CorpusError(str(path), "file not found", "set corpus.raw_text to a JSONL {\"text\": ...} file, a text file or a converted corpus directory")
    return [path]


class TextStream(CursorStream):
    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        shuffle: bool = True,
        infinite: bool = False,
        min_length: int = 0,
        max_length: int = 0,
        tokenizer: Tokenizer | None = None,
    ) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError("rank", f"rank {rank} is outside 0..{world_size - 1}", "pass 0 <= rank < world_size")
        self.path = Path(path)
        self.files = _text_files(self.path)
        self.rank, self.world_size, self.seed = int(rank), int(world_size), int(seed)
        self.shuffle, self.infinite = bool(shuffle), bool(infinite)
        self.min_length, self.max_length = int(min_length or 0), int(max_length or 0)
        self.tokenizer = tokenizer or Tokenizer()
        self.epoch = 0
        self.position = 0
        self.skipped = 0
        self._docbins: dict[int, list[Tokens | None]] = {}  # file index -> its docs' tokens
        self._file_idx, self._offsets = self._index()
        self._order_key: int | None = None
        self._order: np.ndarray = np.zeros(0, dtype=np.int64)

    def _index(self) -> tuple[np.ndarray, np.ndarray]:
        file_idx: list[np.ndarray] = []
        offsets: list[np.ndarray] = []
        for i, f in enumerate(self.files):
            if f.suffix == DOCBIN_SUFFIX:  # one entry per doc; its "offset" is the doc's index
                self._docbins[i] = load_docbin_tokens(f)
                offsets.append(np.arange(len(self._docbins[i]), dtype=np.int64))
                file_idx.append(np.full(len(self._docbins[i]), i, dtype=np.int32))
                continue
            starts = [0]
            with open(f, "rb") as fh:
                pos = 0
                for raw in fh:
                    pos += len(raw)
                    starts.append(pos)
            starts.pop()  # the end of the file starts no line
            offsets.append(np.asarray(starts, dtype=np.int64))
            file_idx.append(np.full(len(starts), i, dtype=np.int32))
        if not offsets:
            return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64)
        return np.concatenate(file_idx), np.concatenate(offsets)

    @property
    def num_lines(self) -> int:
        return int(len(self._offsets))

    def share(self, epoch: int | None = None) -> np.ndarray:
        """This rank's line numbers (global, across files) for an epoch, in reading order."""
        epoch = self.epoch if epoch is None else int(epoch)
        if self._order_key != epoch:
            n = self.num_lines
            if self.shuffle:
                order = np.random.default_rng([self.seed, epoch, 0x7E47]).permutation(n)
            else:
                order = np.arange(n, dtype=np.int64)
            self._order = order[self.rank :: self.world_size]
            self._order_key = epoch
        return self._order

    def __len__(self) -> int:
        return int(len(self.share()))

    # --- iteration ---------------------------------------------------------------------------
    def _rest_of_epoch(self) -> Iterator[Doc]:
        epoch, share = self.epoch, self.share()
        total = len(share)
        if self.position >= total:
            self.set_epoch(epoch + 1)
            return
        handles: dict[int, Any] = {}
        try:
            while True:
                if self.epoch != epoch:
                    return
                line_no = int(share[self.position])
                # move the cursor before handing the doc out (as DocStream does)
                if self.position + 1 >= total:
                    self.set_epoch(epoch + 1)
                else:
                    self.position += 1
                doc = self._read(line_no, handles)
                if doc is not None:
                    yield doc
        finally:
            for fh in handles.values():
                fh.close()

    def _read(self, line_no: int, handles: dict[int, Any]) -> Doc | None:
        fi = int(self._file_idx[line_no])
        if fi in self._docbins:
            return self._docbin_doc(fi, int(self._offsets[line_no]))
        fh = handles.get(fi)
        if fh is None:
            fh = handles[fi] = open(self.files[fi], "rb")
        fh.seek(int(self._offsets[line_no]))
        raw = fh.readline()
        path = self.files[fi]
        lineno = int(line_no - np.searchsorted(self._file_idx, fi)) + 1
        if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as e:
            raise CorpusError(f"{path}:{lineno}", f"not valid UTF-8 (byte 0x{raw[e.start]:02x})", "re-encode the file as UTF-8") from None
        if not line.strip():
            return None
        if path.suffix in JSONL_SUFFIXES:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CorpusError(f"{path}:{lineno}", f"invalid JSON ({exc.msg})", 'write one {"text": ...} object per line') from None
            text = obj.get("text") if isinstance(obj, dict) else None
            if not isinstance(text, str):
                raise CorpusError(f"{path}:{lineno}", 'no "text" string in this line', 'write one {"text": ...} object per line')
        else:
            text = line
        if not text.strip():
            return None
        doc = self.tokenizer(text)
        n = len(doc.words)
        if n < self.min_length or (self.max_length and n > self.max_length):
            self.skipped += 1
            return None
        doc.doc_id = f"{path.name}:{lineno}"
        return doc

    def _docbin_doc(self, fi: int, index: int) -> Doc | None:
        tokens = self._docbins[fi][index]
        if tokens is None:
            return None
        words, spaces = tokens
        n = len(words)
        if n < self.min_length or (self.max_length and n > self.max_length):
            self.skipped += 1
            return None
        return Doc(words=list(words), spaces=list(spaces), doc_id=f"{self.files[fi].name}:{index}")


def open_text_stream(
    path: str | os.PathLike[str],
    *,
    rank: int = 0,
    world_size: int = 1,
    seed: int = 0,
    shuffle: bool = True,
    infinite: bool = True,
    min_length: int = 0,
    max_length: int = 0,
) -> Any:
    """A TextStream for text/JSONL, a DocStream for a converted Parquet corpus directory."""
    p = Path(path)
    if "://" in str(path) or (p.is_dir() and (p / "meta.json").exists()):
        return DocStream(path, rank=rank, world_size=world_size, seed=seed, shuffle=shuffle, infinite=infinite,
                         columns=["words", "spaces"], min_length=min_length, max_length=max_length)
    return TextStream(path, rank=rank, world_size=world_size, seed=seed, shuffle=shuffle, infinite=infinite,
                      min_length=min_length, max_length=max_length)
