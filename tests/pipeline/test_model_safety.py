"""Saving never deletes what distnlp did not write; loading never runs a model's code unasked."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import distnlp
from distnlp.cli.compose import compose_config
from distnlp.cli.main import main
from distnlp.errors import CheckpointError
from distnlp.owned_paths import NotOwnedError
from distnlp.pipeline.pipeline import Pipeline
from distnlp.hashed_files import file_sha256

from .conftest import FIXTURES


@pytest.fixture(scope="module")
def nlp() -> Pipeline:
    return Pipeline(compose_config(["nlp.pipeline=[tagger]", "encoder.width=16"]), {"tagger": ["A", "B"]})


def _names(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_to_disk_refuses_a_folder_that_is_not_its_model(nlp: Pipeline, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(NotOwnedError, match=r"thesis\.tex"):
        nlp.to_disk(mine)
    assert _names(mine) == ["thesis.tex"]
    # a config.json of the user's does not make a folder a distnlp model
    (mine / "thesis.tex").unlink()
    (mine / "config.json").write_text("{}")
    with pytest.raises(NotOwnedError, match=r"config\.json"):
        nlp.to_disk(mine)
    assert (mine / "config.json").read_text() == "{}"
    assert _names(tmp_path) == ["mine"]  # no temporary left behind


def test_to_disk_replaces_only_its_own_files(nlp: Pipeline, tmp_path: Path) -> None:
    model = tmp_path / "model"
    sibling = tmp_path / "model.tmp"  # the old code removed this name without looking
    sibling.mkdir()
    (sibling / "keep.txt").write_text("keep")
    nlp.to_disk(model)
    meta = json.loads((model / "meta.json").read_text())
    assert meta["files"] == ["config.json", "labels.json", "meta.json", "model.safetensors"]
    nlp.to_disk(model, meta={"step": 2})  # replacing its own model works
    assert json.loads((model / "meta.json").read_text())["step"] == 2
    assert (sibling / "keep.txt").read_text() == "keep"
    assert _names(tmp_path) == ["model", "model.tmp"]
    (model / "notes.md").write_text("my notes on this model")
    with pytest.raises(NotOwnedError, match=r"notes\.md"):
        nlp.to_disk(model)
    assert (model / "notes.md").exists() and (model / "model.safetensors").exists()


def _model_with_code(nlp: Pipeline, tmp_path: Path) -> tuple[Path, Path]:
    model = tmp_path / "model"
    nlp.to_disk(model)
    sentinel = tmp_path / "ran.txt"
    (model / "code.py").write_text(f"import pathlib\npathlib.Path({str(sentinel)!r}).write_text('ran')\n")
    config = json.loads((model / "config.json").read_text())
    config["code"] = "code.py"
    (model / "config.json").write_text(json.dumps(config))
    # as a model saved with its code: meta.json's checksums match (else loading stops at them first)
    meta = json.loads((model / "meta.json").read_text())
    for name in ("code.py", "config.json"):
        meta["checksums"][name] = {"size": (model / name).stat().st_size, "sha256": file_sha256(model / name)}
    (model / "meta.json").write_text(json.dumps(meta))
    return model, sentinel


def test_load_does_not_run_model_code_without_trust(nlp: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model, sentinel = _model_with_code(nlp, tmp_path)
    with pytest.raises(CheckpointError, match=r"code\.py: this model runs its own Python code.*trust_code=True"):
        distnlp.load(model)
    with pytest.raises(CheckpointError, match="trust_code"):
        Pipeline.from_disk(model)
    assert not sentinel.exists()
    assert main(["evaluate", str(model), str(tmp_path / "no-corpus")]) == 1
    err = capsys.readouterr().err
    assert "--trust-code" in err and len(err.strip().splitlines()) == 1
    assert not sentinel.exists()
    assert distnlp.load(model, trust_code=True).pipe_names == ["tagger"]
    assert sentinel.read_text() == "ran"


def test_trust_remote_code_in_a_saved_config_needs_trust(tmp_path: Path) -> None:
    # Hugging Face imports a model folder's own modeling code when asked to: that is code too
    config = compose_config(["nlp.pipeline=[tagger]", "encoder=tiny_transformer"])
    config["encoder"]["model"]["transformer_config"] = {"trust_remote_code": True}
    Pipeline(config, {"tagger": ["A", "B"]}).to_disk(tmp_path / "model")
    with pytest.raises(CheckpointError, match="encoder.model.transformer_config.trust_remote_code is set"):
        distnlp.load(tmp_path / "model")
    assert distnlp.load(tmp_path / "model", trust_code=True).pipe_names == ["tagger"]


def test_saving_a_model_with_user_code_still_works(tmp_path: Path) -> None:
    config = compose_config(["nlp.pipeline=[tagger]", "encoder.width=16", f"code={FIXTURES / 'user_code.py'}"])
    nlp = Pipeline(config, {"tagger": ["A", "B"]})
    nlp.to_disk(tmp_path / "model")
    assert (tmp_path / "model" / "code.py").read_text() == (FIXTURES / "user_code.py").read_text()
    assert "code.py" in json.loads((tmp_path / "model" / "meta.json").read_text())["files"]
    assert distnlp.load(tmp_path / "model", trust_code=True).pipe_names == ["tagger"]
