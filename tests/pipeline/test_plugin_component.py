"""A component a user adds without editing distnlp: defined and registered only in a `code=`
file (tests/fixtures/plugin_component.py), it trains (in this process and on Ray replicas),
saves, loads with `trust_code`, annotates (nlp.pipe and `distnlp annotate`) and is scored by
evaluate and by training's own evaluations."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import distnlp
from distnlp.annotate.run import annotate
from distnlp.annotate.settings import parse_overrides
from distnlp.cli.main import main
from distnlp.data.stream import read_docs
from distnlp.errors import CheckpointError, ConfigError
from distnlp.training.loop import run_worker
from tests.ray.conftest import local_ray  # noqa: F401  (a private local Ray for the Ray test)

CODE = Path(__file__).resolve().parents[1] / "fixtures" / "plugin_component.py"
PLUGIN = [
    f"code={CODE}",
    "nlp.pipeline=[tagger,noun]",
    "+components.noun={factory: user.noun_detector, positive: NOUN, listen: encoder, grad_factor: 1.0,"
    " model: {_use_: distnlp.TaggerHead.v1}, score_weights: {noun_f: 1.0}}",
    "encoder.width=32",
    "training.eval_frequency=25",
    "training.max_steps=50",
    "training.optimizer.learn_rate=0.01",
]


def _nouns(docs: Any) -> int:
    return sum(sum(1 for p in (d.pos or []) if p == "NOUN") for d in docs)


def test_a_component_from_user_code_trains_saves_loads_annotates_and_is_scored(make_config, tiny_corpus: Path, tmp_path: Path) -> None:
    config = make_config(*PLUGIN, train=tiny_corpus)
    result = run_worker(config)
    model = Path(result["output_dir"]) / "model-best"
    assert json.loads((model / "meta.json").read_text())["scores"]["noun_f"] > 0.5  # trained, and scored while training
    assert json.loads((model / "config.json").read_text())["components"]["noun"]["factory"] == "user.noun_detector"

    with pytest.raises(CheckpointError, match="trust_code"):
        distnlp.load(model)  # the model runs user code: refused unless asked
    nlp = distnlp.load(model, trust_code=True)
    golds = list(read_docs(tiny_corpus))
    doc = nlp(golds[0].text)
    assert isinstance(doc.user_data["noun"], list) and len(doc.user_data["noun"]) == len(doc)
    scores = nlp.evaluate(golds)
    assert scores["noun_f"] > 0.5 and {"noun_p", "noun_r"} <= set(scores)
    assert main(["evaluate", str(model), str(tiny_corpus), "--trust-code", "--device", "cpu", "--output", str(tmp_path / "scores.json")]) == 0
    assert json.loads((tmp_path / "scores.json").read_text())["noun_f"] == pytest.approx(scores["noun_f"])  # `distnlp evaluate`

    text = tmp_path / "in.txt"
    text.write_text("The cat sat on the mat.\nDogs like long walks.\n")
    meta = annotate(str(model), [str(text)], str(tmp_path / "annotated"), parse_overrides(["rows_per_shard=4"]),
                    copy_format="jsonl", trust_code=True)
    assert meta["annotate"]["rows_out"] == 2
    rows = [json.loads(line) for f in sorted((tmp_path / "annotated").glob("*.jsonl")) for line in f.read_text().splitlines()]
    assert [len(r["noun"]) for r in rows] == [len(r["tokens"]) for r in rows]


def test_an_unknown_setting_of_a_user_component_is_a_config_error(make_config, tiny_corpus: Path) -> None:
    with pytest.raises(ConfigError, match=r"components\.noun\.colour"):
        make_config(*PLUGIN, "+components.noun.colour=blue", train=tiny_corpus)


@pytest.mark.ray
def test_a_component_from_user_code_trains_on_ray_replicas(local_ray: Any, make_config, tiny_corpus: Path) -> None:
    from distnlp.ray_backend.driver import train_on_ray

    config = make_config(*PLUGIN, "distributed=ray", "distributed.num_workers=2", "training.max_steps=20",
                         "training.eval_frequency=10", train=tiny_corpus)
    result = train_on_ray(config)
    model = Path(result["output_dir"]) / "model-last"
    nlp = distnlp.load(model, trust_code=True)
    assert "noun" in nlp.pipe_names and "noun_f" in json.loads((model / "meta.json").read_text())["scores"]
