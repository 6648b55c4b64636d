"""The launcher builds a run's settings once (config/settings.py `RunSettings`) and only those
typed objects travel below it: no layer parses `distributed`, `corpus` or the batcher again."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from distnlp.cli.compose import compose_config
from distnlp.cli.launch import run_entry
from distnlp.config import settings as settings_module
from distnlp.config.settings import BatcherSettings, CorpusSettings, DistributedSettings, training_run
from distnlp.errors import ConfigError
from distnlp.pretrain.entry import PRETRAIN
from distnlp.training.loop import TRAIN


def _config(out: Path, *overrides: str) -> dict[str, Any]:
    return compose_config(["encoder.width=16", "distributed.num_threads=1", "training.max_eval_docs=2", "training.max_steps=2",
                           "training.checkpoints_to_keep=0", "nlp.pipeline=[tagger]", f"training.output_dir={out}", *overrides])


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> Counter:
    calls: Counter = Counter()
    for cls in (DistributedSettings, CorpusSettings, BatcherSettings):
        original = cls.from_config.__func__  # type: ignore[attr-defined]

        def counted(klass: type, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            calls[klass.__name__] += 1
            return _original(klass, *args, **kwargs)

        monkeypatch.setattr(cls, "from_config", classmethod(counted))
    for name in ("training_settings", "pretrain_settings"):
        original_fn = getattr(settings_module, name)

        def counted_fn(config: Any, _original: Any = original_fn, _name: str = name) -> Any:
            calls[_name] += 1
            return _original(config)

        monkeypatch.setattr(settings_module, name, counted_fn)
    return calls


def test_a_training_run_parses_its_settings_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(tmp_path / "run")
    calls = _count_parses(monkeypatch)
    summary = run_entry(config, TRAIN)
    assert summary["step"] == 2
    assert calls == {"training_settings": 1, "DistributedSettings": 1, "CorpusSettings": 1, "BatcherSettings": 1}


def test_the_objectives_take_the_settings_they_are_given(tmp_path: Path) -> None:
    """What a launcher built is what runs: the objective reads the batcher and the data ranks
    from the RunSettings, not from the config beside it."""
    from distnlp.training.env import WorkerEnv

    config = _config(tmp_path / "run", "training.batcher.size=100000")  # the dict: every doc in one batch
    built = training_run(config)
    small = compose_config(["training.batcher.size=10"])["training"]["batcher"]  # the settings: one doc a batch
    run = settings_module.RunSettings(built.loop, BatcherSettings.from_config(small, "training.batcher"), built.corpus,
                                      built.distributed, built.evaluation)
    objective = TRAIN.objective(config, run, WorkerEnv(), None)
    assert [len(objective.batches.take()) for _ in range(3)] == [1, 1, 1]


@pytest.mark.parametrize("value", ["5", "null"])
def test_a_batcher_that_names_no_registered_function_is_one_line(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"^training\.batcher: expected a registered batcher.*_use_: distnlp\.batch_by_words\.v1"):
        training_run(_config(tmp_path, f"training.batcher={value}"))


def test_pretraining_settings_name_their_own_section(tmp_path: Path) -> None:
    config = compose_config(["pretrain=characters", "pretrain.max_steps=1", "pretrain.batcher=7"])
    with pytest.raises(ConfigError, match=r"^pretrain\.batcher: expected a registered batcher"):
        PRETRAIN.settings(config)


def test_an_unknown_reduce_dtype_is_one_line() -> None:
    from distnlp.config.settings import DistributedSettings

    assert DistributedSettings.from_config({"distributed": {"reduce_dtype": "bfloat16"}}).reduce_dtype == "bfloat16"
    assert DistributedSettings.from_config({"distributed": {}}).reduce_dtype is None
    with pytest.raises(ConfigError, match=r"^distributed\.reduce_dtype: unknown type 'fp16'.*null .*bfloat16, float32"):
        DistributedSettings.from_config({"distributed": {"reduce_dtype": "fp16"}})
