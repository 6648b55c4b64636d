"""`distnlp init vectors` replaces only a vectors directory it wrote, never a user's files or its inputs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from distnlp.owned_paths import NotOwnedError
from distnlp.vectors import Vectors, init_vectors

WORDS = ["the", "cat", "sat"]


def _text(path: Path) -> Path:
    path.write_text("".join(f"{w} {i} 0.5\n" for i, w in enumerate(WORDS)))
    return path


def test_init_vectors_keeps_unrelated_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "words.txt").write_text("my word list")  # a name init vectors writes, but not its file
    with pytest.raises(NotOwnedError, match=r"words\.txt"):
        init_vectors(_text(tmp_path / "v.txt"), out)
    assert sorted(p.name for p in out.iterdir()) == ["words.txt"]
    assert (out / "words.txt").read_text() == "my word list"


def test_init_vectors_never_writes_over_its_input(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    np.save(out / "m.npy", np.ones((3, 2), dtype=np.float32))
    (out / "words.txt").write_text("\n".join(WORDS) + "\n")
    with pytest.raises(NotOwnedError, match="input"):
        init_vectors(out / "m.npy", out, words_path=out / "words.txt")
    assert (out / "words.txt").read_text() == "\n".join(WORDS) + "\n"


def test_init_vectors_replaces_its_own_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    init_vectors(_text(tmp_path / "v.txt"), out, name="one")
    init_vectors(_text(tmp_path / "v.txt"), out, name="two")
    assert Vectors.from_disk(out).name == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "v.txt"]
