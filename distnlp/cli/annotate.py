"""`distnlp annotate MODEL INPUT... OUTPUT [key=value ...]`: annotate raw text or corpora at scale."""
from __future__ import annotations

import argparse
from ..annotate.run import annotate
from ..annotate.settings import parse_overrides
from ..errors import DistnlpError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "annotate",
        help="annotate text or corpora with a saved pipeline, on one process or Ray actors",
        description="Annotate every row of the INPUTs (plain text lines, JSONL {\"text\", \"id\"} lines, or distnlp corpora; "
        "local paths or pyarrow filesystem URIs) with the pipeline saved at MODEL. OUTPUT becomes a distnlp corpus: "
        "Parquet shards + meta.json (counts in = out + rejected), rejects.jsonl (rows that could not be annotated, with "
        "the reason). Rerunning the same command resumes a killed job. Overrides (key=value after the paths): "
        "distributed=single|ray, distributed.num_workers=N, distributed.use_gpu=auto|true|false, distributed.address=, "
        "rows_per_shard=N, batch.max_words=N, batch.max_docs=N, batch.window=N.",
    )
    p.add_argument("model", help="a saved pipeline directory (model-best/ or model-last/)")
    p.add_argument("paths", nargs="+", metavar="ARG", help="INPUT... OUTPUT, then key=value overrides")
    p.add_argument("--format", choices=("parquet", "jsonl", "spacy", "conllu"), default="parquet",
                   help="also write each shard as shard-NNNNN.jsonl (jsonl), a spaCy DocBin shard-NNNNN.spacy (spacy; the spacy extra) "
                   "or CoNLL-U shard-NNNNN.conllu (conllu: a # text line and one tree per sentence)")
    p.add_argument("--input-format", choices=("auto", "text", "jsonl", "corpus"), default="auto",
                   help="auto: a directory with meta.json is a corpus, another directory stands for its files; "
                   "*.jsonl/*.ndjson/*.json is JSONL, any other file is plain text")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (single process; Ray actors use a GPU each when there are GPUs)")
    p.add_argument("--trust-code", action="store_true", help="allow a model saved with user code (code.py) to run it on load")
    p.add_argument("--overwrite", action="store_true", help="replace another annotate job's output in OUTPUT")
    p.set_defaults(run=run_annotate)


def run_annotate(args: argparse.Namespace) -> int:
    overrides = [a for a in args.paths if "=" in a and "://" not in a.partition("=")[0]]
    paths = [a for a in args.paths if a not in overrides]
    if len(paths) < 2:
        raise DistnlpError("annotate: give at least one INPUT and the OUTPUT directory (distnlp annotate MODEL INPUT... OUTPUT)")
    settings = parse_overrides(overrides)
    run_splits = None
    if settings.distributed == "ray":
        from ..ray_backend.annotate import annotate_on_ray  # lazy: imports Ray (seconds), only for distributed=ray

        run_splits = annotate_on_ray
    annotate(args.model, paths[:-1], paths[-1], settings, input_format=args.input_format, copy_format=None if args.format == "parquet" else args.format,
             device=args.device, trust_code=args.trust_code, overwrite=args.overwrite, run_splits=run_splits)
    return 0
