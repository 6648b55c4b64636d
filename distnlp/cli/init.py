"""`distnlp init`: create assets: a vectors table (`init vectors`), a config translated from
spaCy's (`init config`)."""
from __future__ import annotations

import argparse

from . import init_config, init_vectors


def add_parser(sub: argparse._SubParsersAction) -> None:
    init = sub.add_parser("init", help="create assets: a vectors table, a config from spaCy's")
    init_sub = init.add_subparsers(dest="init_command", required=True)
    init_vectors.add_parser(init_sub)
    init_config.add_parser(init_sub)
