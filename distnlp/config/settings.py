"""Typed settings of the training engine, with every default in one place.

The config reaches workers as plain data (docs/architecture.md, "Layers"); these dataclasses are
read from it once, at the start of a run, and checked there. Each object remembers the config
path it came from (`training` or `pretrain`), so errors raised by shared builders name the
caller's key: `pretrain.optimizer.learn_rate`, not `training.optimizer.learn_rate`.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .corpora import CorpusEntry, check_corpus_section, train_entries
from ..errors import ConfigError
from ..registry import USE_KEY, loggers

NONFINITE_POLICIES = ("error", "skip")


@dataclass(frozen=True)
class OptimizerSettings:
    path: str = "training.optimizer"
    algorithm: str = "adamw"
    learn_rate: Any = field(default=0.001, metadata={"any": True})  # a number or a schedule {_use_: ...}
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    use_averages: bool = False
    encoder_lr_factor: float = 1.0

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | None, path: str) -> "OptimizerSettings":
        settings = _read(cls, node or {}, path)
        if settings.algorithm.lower() not in ("adamw", "adam"):
            raise ConfigError(f"{path}.algorithm", f"unknown algorithm {settings.algorithm!r}", "use adamw or adam")
        if settings.grad_clip < 0:
            raise ConfigError(f"{path}.grad_clip", f"must be >= 0, got {settings.grad_clip}", "0 turns clipping off")
        return settings


@dataclass(frozen=True)
class LoopSettings:
    """What the one loop needs, for training and pretraining alike."""

    path: str = "training"
    output_dir: str = "training"
    max_steps: int = 0  # 0 = no step limit
    max_epochs: int = 0  # 0 = no epoch limit
    patience: int = 0  # steps without a better score before stopping; 0 = never (training only)
    eval_frequency: int = 200  # training: evaluate + checkpoint every N steps
    n_save_every: int = 0  # pretraining: also save every N batches of an epoch (spaCy's meaning)
    n_save_epoch: int = 0  # pretraining: write model{epoch}.bin only every N epochs
    accumulate_gradient: int = 1
    dropout: float | None = 0.1
    log_every: int = 50
    checkpoints_to_keep: int = 3  # 0 = no checkpoints (one process only)
    resume: bool = False
    overwrite: bool = False  # replace what an earlier run wrote into output_dir
    nonfinite: str = "error"  # a non-finite loss or gradient norm: stop (error) or skip the step
    prefetch: bool = True  # prepare the next step's input on a background thread (training/prefetch.py)
    seed: int = 0
    optimizer: OptimizerSettings = field(default_factory=OptimizerSettings)

    @property
    def stops(self) -> bool:
        return bool(self.max_steps or self.max_epochs or self.patience)


@dataclass(frozen=True)
class DistributedSettings:
    """`distributed.*`: where replicas run (one process, torchrun, Ray) and how they talk."""

    path: str = "distributed"
    backend: str = "single"
    # An int, or "MIN..MAX" (Ray only): Ray Train's elastic scaling, see `workers`.
    num_workers: int | str = field(default=1, metadata={"any": True})
    use_gpu: Any = field(default="auto", metadata={"any": True})  # auto | true | false
    device: str = "auto"
    num_threads: int = 0  # torch CPU threads per worker; 0 = the worker's CPU share
    address: str | None = None
    num_cpus: int | None = None
    resources_per_worker: dict | None = None
    run_name: str = "distnlp"
    storage_path: str | None = None
    max_failures: int = 1
    bucket_mb: float = 25.0
    reduce_dtype: str | None = None  # the gradient all-reduce's wire type: None = the gradients' own (exact) | bfloat16 | float32
    timeout_s: float = 600.0
    connect_timeout_s: float = 120.0
    fail_at_step: int | None = None
    fail_in_checkpoint: bool = False
    keep_global_batch: bool = False  # resumed on another number of replicas: keep the old global batch (training/virtual_ranks.py)
    ray_log_level: str | None = None  # Ray's own messages: null = hidden (shown with --verbose)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "DistributedSettings":
        settings = _read(cls, config.get("distributed") or {}, "distributed")
        if settings.ray_log_level is not None and str(settings.ray_log_level).lower() not in RAY_LOG_LEVELS:
            raise ConfigError("distributed.ray_log_level", f"unknown level {settings.ray_log_level!r}",
                              f"use one of {', '.join(RAY_LOG_LEVELS)}, or null (error; info with --verbose)")
        if settings.reduce_dtype is not None and settings.reduce_dtype not in REDUCE_DTYPES:
            raise ConfigError("distributed.reduce_dtype", f"unknown type {settings.reduce_dtype!r}",
                              f"use null (the gradients' own type: replicas equal one process) or one of {', '.join(REDUCE_DTYPES)}")
        return dataclasses.replace(settings, num_workers=_num_workers(settings.num_workers, settings.backend))

    @property
    def elastic(self) -> bool:
        return isinstance(self.num_workers, str)

    @property
    def min_workers(self) -> int:
        return self.workers[0]

    @property
    def max_workers(self) -> int:
        return self.workers[1]

    @property
    def workers(self) -> tuple[int, int]:
        """(MIN, MAX) replicas; (N, N) for a fixed num_workers."""
        if isinstance(self.num_workers, int):
            return self.num_workers, self.num_workers
        low, high = self.num_workers.split("..")
        return int(low), int(high)


def _num_workers(value: Any, backend: str) -> int | str:
    """An int stays an int; "MIN..MAX" is checked and kept as text (its canonical form)."""
    key = "distributed.num_workers"
    if isinstance(value, str) and ".." in value:
        low, _, high = (part.strip() for part in value.partition(".."))
        if not (low.isdigit() and high.isdigit()):
            raise ConfigError(key, f"expected N or MIN..MAX, got {value!r}", "e.g. distributed.num_workers=2 or distributed.num_workers=1..4")
        if backend != "ray":
            raise ConfigError(key, f"a range ({value}) needs Ray's elastic scaling", "use distributed=ray, or a fixed distributed.num_workers=N")
        lo, hi = int(low), int(high)
        if lo < 1:
            raise ConfigError(key, f"MIN must be >= 1, got {value}", f"e.g. distributed.num_workers=1..{max(hi, 1)}")
        if lo > hi:
            raise ConfigError(key, f"MIN must be <= MAX, got {value}", f"e.g. distributed.num_workers={hi}..{lo}")
        return lo if lo == hi else f"{lo}..{hi}"
    if isinstance(value, str) and not value.strip().isdigit():
        raise ConfigError(key, f"expected N or MIN..MAX, got {value!r}", "e.g. distributed.num_workers=2 or distributed.num_workers=1..4")
    number = _as_int(value, key)
    if number < 1:
        raise ConfigError(key, f"must be >= 1, got {number}", "e.g. distributed.num_workers=2")
    return number


RAY_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
REDUCE_DTYPES = ("bfloat16", "float32")  # distributed.reduce_dtype (distributed/grad_sync.py)


@dataclass(frozen=True)
class CorpusSettings:
    """`corpus.*`: the converted corpora and how the training stream reads them."""

    path: str = "corpus"
    train: Any = field(default=None, metadata={"any": True})  # a path, or a list of corpora (config/corpora.py)
    dev: str | None = None
    raw_text: str | None = None
    shuffle: bool = True
    shuffle_words: int = 1_000_000  # training docs shuffled in windows of this many words (data/shuffle_window.py); 0 = off
    min_length: int = 0
    max_length: int = 0
    # Training docs longer than this many words are cut at sentence boundaries (data/split_docs.py),
    # so every replica's batch fills to its word budget; 0 = whole docs.
    split_length: int = 0
    # Several corpora without weights: p_i ~ n_i ** temperature, n_i = docs (MaChAmp's
    # sampling_smoothing; its default 1.0 = proportional to size, 0 = uniform).
    temperature: float = 1.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "CorpusSettings":
        node = config.get("corpus") or {}
        check_corpus_section(node)  # first: a bad temperature is a one-line error, not float()'s
        settings = _read(cls, node, "corpus")
        if settings.split_length < 0:
            raise ConfigError("corpus.split_length", f"must be >= 0, got {settings.split_length}",
                              "e.g. corpus.split_length=200 (0 keeps whole docs)")
        return settings

    def train_corpora(self) -> list[CorpusEntry]:
        """The training corpora, in config order (one for a single path); an error when unset."""
        entries = train_entries(self.train)
        if not entries:
            self.required("train")
        return entries

    def dev_sets(self) -> list[tuple[str | None, str, str]]:
        """(corpus name, dev path, its config key) to evaluate on: the corpora's own dev sets
        (scored per corpus and combined), else corpus.dev alone (name None: combined only)."""
        own = [(e.name, e.dev, f"corpus.train[{i}].dev") for i, e in enumerate(train_entries(self.train)) if e.dev]
        if own:
            return own
        return [(None, str(self.dev), "corpus.dev")] if self.dev else []

    def required(self, split: str) -> str:
        value = getattr(self, split)
        if split == "train" and isinstance(value, (list, tuple)):
            entries = train_entries(value)
            if len(entries) > 1:
                raise ConfigError("corpus.train", f"lists {len(entries)} corpora where one is read", "give one corpus directory here")
            return entries[0].path
        if not value:
            hint = 'FILE (JSONL {"text": ...}, plain text lines, or a converted corpus directory)' if split == "raw_text" else "DIR (a directory written by distnlp convert)"
            raise ConfigError(f"corpus.{split}", "not set", f"set corpus.{split}={hint}")
        return str(value)


@dataclass(frozen=True)
class BatcherSettings:
    """`training.batcher` / `pretrain.batcher`: a registered batcher's node
    (`{_use_: distnlp.batch_by_words.v1, size: ...}`), resolved by the objective through the
    registry (this layer builds nothing)."""

    path: str
    node: Mapping[str, Any]

    @classmethod
    def from_config(cls, node: Any, path: str) -> "BatcherSettings":
        if not isinstance(node, Mapping) or "_use_" not in node:
            raise ConfigError(path, f"expected a registered batcher, got {node!r}",
                              f"e.g. {path}={{_use_: distnlp.batch_by_words.v1, size: 2000}}")
        return cls(path, dict(node))

    @property
    def first_batch_words(self) -> float | None:
        """The batch size (words) the batcher starts at: its `size`, or its schedule's `start`."""
        size = self.node.get("size")
        if isinstance(size, (int, float)) and not isinstance(size, bool):
            return float(size)
        if isinstance(size, Mapping) and isinstance(size.get("start"), (int, float)):
            return float(size["start"])
        return None


