"""A corrupt-shard error says which corpus (the config key, e.g. corpus.dev) the shard belongs to."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from distnlp.data.shards import open_corpus
from distnlp.data.stream import DocStream, count_words, read_docs
from distnlp.errors import CorpusError


def _corrupt_row_group(corpus_writer: Any, root: Path) -> None:
    corpus_writer(root, [[50, 50]], min_words=20, max_words=30)
    shard = root / "shard-00000.parquet"
    start = pq.ParquetFile(shard).metadata.row_group(1).column(2).data_page_offset
    data = bytearray(shard.read_bytes())
    data[start:start + 64] = b"\xff" * 64
    shard.write_bytes(bytes(data))


def test_corrupt_page_names_the_corpus(corpus_writer: Any, tmp_path: Path) -> None:
    _corrupt_row_group(corpus_writer, tmp_path)
    with pytest.raises(CorpusError, match=r"^corpus\.dev: shard-00000\.parquet row group 1: corrupt"):
        list(read_docs(tmp_path, label="corpus.dev"))
    with pytest.raises(CorpusError, match=r"^corpus\.train: shard-00000\.parquet row group 1"):
        list(DocStream(tmp_path, shuffle=False, label="corpus.train"))
    with pytest.raises(CorpusError, match=r"^shard-00000\.parquet row group 1"):  # no label: as before
        list(read_docs(tmp_path))


def test_truncated_or_missing_corpus_names_the_corpus(corpus_writer: Any, tmp_path: Path) -> None:
    corpus_writer(tmp_path / "c", [[4, 4], [4, 4]])
    shard = tmp_path / "c" / "shard-00001.parquet"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    with pytest.raises(CorpusError, match=r"^corpus\.dev: shard-00001\.parquet: corrupt or truncated"):
        open_corpus(tmp_path / "c", label="corpus.dev")
    with pytest.raises(CorpusError, match=r"^corpus\.train: .*nowhere: directory not found"):
        count_words(tmp_path / "nowhere", label="corpus.train")
