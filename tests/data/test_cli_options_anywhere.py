"""Options may come anywhere among the positionals: `distnlp convert in.conllu --ner x.iob2 out/`."""
from __future__ import annotations

import json
from pathlib import Path

from distnlp.cli.main import main, parse_args

CONLLU = "# sent_id = s1\n1\tAnn\tAnn\tPROPN\tNNP\t_\t0\troot\t_\t_\n\n"
IOB = "# sent_id = s1\n1\tAnn\tB-PER\n\n"


def test_convert_with_options_between_inputs_and_output(tmp_path: Path) -> None:
    (tmp_path / "in.conllu").write_text(CONLLU)
    (tmp_path / "x.iob2").write_text(IOB)
    out = tmp_path / "out"
    assert main(["convert", str(tmp_path / "in.conllu"), "--ner", str(tmp_path / "x.iob2"), str(out), "--shard-size", "5"]) == 0
    assert json.loads((out / "meta.json").read_text())["counts"]["entities"] == 1


def test_other_commands_parse_options_anywhere() -> None:
    args = parse_args(["init", "vectors", "in.txt", "--truncate", "5", "out", "--prune", "2"])
    assert (args.input, args.output_dir, args.truncate, args.prune) == ("in.txt", "out", 5, 2)
    args = parse_args(["evaluate", "--trust-code", "model", "--device", "cpu", "corpus"])
    assert (args.model, args.corpus, args.trust_code, args.device) == ("model", "corpus", True, "cpu")
    args = parse_args(["-v", "train", "training.max_steps=3", "corpus.train=x"])
    assert args.overrides == ["training.max_steps=3", "corpus.train=x"] and args.verbose