@dataclass(frozen=True)
class EvaluationSettings:
    """Training's evaluation keys: how much of the dev set, how scores combine, curves."""

    path: str = "training"
    max_eval_docs: int = 0  # 0 = the whole dev corpus
    score_weights: dict | None = None  # None: each component's own score_weights
    curves: bool = True  # redraw training_curves.png at every evaluation


@dataclass(frozen=True)
class RunSettings:
    """Everything a run reads from its config, built once by the launcher that starts it (the
    CLI, the Ray driver) and handed down with its Entry. What stays a dict is the model's own
    description (`components`, `nlp`, `initialize`, `pretrain`'s objective): it is saved with
    the model and rebuilt from there by whoever loads it."""

    loop: LoopSettings
    batcher: BatcherSettings
    corpus: CorpusSettings
    distributed: DistributedSettings
    evaluation: EvaluationSettings | None = None  # training only
    loggers: tuple[dict[str, Any], ...] = ()  # training.loggers as registered references (training/trackers.py)


def training_run(config: Mapping[str, Any]) -> RunSettings:
    node = config.get("training") or {}
    evaluation = _read(EvaluationSettings, {k: node[k] for k in ("max_eval_docs", "score_weights", "curves") if node.get(k) is not None}, "training")
    return RunSettings(training_settings(config), BatcherSettings.from_config(node.get("batcher"), "training.batcher"),
                       CorpusSettings.from_config(config), DistributedSettings.from_config(config), evaluation,
                       logger_specs(node.get("loggers")))


