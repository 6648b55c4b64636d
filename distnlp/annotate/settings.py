"""`distnlp annotate` overrides (`key=value` after the paths), checked before any work starts."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

from ..config.settings import DistributedSettings
from ..errors import ConfigError, did_you_mean


@dataclass(frozen=True)
class Batching:
    """How Pipeline.pipe batches (budget.py): padded words per batch, docs per batch, sort window."""

    max_words: int = 4000
    max_docs: int = 256
    window: int = 1024


@dataclass(frozen=True)
class AnnotateSettings:
    distributed: str = "single"  # single | ray
    num_workers: int = 0  # Ray actors; 0: one per GPU, else 2 CPU actors
    use_gpu: str = "auto"  # auto | true | false
    address: str | None = None  # a Ray cluster to join (else RAY_ADDRESS, else a private local Ray)
    num_cpus: int | None = None  # CPUs of a private local Ray
    connect_timeout_s: float = 120.0
    threads_per_actor: int = 1  # torch threads in each CPU actor
    rows_per_shard: int = 10_000
    batch: Batching = field(default_factory=Batching)
    exit_after_splits: int = 0  # tests: exit hard after committing N splits, as a killed job would

    def connection(self) -> DistributedSettings:
        """What ray_backend.driver.connect reads: where Ray is, or how to start a private one."""
        return DistributedSettings(backend="ray", address=self.address, num_cpus=self.num_cpus, connect_timeout_s=self.connect_timeout_s)


# override key -> (field, parser)
_KEYS: dict[str, tuple[str, Any]] = {
    "distributed": ("distributed", str),
    "distributed.num_workers": ("num_workers", int),
    "distributed.use_gpu": ("use_gpu", str),
    "distributed.address": ("address", str),
    "distributed.num_cpus": ("num_cpus", int),
    "distributed.connect_timeout_s": ("connect_timeout_s", float),
    "distributed.threads_per_actor": ("threads_per_actor", int),
    "rows_per_shard": ("rows_per_shard", int),
    "batch.max_words": ("max_words", int),
    "batch.max_docs": ("max_docs", int),
    "batch.window": ("window", int),
    "debug.exit_after_splits": ("exit_after_splits", int),
}
_CHOICES = {"distributed": ("single", "ray"), "distributed.use_gpu": ("auto", "true", "false")}
_POSITIVE = {"rows_per_shard", "batch.max_words", "batch.max_docs", "batch.window", "distributed.threads_per_actor"}


def parse_overrides(overrides: list[str]) -> AnnotateSettings:
    values: dict[str, Any] = {}
    batch: dict[str, Any] = {}
    for item in overrides:
        key, _, raw = item.partition("=")
        key = key.strip()
        if key not in _KEYS:
            raise ConfigError(key, "unknown annotate key", did_you_mean(key, _KEYS))
        name, parse = _KEYS[key]
        try:
            value = parse(raw.strip())
        except ValueError:
            raise ConfigError(key, f"{raw!r} is not a valid {parse.__name__}", f"e.g. {key}={_example(parse)}") from None
        if key in _CHOICES and value not in _CHOICES[key]:
            raise ConfigError(key, f"{value!r} is not one of {', '.join(_CHOICES[key])}", f"e.g. {key}={_CHOICES[key][-1]}")
        if key in _POSITIVE and value < 1 or key == "distributed.num_workers" and value < 0:
            raise ConfigError(key, f"must be positive, not {value}", f"e.g. {key}={getattr(Batching(), name, 1000)}")
        (batch if key.startswith("batch.") else values)[name] = value
    return AnnotateSettings(**values, batch=Batching(**batch))


def _example(parse: Any) -> str:
    return {int: "4", float: "60.0"}.get(parse, "VALUE")


__all__ = ["AnnotateSettings", "Batching", "parse_overrides"]


def exit_if_asked(settings: AnnotateSettings, splits_done: int) -> None:
    """debug.exit_after_splits: stop as a killed job would (no cleanup, no meta.json)."""
    if settings.exit_after_splits and splits_done >= settings.exit_after_splits:
        sys.stderr.flush()
        os._exit(3)
