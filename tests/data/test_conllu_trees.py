"""CoNLL-U trees are trees: one root, no cycle, no self-loop, heads in range (issue 23, item 3).

Through the CLI: a bad tree is a one-line error naming file:line; with --skip-invalid the sentence
is kept with its heads and relations missing (its tokens only) and counted in meta.json.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from distnlp.cli.convert import main
from distnlp.data.convert import ConvertReport, read_conllu
from distnlp.data.doc import Doc


def _tok(i: int, word: str, head: int | str, dep: str) -> str:
    return f"{i}\t{word}\t{word.lower()}\tX\tXX\t_\t{head}\t{dep}\t_\t_\n"


# line 1: newdoc, 2: sent_id, 3..6: words 1..4 (a valid tree, root 2)
GOOD_A = "# newdoc id = d1\n# sent_id = a\n" + _tok(1, "We", 2, "nsubj") + _tok(2, "saw", 0, "root") + _tok(3, "it", 2, "obj") + _tok(4, ".", 2, "punct")
# line 7: blank, 8: sent_id, 9..12: words 1..4, each case changes some of these heads
BAD_LINE = 8
BAD_HEADS = {
    # name: (heads of words 1..4, the line named, what the message says)
    "cycle": ((2, 0, 4, 3), 11, r"cycle \(3 -> 4 -> 3\)"),
    "self_loop": ((2, 0, 3, 2), 11, "word 3 is its own head"),
    "two_roots": ((2, 0, 2, 0), 12, "word 4 is a second root"),
    "no_root": ((2, 3, 4, 1), BAD_LINE, "no root"),
    "out_of_range": ((2, 0, 7, 2), 11, "HEAD 7 of word 3 is out of range"),
}
# line 13: blank, 14: sent_id, 15..16: a valid two-word sentence
GOOD_C = "# sent_id = c\n" + _tok(1, "Yes", 0, "root") + _tok(2, "!", 1, "punct")


def _bad(heads: tuple[int, ...]) -> str:
    words = ["They", "left", "the", "room"]
    return "# sent_id = b\n" + "".join(_tok(i + 1, w, h, "root" if h == 0 else "dep") for i, (w, h) in enumerate(zip(words, heads)))


def _source(tmp_path: Path, heads: tuple[int, ...]) -> Path:
    path = tmp_path / "t.conllu"
    path.write_text(GOOD_A + "\n" + _bad(heads) + "\n" + GOOD_C + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("case", sorted(BAD_HEADS))
def test_bad_tree_is_a_one_line_error_naming_file_and_line(tmp_path: Path, case: str) -> None:
    heads, line, problem = BAD_HEADS[case]
    src = _source(tmp_path, heads)
    proc = subprocess.run([sys.executable, "-m", "distnlp.cli.convert", str(src), str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stdout
    assert "Traceback" not in proc.stderr
    err = proc.stderr.strip()
    assert "\n" not in err, err  # one line
    assert err.startswith(f"distnlp convert: {src}:{line}: "), err
    assert re.search(problem, err), err
    assert "--skip-invalid" in err  # the fix names the way out
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", sorted(BAD_HEADS))
def test_skip_invalid_keeps_the_sentence_with_its_tree_missing(tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    heads, line, _ = BAD_HEADS[case]
    src = _source(tmp_path, heads)
    out = tmp_path / "out"
    assert main([str(src), str(out), "--skip-invalid"]) == 0
    assert "invalid_trees=1" in capsys.readouterr().out
    meta = json.loads((out / "meta.json").read_text())
    assert meta["conversion_counts"]["invalid_trees"] == 1
    assert meta["conversion_counts"].get("skipped_sentences", 0) == 0
    (example,) = meta["skipped_examples"]  # file:line of the bad tree, as other skips are listed
    assert example.startswith(f"{src}:{line}: ") and "--skip-invalid" in example
    assert meta["counts"]["sentences"] == 3 and meta["counts"]["words"] == 10  # nothing dropped
    assert meta["missing_tokens"]["heads"] == 4 and meta["missing_tokens"]["deps"] == 4
    (doc,) = [Doc.from_row(r) for r in pq.read_table(out / "shard-00000.parquet").to_pylist()]
    # one doc of three sentences: only the bad sentence's tokens (4..7) lose heads and relations
    assert doc.sent_starts == [True, False, False, False, True, False, False, False, True, False]
    assert doc.heads == [1, 1, 1, 1, None, None, None, None, 8, 8]
    assert doc.deps == ["nsubj", "root", "obj", "punct", None, None, None, None, "root", "punct"]
    assert doc.words[4:8] == ["They", "left", "the", "room"] and doc.tags == ["XX"] * 10  # the rest is kept


def test_a_doc_whose_only_sentence_is_bad_has_no_heads_column(tmp_path: Path) -> None:
    path = tmp_path / "one.conllu"
    path.write_text(_bad(BAD_HEADS["cycle"][0]) + "\n", encoding="utf-8")
    report = ConvertReport()
    (doc,) = read_conllu(path, skip_invalid=True, report=report)
    assert doc.heads is None and doc.deps is None and doc.words == ["They", "left", "the", "room"]
    assert report.counts["invalid_trees"] == 1


def test_partial_trees_and_non_words_are_not_errors(tmp_path: Path) -> None:
    # "_" heads are missing arcs, not errors: a partial tree needs no root. Range lines and empty
    # nodes are not words: their HEAD columns (here "_" and one that would be out of range) are not read.
    text = (
        "# sent_id = p\n" + _tok(1, "a", "_", "_") + _tok(2, "b", 1, "dep") + _tok(3, "c", "_", "_") + "\n"
        "# sent_id = q\n1-2\tdon't\t_\t_\t_\t_\t9\tx\t_\t_\n" + _tok(1, "do", 3, "aux") + _tok(2, "n't", 3, "advmod")
        + _tok(3, "go", 0, "root") + "3.1\tgone\tgo\tVERB\tVBN\t_\t_\t_\t3:conj\t_\n"
    )
    path = tmp_path / "p.conllu"
    path.write_text(text, encoding="utf-8")
    p, q = read_conllu(path)
    assert p.heads == [None, 0, None] and p.deps == [None, "dep", None]
    assert q.heads == [2, 2, 2] and q.words == ["do", "n't", "go"]
