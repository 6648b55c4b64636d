"""`distnlp` command line. Subcommands take Hydra overrides where they build a config.

    distnlp --version

    distnlp convert INPUT... OUTPUT_DIR [--format ...]
    distnlp corpus-labels CORPUS_DIR...     # label inventories for a corpus converted before they were stored
    distnlp init vectors INPUT OUTPUT_DIR [--prune N] [--truncate N]
    distnlp init config --from-spacy config.cfg DIR/experiment/NAME.yaml
    distnlp config show [overrides]      # the fully resolved config
    distnlp config validate [overrides]
    distnlp train [overrides]
    distnlp tune [overrides] tune.num_samples=N tune.max_concurrent=K   # Ray Tune, ASHA
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
import importlib  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402

from ..errors import DistnlpError  # noqa: E402
from ..version import __version__  # noqa: E402
from .args import MixedArgumentParser  # noqa: E402

# Each command: the module that defines its arguments and runs it, and its line in `distnlp
# --help`. Only the module of the command being run is imported (with torch, pyarrow, Hydra ...),
# so `distnlp --help` and `--version` start in a fraction of a second.
COMMANDS: dict[str, tuple[str, str]] = {
    "convert": ("convert", "convert CoNLL-U, IOB, JSONL, CSV, text or spaCy .spacy (DocBin) files into a Parquet corpus"),
    "corpus-labels": ("corpus_labels", "add the label inventories training needs to the meta.json of an older corpus"),
    "init": ("init", "create assets: a vectors table, a config from spaCy's"),
    "config": ("commands", "show or validate the composed config"),
    "train": ("commands", "train a pipeline (Hydra overrides follow)"),
    "evaluate": ("commands", "score a saved pipeline on a converted corpus or a CoNLL-U file"),
    "pretrain": ("pretrain", "pretrain the embedding layer on raw text (Hydra overrides follow)"),
    "tune": ("tune", "search hyperparameters on Ray Tune: parallel trials, ASHA early stopping, resumable"),
    "report": ("report", "compare training runs: curves on shared axes and a table of final and best scores"),
    "export": ("export", "write a converted corpus as a spaCy .spacy (DocBin) file"),
    "annotate": ("annotate", "annotate text or corpora with a saved pipeline, on one process or Ray actors"),
}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line parsed; the module of its command (the first positional) is imported."""
    command = next((a for a in argv if not a.startswith("-")), None)
    return build_parser(command).parse_args(list(argv))


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser, with `command`'s full arguments (the other commands only listed)."""
    # options may come anywhere, e.g. `distnlp convert in.conllu --ner x.iob2 out/` (args.py)
    parser = MixedArgumentParser(prog="distnlp", description="spaCy-style NLP pipelines trained on many GPUs with Ray")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    if command in COMMANDS:
        importlib.import_module(f"{__package__}.{COMMANDS[command][0]}").add_parser(sub)
    for name, (_, line) in COMMANDS.items():  # the others: named and described, not imported
        if name not in sub.choices:
            sub.add_parser(name, help=line)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
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
