"""`distnlp` command line. Subcommands take Hydra overrides where they build a config.

    distnlp --version

    distnlp convert INPUT... OUTPUT_DIR [--format ...]
    distnlp corpus-labels CORPUS_DIR...     # label inventories for a corpus converted before they were stored
    distnlp init vectors INPUT OUTPUT_DIR [--prune N] [--truncate N]
    distnlp init config --from-spacy config.cfg DIR/experiment/NAME.yaml
    distnlp config show [overrides]      # the fully resolved config
    distnlp config validate [overrides]
    distnlp train [overrides]
    distnlp pretrain [overrides]
    distnlp evaluate MODEL_DIR CORPUS_DIR [--output scores.json]
    distnlp report RUN_DIR [RUN_DIR ...] [--output report.png]
    distnlp export CORPUS_DIR OUT.spacy     # spaCy DocBin (spacy extra)
    distnlp annotate MODEL INPUT... OUTPUT [--format jsonl] [overrides]
"""
from __future__ import annotations

import os

# Before torch starts its OpenMP pool: spinning worker threads collapse throughput (measured 138
# vs 12,561 words/s training) when another process holds a core; passive waiting costs ~nothing.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402

from .. import __version__  # noqa: E402
from ..errors import DistnlpError  # noqa: E402
from .args import MixedArgumentParser  # noqa: E402


def _build_parser() -> argparse.ArgumentParser:
    # options may come anywhere, e.g. `distnlp convert in.conllu --ner x.iob2 out/` (args.py)
    parser = MixedArgumentParser(prog="distnlp", description="spaCy-style NLP pipelines trained on many GPUs with Ray")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    from . import commands, convert, corpus_labels

    convert.add_parser(sub)
    corpus_labels.add_parser(sub)
    init = sub.add_parser("init", help="create assets: vectors")
    init_sub = init.add_subparsers(dest="init_command", required=True)
    from . import init_vectors

    init_vectors.add_parser(init_sub)
    from . import init_config

    init_config.add_parser(init_sub)
    commands.add_config_parser(sub)
    commands.add_train_parser(sub)
    commands.add_evaluate_parser(sub)
    commands.add_pretrain_parser(sub)
    from . import annotate, export, report

    report.add_parser(sub)
    export.add_parser(sub)
    annotate.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return int(run(args) or 0)
    except DistnlpError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
