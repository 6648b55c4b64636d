"""`distnlp init vectors INPUT OUTPUT_DIR [--truncate N] [--prune N] [--words FILE] [--name NAME]`.

Converts a word2vec/GloVe/fastText text table (.gz too), a word2vec binary (.bin) or a numpy
.npy matrix (+ --words) into a vectors directory that `distnlp.Vectors.v1` loads.
Also runnable alone: `python -m distnlp.cli.init_vectors INPUT OUTPUT_DIR ...`.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from ..errors import DistnlpError
from ..vectors.load import init_vectors
from .args import MixedArgumentParser

__all__ = ["add_parser", "main", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `vectors` subcommand to the `init` command's subparsers."""
    p = subparsers.add_parser(
        "vectors",
        help="convert a word vectors file into a distnlp vectors directory",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("input", help="vectors file: .txt/.vec (optionally .gz), word2vec .bin, or .npy")
    p.add_argument("output_dir", help="directory to write vectors.safetensors, words.txt, vectors.json")
    p.add_argument("--truncate", type=int, default=0, help="keep only the first N rows (0 = all)")
    p.add_argument("--prune", type=int, default=-1,
                   help="keep N rows; every other word maps to its nearest kept row by cosine (-1 = off)")
    p.add_argument("--words", default=None, help="words of a .npy matrix: one a line, or Parquet with an `index` column")
    p.add_argument("--name", default=None, help="name recorded in vectors.json (default: the input file's stem)")
    p.add_argument("--fmt", default=None, choices=["text", "word2vec_bin", "npy"], help="input format (default: from the suffix)")
    p.add_argument("--key-attr", default="ORTH", choices=["ORTH", "LOWER", "NORM"],
                   help="look words up as written (ORTH) or lowercased (LOWER/NORM)")
    p.set_defaults(func=run, run=run)  # main.py dispatches on `run`
    return p


def run(args: argparse.Namespace) -> int:
    if args.truncate < 0:
        print("error: --truncate must be >= 0", file=sys.stderr)
        return 1
    try:
        table = init_vectors(
            args.input, args.output_dir, truncate=args.truncate, prune=args.prune, fmt=args.fmt,
            name=args.name, words_path=args.words, key_attr=args.key_attr,
        )
    except (DistnlpError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    rows, dim = table.shape
    print(f"wrote {args.output_dir}: {len(table.words)} words, {rows} rows x {dim} dims (name {table.name!r})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["vectors"]:
        argv = ["vectors", *argv]
    parser = MixedArgumentParser(prog="distnlp init")
    add_parser(parser.add_subparsers(dest="init_command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
