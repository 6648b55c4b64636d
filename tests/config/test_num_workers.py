"""distributed.num_workers: N, or MIN..MAX under Ray (elastic scaling); one-line errors otherwise."""
from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from distnlp.cli.compose import compose_config
from distnlp.config import validate_config
from distnlp.errors import ConfigError
from distnlp.config.settings import DistributedSettings


def _settings(*overrides: str) -> DistributedSettings:
    config = compose_config(list(overrides))
    validate_config(config)
    return DistributedSettings.from_config(config)


@pytest.mark.parametrize(
    ("value", "num_workers", "workers", "elastic"),
    [("3", 3, (3, 3), False), ("1..4", "1..4", (1, 4), True), (" 2 .. 5", "2..5", (2, 5), True), ("2..2", 2, (2, 2), False)],
)
def test_ray_accepts_n_or_min_max(value: str, num_workers: Any, workers: tuple[int, int], elastic: bool) -> None:
    settings = DistributedSettings.from_config({"distributed": {"backend": "ray", "num_workers": value}})
    assert settings.num_workers == num_workers and settings.workers == workers and settings.elastic is elastic
    assert (settings.min_workers, settings.max_workers) == workers


def test_composed_range_validates_and_shows() -> None:
    assert _settings("distributed=ray", "distributed.num_workers=1..4").workers == (1, 4)
    assert _settings("distributed=ray", "distributed.num_workers=2").num_workers == 2
    shown = subprocess.run([sys.executable, "-m", "distnlp.cli.main", "config", "show", "distributed=ray", "distributed.num_workers=1..2"],
                           capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert "num_workers: 1..2" in shown.stdout


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["distributed.num_workers=1..4"], ["needs Ray", "distributed=ray"]),  # the single-process backend
        (["distributed=ray", "distributed.num_workers=0..2"], ["MIN must be >= 1", "1..2"]),
        (["distributed=ray", "distributed.num_workers=3..2"], ["MIN must be <= MAX", "2..3"]),
        (["distributed=ray", "distributed.num_workers=1..x"], ["expected N or MIN..MAX", "1..4"]),
        (["distributed=ray", "distributed.num_workers=1...3"], ["expected N or MIN..MAX"]),
        (["distributed=ray", "distributed.num_workers=two"], ["expected N or MIN..MAX"]),
        (["distributed=ray", "distributed.num_workers=0"], ["must be >= 1"]),
    ],
)
def test_bad_num_workers_is_one_line_error(overrides: list[str], words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        _settings(*overrides)
    message = str(info.value)
    assert message.startswith("distributed.num_workers: ") and "\n" not in message and message.endswith(")"), message
    for word in words:
        assert word in message, message


def test_elastic_scaling_config() -> None:
    pytest.importorskip("ray")
    from distnlp.ray_backend.driver import scaling_config

    fixed = scaling_config(_settings("distributed=ray", "distributed.num_workers=2"), False, {"CPU": 1})
    assert fixed.num_workers == 2 and not fixed.elasticity_enabled
    elastic = scaling_config(_settings("distributed=ray", "distributed.num_workers=1..4"), False, {"CPU": 1})
    assert elastic.num_workers == (1, 4) and elastic.elasticity_enabled and (elastic.min_workers, elastic.max_workers) == (1, 4)
