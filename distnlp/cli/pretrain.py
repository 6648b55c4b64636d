"""`distnlp pretrain [overrides]`: pretrain the embedding layer from raw text (spaCy's pretrain).

    distnlp pretrain corpus.raw_text=FILE pretrain.output_dir=DIR pretrain.max_epochs=N \
        [pretrain.objective=characters|vectors] [distributed=ray distributed.num_workers=2 ...]

writes DIR/model0.bin ... DIR/model-last.bin; `distnlp train initialize.init_tok2vec=DIR/model-last.bin`
uses them. One process calls `run_pretrain_worker`; `distributed=ray` runs the same worker on
every Ray replica.
"""
from __future__ import annotations

import argparse
from typing import Any

from ..config import validate_config
from ..config.settings import pretrain_run
from ..errors import ConfigError
from ..pretrain.entry import PRETRAIN
from ..pretrain.loop import objective_config
from .compose import compose_config
from .config_dirs import add_config_dir_argument, config_dir_overrides
from .launch import run_entry

__all__ = ["add_parser", "run", "load_pretrain_config"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("pretrain", help="pretrain the embedding layer on raw text (Hydra overrides follow)")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. corpus.raw_text=text.jsonl pretrain.output_dir=DIR pretrain.max_epochs=5")
    add_config_dir_argument(p)
    p.set_defaults(run=run)
    return p


def load_pretrain_config(overrides: list[str]) -> dict[str, Any]:
    config = compose_config(overrides)
    validate_config(config)
    if not isinstance(config.get("pretrain"), dict):
        raise ConfigError("pretrain", "no pretrain section in the config", "add the group: +pretrain=characters (or pretrain=vectors)")
    objective_config(config["pretrain"])  # an unknown objective fails before any work starts
    pretrain_run(config)
    # pretraining never starts from pretrained weights itself (spaCy forces init_tok2vec=None)
    config.setdefault("initialize", {})["init_tok2vec"] = None
    return config


def run(args: argparse.Namespace) -> int:
    config = load_pretrain_config(config_dir_overrides(args.config_dir) + args.overrides)
    result = run_entry(config, PRETRAIN)
    return 0 if result else 1
