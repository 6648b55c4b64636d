"""An ArgumentParser that takes options anywhere among the positionals.

`distnlp convert in.conllu --ner x.iob2 out/` failed with "unrecognized arguments": plain argparse
stops filling a positional (INPUT... OUTPUT_DIR) at the first option. argparse's intermixed
parsing fixes that but does not support subparsers, so a parser that has subcommands parses the
plain way and leaves each subcommand's parser (this same class) to mix.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence


class MixedArgumentParser(argparse.ArgumentParser):
    _mixing = False  # parse_known_intermixed_args calls parse_known_args itself

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._mixing or self._subparsers is not None:
            return super().parse_known_args(args, namespace)
        self._mixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._mixing = False