# What a bare name in training.loggers stands for.
LOGGER_SHORT_NAMES = {"tensorboard": "distnlp.tensorboard.v1", "mlflow": "distnlp.mlflow.v1", "wandb": "distnlp.wandb.v1"}


def logger_specs(value: Any, path: str = "training.loggers") -> tuple[dict[str, Any], ...]:
    """`training.loggers` as registered references; a bare name stands for its `.v1`."""
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise ConfigError(path, f"expected a list, got {value!r}", "e.g. training.loggers=[tensorboard,mlflow]")
    specs = []
    for i, item in enumerate(value):
        spec = {USE_KEY: LOGGER_SHORT_NAMES.get(item, item)} if isinstance(item, str) else dict(item) if isinstance(item, Mapping) else None
        if spec is None or not isinstance(spec.get(USE_KEY), str):
            raise ConfigError(f"{path}[{i}]", f"expected a logger name or {{_use_: NAME, ...}}, got {item!r}",
                              f"one of {', '.join(LOGGER_SHORT_NAMES)}, or a registered name")
        loggers.get(spec[USE_KEY], f"{path}[{i}]")
        specs.append(spec)
    return tuple(specs)


def pretrain_run(config: Mapping[str, Any]) -> RunSettings:
    loop = pretrain_settings(config)
    return RunSettings(loop, BatcherSettings.from_config(config["pretrain"].get("batcher"), "pretrain.batcher"),
                       CorpusSettings.from_config(config), DistributedSettings.from_config(config))


