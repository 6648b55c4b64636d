"""`distnlp convert` never loses a user's files: --overwrite replaces only a corpus distnlp wrote,
never a folder holding anything else or holding an input; a killed run's temporaries are cleaned."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from distnlp.cli.main import main
from distnlp.owned_paths import MARKER

SENT = "# sent_id = s{i}\n1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_\n\n"


def _conllu(path: Path, n: int = 1) -> Path:
    path.write_text("".join(SENT.format(i=i) for i in range(n)), encoding="utf-8")
    return path


def test_overwrite_keeps_unrelated_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _conllu(tmp_path / "x.conllu")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    assert main(["convert", str(src), str(out), "--overwrite"]) == 1
    err = capsys.readouterr().err
    assert "notes.txt" in err and "did not write" in err and len(err.strip().splitlines()) == 1
    assert (out / "notes.txt").read_text() == "my notes"
    assert main(["convert", str(src), str(out)]) == 1
    assert "pass --overwrite" not in capsys.readouterr().err  # --overwrite would not help here


def test_output_holding_the_input_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "dir").mkdir()
    src = _conllu(tmp_path / "dir" / "x.conllu")
    assert main(["convert", str(src), str(tmp_path / "dir"), "--overwrite"]) == 1
    assert "input" in capsys.readouterr().err
    assert src.exists() and sorted(p.name for p in (tmp_path / "dir").iterdir()) == ["x.conllu"]


def test_overwrite_replaces_a_corpus_distnlp_wrote(tmp_path: Path) -> None:
    big, small = _conllu(tmp_path / "big.conllu", 3), _conllu(tmp_path / "small.conllu", 1)
    out = tmp_path / "out"
    assert main(["convert", str(big), str(out), "--shard-size", "1"]) == 0
    assert len(list(out.glob("shard-*"))) == 3
    assert main(["convert", str(small), str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "shard-00000.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.conllu", "out", "small.conllu"]
    # a corpus with a stray file of the user's is not replaced either
    (out / "README").write_text("about this corpus")
    assert main(["convert", str(big), str(out), "--overwrite"]) == 1
    assert (out / "README").exists() and len(list(out.glob("shard-*"))) == 1


def test_stale_temporaries_of_a_killed_run_are_removed(tmp_path: Path) -> None:
    src = _conllu(tmp_path / "x.conllu")
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout)
    stale = tmp_path / ".out.tmp-0badf00d"
    stale.mkdir()
    (stale / MARKER).write_text(json.dumps({"pid": dead, "host": socket.gethostname()}))
    (stale / "shard-00000.parquet").write_bytes(b"half written")
    mine = tmp_path / ".out.tmp-mine"  # looks alike, but distnlp did not make it
    mine.mkdir()
    (mine / "shard-00000.parquet").write_bytes(b"mine")
    assert main(["convert", str(src), str(tmp_path / "out")]) == 0
    assert not stale.exists()
    assert (mine / "shard-00000.parquet").read_bytes() == b"mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.tmp-mine", "out", "x.conllu"]
