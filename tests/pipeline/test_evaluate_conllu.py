"""`distnlp evaluate` scores a model as training's evaluation did, on a CoNLL-U file and on the
corpus converted from it: the parser gets the gold sentence boundaries (the command once parsed
every document as one sentence: UAS 74.7 instead of 83.6 on EWT dev)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from distnlp.cli.compose import DEMO_DATA
from distnlp.training.loop import run_worker


def _evaluate(model: Path, corpus: Path, out: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "distnlp.cli.main", "evaluate", str(model), str(corpus), "--output", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


def test_conllu_and_converted_corpus_score_alike(make_config, tmp_path: Path) -> None:
    config = make_config("nlp.pipeline=[tagger,parser]", "encoder.width=32", "training.max_steps=30", "training.eval_frequency=30",
                         "components.parser.model.arc_width=32", "components.parser.model.label_width=16",
                         train=DEMO_DATA / "train", dev=DEMO_DATA / "dev")
    model = Path(run_worker(config)["output_dir"]) / "model-last"
    trained = json.loads((model / "meta.json").read_text())["scores"]  # training's own evaluation on dev
    parquet = _evaluate(model, DEMO_DATA / "dev", tmp_path / "a.json")
    conllu = _evaluate(model, DEMO_DATA / "demo-dev.conllu", tmp_path / "b.json")
    assert trained["dep_uas"] > 0.1
    for key in ("tag_acc", "dep_uas", "dep_las"):
        assert abs(parquet[key] - trained[key]) < 1e-9 and abs(conllu[key] - trained[key]) < 1e-9, (key, trained[key], parquet[key], conllu[key])