# Keys of the config sections that are not loop settings (read by the objectives themselves).
_TRAINING_ONLY = ("score_weights", "max_eval_docs", "batcher", "curves", "loggers")
_PRETRAIN_ONLY = ("objective", "objectives", "component", "layer", "mask_prob", "min_length", "max_length", "batcher", "vectors")


def training_settings(config: Mapping[str, Any]) -> LoopSettings:
    node = dict(config.get("training") or {})
    return _loop_settings(node, "training", int(config.get("seed", 0) or 0), _TRAINING_ONLY, patience_allowed=True)


def pretrain_settings(config: Mapping[str, Any]) -> LoopSettings:
    node = config.get("pretrain")
    if not isinstance(node, Mapping) or not node:
        raise ConfigError("pretrain", "no pretrain section in the config", "add the group: +pretrain=characters (or pretrain=vectors)")
    node = dict(node)
    seed = node.pop("seed", None)
    seed = int(config.get("seed", 0) or 0) if seed is None else int(seed)
    defaults = {"output_dir": "pretrain", "log_every": 1, "dropout": 0.2, "max_epochs": 1000}
    return _loop_settings({**defaults, **node}, "pretrain", seed, _PRETRAIN_ONLY, patience_allowed=False)


def _loop_settings(node: dict[str, Any], path: str, seed: int, other_keys: tuple[str, ...], *, patience_allowed: bool) -> LoopSettings:
    optimizer = OptimizerSettings.from_config(node.pop("optimizer", None), f"{path}.optimizer")
    for key in other_keys:
        node.pop(key, None)
    node = {k: (0 if v is None and k in ("n_save_every", "n_save_epoch") else v) for k, v in node.items()}
    settings = _read(LoopSettings, node, path)
    settings = dataclasses.replace(settings, path=path, seed=seed, optimizer=optimizer)
    _check_loop(settings, patience_allowed)
    return settings


def _check_loop(s: LoopSettings, patience_allowed: bool) -> None:
    p = s.path
    for key in ("max_steps", "max_epochs", "patience", "n_save_every", "n_save_epoch", "checkpoints_to_keep"):
        value = getattr(s, key)
        if value < 0:
            raise ConfigError(f"{p}.{key}", f"must be >= 0, got {value}", "0 means no limit / off")
    for key in ("eval_frequency", "accumulate_gradient", "log_every"):
        value = getattr(s, key)
        if value < 1:
            raise ConfigError(f"{p}.{key}", f"must be >= 1, got {value}", f"set {p}.{key}=N with N >= 1")
    if not s.stops or (not patience_allowed and not (s.max_steps or s.max_epochs)):
        limits = "max_steps, max_epochs and patience are" if patience_allowed else "max_steps and max_epochs are"
        raise ConfigError(f"{p}.max_steps", f"{limits} all 0: the run would never stop", f"set {p}.max_steps=N or {p}.max_epochs=N")
    if s.nonfinite not in NONFINITE_POLICIES:
        raise ConfigError(f"{p}.nonfinite", f"unknown policy {s.nonfinite!r}", "use error (stop with a message) or skip (drop the step)")
    if s.dropout is not None and not 0.0 <= float(s.dropout) < 1.0:
        raise ConfigError(f"{p}.dropout", f"must be in [0, 1), got {s.dropout}", "e.g. 0.1")


def _read(cls: type, node: Mapping[str, Any], path: str) -> Any:
    """Build a settings dataclass from the keys present; defaults come from the dataclass."""
    names = {f.name: f for f in dataclasses.fields(cls) if f.name != "path"}
    values: dict[str, Any] = {}
    for key, value in node.items():
        if key not in names:
            raise ConfigError(f"{path}.{key}", "unknown key", f"valid keys: {', '.join(sorted(names))}")
        default = names[key].default
        if names[key].metadata.get("any"):
            pass
        elif value is not None and isinstance(default, bool):
            value = bool(value)
        elif value is not None and isinstance(default, int) and not isinstance(default, bool):
            value = _as_int(value, f"{path}.{key}")
        elif value is not None and names[key].type in ("int | None",):
            value = _as_int(value, f"{path}.{key}")
        elif value is not None and isinstance(default, float):
            value = float(value)
        values[key] = value
    if "path" in {f.name for f in dataclasses.fields(cls)}:
        values["path"] = path
    return cls(**values)


def _as_int(value: Any, path: str) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ConfigError(path, f"expected an integer, got {value!r}", "fix the value's type")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(path, f"expected an integer, got {value!r}", "fix the value's type") from None
