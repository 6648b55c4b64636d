"""`distnlp corpus-labels CORPUS_DIR...`: store the label inventories a corpus written before
distnlp stored them lacks (the morphologizer's labels, the lemma edit-tree counts) in its
meta.json, by one full read, so training starts from meta.json alone. Shards are not touched;
meta.json is replaced atomically. A corpus that has them is left as it is.
"""
from __future__ import annotations

import argparse
from typing import Any
from ..training.labels import TREES_KEY, read_meta, store_corpus_labels

HELP = "add the label inventories training needs to the meta.json of a corpus converted before distnlp stored them"


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("corpus-labels", help=HELP, description=HELP)
    p.add_argument("corpora", nargs="+", metavar="CORPUS_DIR", help="corpus directories written by distnlp convert (or annotate)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for path in args.corpora:
        before = read_meta(path)
        meta = store_corpus_labels(path)
        if meta == before:
            print(f"{path}: meta.json already has its label inventories")
        else:
            print(f"{path}: meta.json now holds {len(meta['labels'].get('morphologizer', [])):,} morphologizer labels, "
                  f"{len(meta[TREES_KEY]):,} lemma edit trees with their counts")
    return 0
