"""Saving never deletes what distnlp did not write."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from distnlp.cli.compose import compose_config
from distnlp.owned_paths import NotOwnedError
from distnlp.pipeline.pipeline import Pipeline


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
