"""`distnlp convert INPUT... OUTPUT_DIR`: source corpora to Parquet shards + meta.json.

Runs once, on CPU, before training (docs/architecture.md, "Data flow"). Errors the user can fix are printed
as one line on stderr with exit code 1, never as a traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..data.convert import FORMATS, ConvertReport, ReadOptions, read_docs, resolve_format, write_corpus
from ..data.convert.jsonl import ALIGNMENT_MODES
from ..errors import DistnlpError
from ..progress import with_progress
from .args import MixedArgumentParser

HELP = "convert CoNLL-U, IOB, JSONL, CSV, text or spaCy .spacy (DocBin) files into a Parquet corpus"


def add_parser(subparsers: Any) -> None:
    """Register `convert` on the `distnlp` command's subparsers."""
    p = subparsers.add_parser("convert", help=HELP, description=HELP)
    _add_arguments(p)
    p.set_defaults(run=run, func=run)  # main.py dispatches on args.run


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="INPUT... OUTPUT_DIR", help="input files, then the output directory")
    p.add_argument("--format", choices=FORMATS, default=None, help="input format (default: from the extension)")
    p.add_argument("--ner", type=Path, default=None, help="IOB file whose NER labels are joined to CoNLL-U input by sent_id")
    p.add_argument("--n-sents", type=int, default=None, help="sentences per doc (default: # newdoc boundaries)")
    p.add_argument("--shard-size", type=int, default=10_000, help="docs per shard (default 10000)")
    p.add_argument("--row-group-size", type=int, default=256, help="docs per Parquet row group (default 256)")
    p.add_argument("--alignment-mode", choices=ALIGNMENT_MODES, default="strict", help="JSONL entity offsets off token boundaries: error (strict) or snap")
    p.add_argument("--spans-key", default=None, help=".spacy input: use doc.spans[KEY] as the entities (instead of doc.ents)")
    p.add_argument("--skip-invalid", action="store_true", help="skip (and count) invalid sentences; drop the NER labels of invalid or mismatched NER sentences (their entities become missing) instead of failing")
    p.add_argument("--overwrite", action="store_true", help="replace a corpus distnlp convert wrote in OUTPUT_DIR (a folder holding anything else is refused)")


def run(args: argparse.Namespace) -> int:
    if len(args.paths) < 2:
        print("distnlp convert: give at least one INPUT and the OUTPUT_DIR", file=sys.stderr)
        return 2
    *inputs, output = args.paths
    try:
        fmt = resolve_format(inputs, args.format)
        report = ConvertReport()
        options = ReadOptions(n_sents=args.n_sents, skip_invalid=args.skip_invalid, alignment_mode=args.alignment_mode, ner=args.ner,
                              spans_key=args.spans_key)
        docs = with_progress(read_docs(inputs, fmt, options, report), desc="convert", unit="doc")
        sources = [Path(p) for p in inputs] + ([args.ner] if args.ner is not None else [])
        meta = write_corpus(
            docs, output, shard_size=args.shard_size, row_group_size=args.row_group_size,
            sources=sources, fmt=fmt, overwrite=args.overwrite, report=report,
        )
    except DistnlpError as e:
        print(f"distnlp convert: {e}", file=sys.stderr)
        return 1
    print(summary(meta, output))
    return 0


def summary(meta: dict[str, Any], output: str) -> str:
    c = meta["counts"]
    line = (
        f"converted {c['docs']:,} docs, {c['sentences']:,} sentences, {c['words']:,} words, {c['entities']:,} entities "
        f"({meta['format']}, {len(meta['sources'])} source file(s)) -> {output} ({len(meta['shards'])} shard(s))"
    )
    notable = {k: v for k, v in meta.get("conversion_counts", {}).items() if v}
    if notable:
        line += "; " + ", ".join(f"{k}={v:,}" for k, v in notable.items())
    return line


def main(argv: list[str] | None = None) -> int:
    parser = MixedArgumentParser(prog="distnlp convert", description=HELP)
    _add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
