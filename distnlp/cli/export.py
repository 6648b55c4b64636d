"""`distnlp export CORPUS OUT.spacy`: a converted corpus as a spaCy DocBin (needs the `spacy` extra).

Every annotation the corpus holds is written, missing values as spaCy's missing values, so
`spacy train` and `spacy evaluate` read what distnlp reads.
"""
from __future__ import annotations

import argparse
from typing import Any
from ..data.stream import read_docs
from ..interop.docbin_out import write_docbin

HELP = "write a converted corpus as a spaCy .spacy (DocBin) file"


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("export", help=HELP, description=HELP)
    p.add_argument("corpus", help="a corpus directory written by distnlp convert")
    p.add_argument("output", help="the .spacy file to write (must not exist)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    n = write_docbin(read_docs(args.corpus, label="CORPUS"), args.output)
    print(f"exported {n:,} docs -> {args.output}")
    return 0
