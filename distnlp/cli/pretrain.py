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

from ..errors import ConfigError
from .config_dirs import add_config_dir_argument, config_dir_overrides

__all__ = ["add_parser", "run", "load_pretrain_config"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("pretrain", help="pretrain the embedding layer on raw text (Hydra overrides follow)")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. corpus.raw_text=text.jsonl pretrain.output_dir=DIR pretrain.max_epochs=5")
    add_config_dir_argument(p)
    p.set_defaults(run=run)
    return p


def load_pretrain_config(overrides: list[str]) -> dict[str, Any]:
    from ..config import validate_config
    from .compose import compose_config

    config = compose_config(overrides)
    validate_config(config)
    if not isinstance(config.get("pretrain"), dict):
        raise ConfigError("pretrain", "no pretrain section in the config", "add the group: +pretrain=characters (or pretrain=vectors)")
    from ..pretrain.loop import objective_config

    objective_config(config["pretrain"])  # an unknown objective fails before any work starts
    from ..training.settings import pretrain_settings

    pretrain_settings(config)
    # pretraining never starts from pretrained weights itself (spaCy forces init_tok2vec=None)
    config.setdefault("initialize", {})["init_tok2vec"] = None
    return config


def run(args: argparse.Namespace) -> int:
    config = load_pretrain_config(config_dir_overrides(args.config_dir) + args.overrides)
    from .commands import run_entry

    result = run_entry(config, "pretrain")
    return 0 if result else 1


def main(argv: list[str] | None = None) -> int:
    """`python -m distnlp.cli.pretrain [overrides]` (until `distnlp pretrain` is wired in main.py)."""
    import logging
    import sys

    from ..errors import DistnlpError

    parser = argparse.ArgumentParser(prog="distnlp pretrain")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["pretrain", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args) or 0)
    except DistnlpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
