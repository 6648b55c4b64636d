"""End to end on the pipeline: overfit then reload, shared vs independent, grad_factor semantics,
user code, static vectors, textcat, evaluate."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import distnlp
from distnlp.data.stream import read_docs
from distnlp.pipeline.pipeline import Pipeline
from distnlp.training.loop import build_pipeline, run_worker

from .conftest import FIXTURES

OVERFIT = [
    "encoder.width=64",
    "training.max_steps=120",
    "training.eval_frequency=120",
    "training.optimizer.learn_rate=0.005",
    "training.optimizer.weight_decay=0.0",
    "training.batcher.size=2000",
    "components.tagger.model.label_smoothing=0.0",
    "components.morphologizer.model.label_smoothing=0.0",
]


def _predictions(nlp: Pipeline, docs: list) -> list:
    out = []
    for doc in nlp.pipe([d.copy_unannotated() for d in docs]):
        out.append({"tags": doc.tags, "pos": doc.pos, "morphs": doc.morphs, "ents": [list(e) for e in doc.ent_spans]})
    return out


def test_overfit_then_reload_in_new_process(make_config, tiny_corpus: Path, tmp_path: Path) -> None:
    config = make_config(*OVERFIT, train=tiny_corpus)
    result = run_worker(config)
    model_dir = Path(result["output_dir"]) / "model-last"
    metrics = [json.loads(line) for line in (Path(result["output_dir"]) / "metrics.jsonl").read_text().splitlines()]
    final = metrics[-1]
    assert final["event"] == "eval"
    assert final["scores"]["tag_acc"] > 0.99 and final["scores"]["ents_f"] > 0.99, final["scores"]
    last_steps = [m for m in metrics if m["event"] == "step"][-1]
    assert all(v < 1.0 for v in last_steps["losses"].values()), last_steps  # summed over ~200 tokens

    docs = list(read_docs(tiny_corpus))
    expected = _predictions(distnlp.load(model_dir), docs)
    script = (
        "import json, sys, distnlp\n"
        "from distnlp.data.stream import read_docs\n"
        f"nlp = distnlp.load({str(model_dir)!r})\n"
        f"docs = [d.copy_unannotated() for d in read_docs({str(tiny_corpus)!r})]\n"
        "out = [{'tags': d.tags, 'pos': d.pos, 'morphs': d.morphs, 'ents': [list(e) for e in d.ent_spans]} for d in nlp.pipe(docs)]\n"
        "print(json.dumps(out))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(run.stdout) == expected
    gold = [{"tags": d.tags, "pos": d.pos, "morphs": d.morphs, "ents": [list(e) for e in d.ent_spans]} for d in docs]
    assert expected == gold


@pytest.mark.parametrize("setup", ["shared", "independent"])
def test_shared_and_independent_both_train(make_config, tiny_corpus: Path, setup: str) -> None:
    config = make_config(f"pipeline={setup}", "encoder.width=32", "training.max_steps=40", "training.eval_frequency=20", train=tiny_corpus)
    nlp = build_pipeline(config)
    if setup == "shared":
        assert nlp.encoder is not None and set(nlp.listening) == set(nlp.pipe_names)
    else:
        assert nlp.encoder is None and all(getattr(c, "embed", None) is not None for c in nlp.components.values())
    result = run_worker(config)
    evals = [json.loads(l) for l in (Path(result["output_dir"]) / "metrics.jsonl").read_text().splitlines() if '"eval"' in l]
    assert evals[-1]["scores"]["tag_acc"] > evals[0]["scores"]["tag_acc"] or evals[-1]["scores"]["tag_acc"] > 0.5
    assert (Path(result["output_dir"]) / "model-best" / "model.safetensors").exists()


def _randomize_heads(nlp: Pipeline) -> None:
    # Output layers start at zero (as spaCy's Softmax does), which sends no gradient back at step 0.
    torch.manual_seed(0)
    with torch.no_grad():
        for p in nlp.components.parameters():
            p.normal_(0.0, 0.1)


def _encoder_grads(nlp: Pipeline, batch, step: int, only: str) -> list[torch.Tensor]:
    nlp.zero_grad(set_to_none=True)
    losses = nlp.losses(batch, step)
    loss, _ = losses[only]
    if loss.requires_grad:
        loss.backward()
    return [p.grad for p in nlp.encoder.parameters()]


def test_grad_factor_zero_blocks_gradient_into_shared_layer(make_config, tiny_corpus: Path) -> None:
    config = make_config("encoder.width=32", "components.ner.grad_factor=0.0", train=tiny_corpus)
    nlp = build_pipeline(config)
    _randomize_heads(nlp)
    nlp.train()
    batch = nlp.featurize(list(read_docs(tiny_corpus)))
    grads = _encoder_grads(nlp, batch, 0, "ner")
    assert all(g is None or float(g.abs().sum()) == 0.0 for g in grads)
    # The NER head itself still learns from its loss.
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in nlp.components["ner"].parameters())
    grads = _encoder_grads(nlp, batch, 0, "tagger")
    assert any(g is not None and float(g.abs().sum()) > 0 for g in grads)


def test_grad_factor_scales_the_listener_gradient(make_config, tiny_corpus: Path) -> None:
    torch.manual_seed(0)
    config = make_config("encoder.width=32", train=tiny_corpus)
    nlp = build_pipeline(config)
    _randomize_heads(nlp)
    nlp.train()
    batch = nlp.featurize(list(read_docs(tiny_corpus)))
    full = [g.clone() for g in _encoder_grads(nlp, batch, 0, "tagger")]
    nlp.grad_factors["tagger"] = lambda step: 0.25
    quarter = _encoder_grads(nlp, batch, 0, "tagger")
    assert sum(float(g.abs().sum()) for g in full) > 0
    for a, b in zip(full, quarter):
        torch.testing.assert_close(b, 0.25 * a)


def test_grad_factor_schedule_freezes_then_unfreezes(make_config, tiny_corpus: Path) -> None:
    schedule = "{_use_: distnlp.frozen_then.v1, frozen_steps: 5, value: 1.0}"
    config = make_config("encoder.width=32", *[f"components.{c}.grad_factor={schedule}" for c in ("senter", "tagger", "morphologizer", "parser", "lemmatizer", "ner")], train=tiny_corpus)
    nlp = build_pipeline(config)
    _randomize_heads(nlp)
    nlp.train()
    batch = nlp.featurize(list(read_docs(tiny_corpus)))
    nlp.forward_scores(batch, step=0)
    assert not nlp._last_hidden.requires_grad  # every listener at 0: no autograd in the shared layer
    assert all(g is None for g in _encoder_grads(nlp, batch, 0, "tagger"))
    nlp.forward_scores(batch, step=5)
    assert nlp._last_hidden.requires_grad
    assert any(g is not None and float(g.abs().sum()) > 0 for g in _encoder_grads(nlp, batch, 5, "tagger"))


def test_user_code_replaces_the_embed_and_the_vectors_table(make_config, tiny_corpus: Path, tmp_path: Path) -> None:
    code = FIXTURES / "user_code.py"
    config = make_config(
        f"code={code}",
        "initialize.vectors={_use_: user.CharNgramVectors.v1, dim: 16}",
        # Swap an architecture from the command line: delete the node, then add the new one
        # (a plain `key={...}` override would merge into the old node's arguments).
        "~encoder.model.embed",
        "+encoder.model.embed={_use_: user.StaticPlusLearned.v1, width: ${encoder.width}, rows: 500}",
        "encoder.width=32",
        "training.max_steps=20",
        "training.eval_frequency=10",
        train=tiny_corpus,
    )
    result = run_worker(config)
    nlp = distnlp.load(Path(result["output_dir"]) / "model-best", trust_code=True)  # it ships code.py
    assert type(nlp.encoder.embed).__name__ == "StaticPlusLearned"
    doc = nlp("Paris is lovely")
    assert doc[0].vector.shape == (16,)
    assert doc[0].similarity(doc[0]) == pytest.approx(1.0)


def test_static_vectors_from_init_vectors(make_config, tiny_corpus: Path, tmp_path: Path) -> None:
    table = tmp_path / "vectors.txt"
    words = sorted({w for d in read_docs(tiny_corpus) for w in d.words if w.isalpha()})[:50]
    rows = [f"{w} " + " ".join(f"{((i * 7 + j) % 13) / 13:.3f}" for j in range(8)) for i, w in enumerate(words)]
    table.write_text("\n".join(rows) + "\n")
    out = subprocess.run([sys.executable, "-m", "distnlp.cli.main", "init", "vectors", str(table), str(tmp_path / "vec")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    config = make_config(
        f"initialize.vectors={tmp_path / 'vec'}",
        "encoder.model.embed.include_static_vectors=true",
        "encoder.width=32",
        "training.max_steps=10",
        "training.eval_frequency=10",
        train=tiny_corpus,
    )
    result = run_worker(config)
    model = Path(result["output_dir"]) / "model-best"
    assert (model / "vectors" / "vectors.safetensors").exists()
    nlp = distnlp.load(model)
    doc = nlp(" ".join(words[:3]))
    assert doc[0].has_vector and doc[0].vector.shape == (8,)
    assert doc.similarity(doc) == pytest.approx(1.0)


def test_textcat_on_banking77_sample(make_config, tmp_path: Path) -> None:
    shared = Path(__file__).resolve().parents[3] / "shared" / "data" / "banking77" / "train_split.csv"
    if not shared.exists():
        pytest.skip("banking77 not available")
    lines = shared.read_text(encoding="utf8").splitlines()
    sample = tmp_path / "bank.csv"
    wanted = ("card_arrival", "lost_or_stolen_card", "exchange_rate")
    keep = [lines[0]] + [l for label in wanted for l in [x for x in lines[1:] if x.rsplit(",", 1)[-1] == label][:30]]
    sample.write_text("\n".join(keep) + "\n", encoding="utf8")
    out = subprocess.run([sys.executable, "-m", "distnlp.cli.main", "convert", str(sample), str(tmp_path / "bank")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    config = make_config("nlp.pipeline=[textcat]", "encoder.width=32", "training.max_steps=60", "training.eval_frequency=30", "training.optimizer.learn_rate=0.003", train=tmp_path / "bank")
    result = run_worker(config)
    nlp = distnlp.load(Path(result["output_dir"]) / "model-last")
    assert nlp.pipe_names == ["textcat"]
    doc = nlp("My card has not arrived yet")
    assert set(doc.cats) == {"card_arrival", "lost_or_stolen_card", "exchange_rate"}
    assert sum(doc.cats.values()) == pytest.approx(1.0, abs=1e-4)
    scores = nlp.evaluate(list(read_docs(tmp_path / "bank")))
    assert scores["cats_score"] > 0.8, scores


def test_evaluate_cli_writes_spacy_score_names(make_config, tiny_corpus: Path, tmp_path: Path) -> None:
    config = make_config("encoder.width=32", "training.max_steps=5", "training.eval_frequency=5", train=tiny_corpus)
    result = run_worker(config)
    scores_file = tmp_path / "scores.json"
    out = subprocess.run(
        [sys.executable, "-m", "distnlp.cli.main", "evaluate", str(Path(result["output_dir"]) / "model-best"), str(tiny_corpus), "--output", str(scores_file)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    scores = json.loads(scores_file.read_text())
    for key in ("tag_acc", "pos_acc", "morph_acc", "dep_uas", "dep_las", "dep_las_per_type", "ents_p", "ents_r", "ents_f", "ents_per_type", "speed"):
        assert key in scores
    assert "tag_acc" in out.stdout and "dep_uas" in out.stdout and "dep (LAS)" in out.stdout


def test_load_errors_are_clear(tmp_path: Path) -> None:
    from distnlp.errors import CheckpointError

    with pytest.raises(CheckpointError, match="not a saved distnlp pipeline"):
        distnlp.load(tmp_path)


def test_senter_and_multilabel_textcat_components(make_config, tiny_corpus: Path, tmp_path: Path) -> None:
    rows = [
        '{"text": "Great food and friendly staff.", "cats": {"FOOD": 1.0, "SERVICE": 1.0}}',
        '{"text": "The soup was cold.", "cats": {"FOOD": 1.0, "SERVICE": 0.0}}',
        '{"text": "Nobody answered the phone.", "cats": {"FOOD": 0.0, "SERVICE": 1.0}}',
        '{"text": "Lovely pasta.", "cats": {"FOOD": 1.0, "SERVICE": 0.0}}',
    ]
    (tmp_path / "cats.jsonl").write_text("\n".join(rows) + "\n")
    out = subprocess.run([sys.executable, "-m", "distnlp.cli.main", "convert", str(tmp_path / "cats.jsonl"), str(tmp_path / "cats")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    multilabel = "{factory: textcat_multilabel, listen: encoder, grad_factor: 1.0, model: {_use_: distnlp.TextcatMultilabelHead.v1}, score_weights: {cats_score: 1.0}}"
    config = make_config("nlp.pipeline=[textcat]", "~components.textcat", f"+components.textcat={multilabel}", "encoder.width=32", "training.max_steps=40",
                         "training.eval_frequency=20", "training.optimizer.learn_rate=0.01", train=tmp_path / "cats")
    result = run_worker(config)
    nlp = distnlp.load(Path(result["output_dir"]) / "model-last")
    doc = nlp("Great food.")
    assert set(doc.cats) == {"FOOD", "SERVICE"} and 0.0 <= doc.cats["FOOD"] <= 1.0
    assert nlp.evaluate(list(read_docs(tmp_path / "cats")))["cats_macro_auc"] > 0.9

    config = make_config("nlp.pipeline=[tagger,senter]", "components.senter.score_weights={sents_f: 1.0}", "encoder.width=32", "training.max_steps=60",
                         "training.eval_frequency=30", "training.optimizer.learn_rate=0.01", "training.batcher.size=2000", train=tiny_corpus)
    result = run_worker(config)
    nlp = distnlp.load(Path(result["output_dir"]) / "model-last")
    assert nlp.pipe_names == ["tagger", "senter"]
    scores = nlp.evaluate(list(read_docs(tiny_corpus)))
    assert scores["sents_f"] > 0.9, scores
    doc = nlp("This is one. This is two.")
    assert doc.sent_starts[0] is True


def test_averages_patience_and_max_epochs(make_config, tiny_corpus: Path) -> None:
    # Parameter averages: evaluation and saving use them, the live weights are restored after.
    config = make_config("encoder.width=32", "training.optimizer.use_averages=true", "training.max_steps=12", "training.eval_frequency=6", train=tiny_corpus)
    result = run_worker(config)
    out = Path(result["output_dir"])
    from safetensors.torch import load_file

    saved = load_file(str(out / "model-last" / "model.safetensors"))
    averages = load_file(str(out / "checkpoints" / "step-00000012" / "averages.safetensors"))
    live = load_file(str(out / "checkpoints" / "step-00000012" / "model.safetensors"))
    assert result["step"] == 12 and set(averages) <= set(saved)
    for name, value in averages.items():
        torch.testing.assert_close(saved[name], value)  # model-last holds the averages ...
    assert any(not torch.equal(live[n], averages[n]) for n in averages)  # ... not the live weights

    # max_epochs stops on the epoch count, whatever max_steps says.
    config = make_config("encoder.width=32", "training.max_steps=0", "training.max_epochs=3", "training.eval_frequency=1000",
                         "training.batcher.size=100", "training.checkpoints_to_keep=0", train=tiny_corpus)
    result = run_worker(config)
    assert result["stop_reason"] == "max_epochs"
    assert result["step"] >= 3

    # patience: no better score for `patience` steps stops the run (lr 0 never improves).
    config = make_config("encoder.width=32", "training.max_steps=100", "training.eval_frequency=2", "training.patience=4",
                         "training.optimizer.learn_rate=0.0", train=tiny_corpus)
    result = run_worker(config)
    assert result["stop_reason"] == "patience" and result["step"] == 6 and result["best_step"] == 2
