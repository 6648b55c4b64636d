"""annotate writes only its own: a corpus from `distnlp convert` (or files named like annotate's
without its job record) is never replaced, with or without --overwrite, and the message says what
is there; a run refused before any split leaves nothing behind, so a corrected run just works."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from distnlp.cli.compose import DEMO_DATA
from distnlp.cli.main import main


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_converted_corpus_is_never_replaced(tiny_model: Path, inputs: dict[str, Path], tmp_path: Path, overwrite: bool,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(DEMO_DATA / "dev", corpus)
    before = _snapshot(corpus)
    args = ["annotate", str(tiny_model), str(inputs["text"]), str(corpus), *(["--overwrite"] if overwrite else [])]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a corpus written by distnlp convert (meta.json format 'conllu')" in err[0], err
    assert _snapshot(corpus) == before


def test_files_named_like_annotates_without_its_record_are_kept(tiny_model: Path, inputs: dict[str, Path], tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "shard-00000.parquet").write_bytes(b"someone else's")
    assert main(["annotate", str(tiny_model), str(inputs["text"]), str(out), "--overwrite"]) == 1
    assert "not an annotate job's output" in capsys.readouterr().err
    assert (out / "shard-00000.parquet").read_bytes() == b"someone else's"


def test_a_refused_run_leaves_nothing_and_the_corrected_run_works(tiny_model: Path, inputs: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "model"
    shutil.copytree(tiny_model, broken)
    (broken / "labels.json").write_text("{")  # refused when the model is loaded, after the output was claimed
    out = tmp_path / "out"
    assert main(["annotate", str(broken), str(inputs["text"]), str(out)]) == 1
    assert not out.exists()  # no claim left behind
    assert main(["annotate", str(tiny_model), str(inputs["jsonl"]), str(out)]) == 0  # another job, same OUTPUT
    assert (out / "meta.json").exists()


def test_annotate_output_carries_row_group_hashes(tiny_model: Path, inputs: dict[str, Path], tmp_path: Path) -> None:
    """annotate's corpus is checked on reading as convert's is (page checksums, row-group hashes)."""
    import json

    import pyarrow.parquet as pq

    from distnlp.data.shards import row_group_span
    from distnlp.data.stream import read_docs
    from distnlp.errors import CorpusError

    out = tmp_path / "out"
    assert main(["annotate", str(tiny_model), str(inputs["jsonl"]), str(out)]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert all(g["sha256"] for entry in meta["shards"] for g in entry["row_groups"])
    shard = out / meta["shards"][0]["file"]
    start, stop = row_group_span(pq.read_metadata(shard), 0)
    data = bytearray(shard.read_bytes())
    data[(start + stop) // 2] ^= 0x04
    shard.write_bytes(bytes(data))
    with pytest.raises(CorpusError, match="row group 0"):
        list(read_docs(out))
