"""The config, train and evaluate subcommands."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..data.convert.conllu import read_conllu
from ..data.convert.conllu_out import write_conllu_docs, write_conllu_predictions
from ..data.stream import read_docs
from ..errors import DistnlpError
from ..pipeline.device import pick_device
from ..pipeline.pipeline import Pipeline
from ..progress import with_progress
from ..scoring.conll18 import Conll18
from ..scoring.conll18_raw import evaluate_ud, raw_texts, read_ud, ud_from_docs
from ..scoring.unscored import unscored_note
from ..training.logger import format_scores_table
from ..training.loop import TRAIN
from .compose import compose_config, to_yaml
from .config_dirs import add_config_dir_argument, config_dir_overrides
from .launch import load_config, run_entry
from .sweep import run_sweep


def add_parser(sub: argparse._SubParsersAction) -> None:
    add_config_parser(sub)
    add_train_parser(sub)
    add_evaluate_parser(sub)


def add_config_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="show or validate the composed config")
    csub = p.add_subparsers(dest="config_command", required=True)
    show = csub.add_parser("show", help="print the fully resolved config")
    show.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. training.max_steps=100 encoder=tok2vec")
    show.set_defaults(run=run_config_show)
    val = csub.add_parser("validate", help="check the config before any work starts")
    val.add_argument("overrides", nargs="*")
    add_config_dir_argument(show)
    add_config_dir_argument(val)
    val.set_defaults(run=run_config_validate)


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a pipeline (Hydra overrides follow)")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. training.max_steps=100 corpus.train=DIR")
    p.add_argument("-m", "--multirun", action="store_true", help="sweep: a run per combination of key=a,b values, in DIR/0, DIR/1, ... (cli/sweep.py)")
    add_config_dir_argument(p)
    p.set_defaults(run=run_train)


def add_evaluate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score a saved pipeline on a converted corpus or a CoNLL-U file",
        description="Score a saved pipeline: spaCy's scores, and the CoNLL 2018 metrics (UPOS, XPOS, UFeats, AllTags, "
        "Lemmas, UAS, LAS, CLAS, MLAS, BLEX; gold tokenization, F1) for the columns the pipeline predicts (the others "
        "are left out, never scored against gold). CORPUS is a converted corpus directory or a .conllu file; with a "
        ".conllu file, --conllu PRED writes the predictions into a copy of it (comments, multiword-token lines and "
        "empty nodes kept) for the official conll18_ud_eval.py.",
    )
    p.add_argument("model", help="a saved pipeline directory (model-best/ or model-last/)")
    p.add_argument("corpus", help="a converted corpus directory, or a .conllu file (read as `distnlp convert` reads it)")
    p.add_argument("--conllu", metavar="PRED", help="write the predictions as CoNLL-U here (CORPUS must be the .conllu file)")
    p.add_argument("--raw", action="store_true",
                   help="run the pipeline on the raw text of each document (its own tokens and sentences) and score it as the "
                   "official CoNLL 2018 scorer does (Tokens, Sentences, Words and every metric, aligned on characters); "
                   "CORPUS must be a .conllu file")
    p.add_argument("--gold-sents", action="store_true",
                   help="gold tokens and gold sentences (a senter is not run); default: gold tokens, the pipeline's own sentences")
    p.add_argument("--output", "-o", help="write the scores as JSON here")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--trust-code", action="store_true", help="allow a model saved with user code (code.py) to run it on load")
    p.set_defaults(run=run_evaluate)


def run_config_show(args: argparse.Namespace) -> int:
    print(to_yaml(compose_config(config_dir_overrides(args.config_dir) + args.overrides)), end="")
    return 0


def run_config_validate(args: argparse.Namespace) -> int:
    load_config(config_dir_overrides(args.config_dir) + args.overrides)
    print("config is valid")
    return 0


def run_train(args: argparse.Namespace) -> int:
    overrides = config_dir_overrides(args.config_dir) + args.overrides
    if args.multirun:
        return run_sweep(overrides)
    config = load_config(overrides)
    return 0 if run_entry(config, TRAIN) else 1


def run_evaluate(args: argparse.Namespace) -> int:
    model = Path(args.model)
    if not model.exists():
        raise DistnlpError(f"{model}: model directory not found (pass a model-best/ or model-last/ directory)")
    conllu_source = Path(args.corpus).is_file()
    if (args.conllu or args.raw) and not conllu_source:
        flag = "--raw" if args.raw else "--conllu"
        raise DistnlpError(f"{flag}: {args.corpus} is a converted corpus, which no longer has the CoNLL-U comments and multiword lines; pass the .conllu file as CORPUS")
    if args.raw and args.gold_sents:
        raise DistnlpError("--raw and --gold-sents exclude each other: raw text has no gold sentences")
    nlp = Pipeline.from_disk(model, device=pick_device(args.device), trust_code=args.trust_code)
    scores = _evaluate_raw(nlp, args) if args.raw else _evaluate_gold_tokens(nlp, args, conllu_source)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(scores, indent=2))
        print(f"scores written to {args.output}", file=sys.stderr)
    return 0


def _evaluate_gold_tokens(nlp: Any, args: argparse.Namespace, conllu_source: bool) -> dict[str, Any]:
    import contextlib
    import time

    docs = _evaluation_docs(args.corpus, conllu_source)
    disabled = nlp.select_pipes(disable=nlp.sentence_components()) if args.gold_sents else contextlib.nullcontext()
    start = time.perf_counter()
    with disabled:
        inputs = (nlp.eval_input(d, gold_sents=args.gold_sents) for d in docs)
        preds = list(with_progress(nlp.pipe(inputs, batch_size=args.batch_size), desc="evaluate", unit="doc", total=len(docs)))
    elapsed = time.perf_counter() - start
    scorer = nlp.scorer()
    scorer.update(docs, preds)
    scores = scorer.scores()
    if args.gold_sents:  # the sentences were given, not predicted: nothing to score
        scores = {k: v for k, v in scores.items() if not k.startswith("sents_")}
    scores.update(Conll18().update(docs, preds).scores())
    words = sum(len(d) for d in docs)
    scores["speed"] = words / max(elapsed, 1e-9)
    print(format_scores_table(scores))
    note = unscored_note(scores, docs, preds, args.corpus)
    if note:
        print(note, file=sys.stderr)
    sentences = "gold sentences" if args.gold_sents or not nlp.sentence_components() else "the pipeline's sentences"
    print(f"UPOS ... BLEX: CoNLL 2018 metrics (gold tokenization, {sentences}); a metric whose columns the model does not predict is left out", file=sys.stderr)
    if args.conllu:
        write_conllu_predictions(args.corpus, preds, args.conllu)
        print(f"predictions written to {args.conllu}", file=sys.stderr)
    return scores


def _evaluate_raw(nlp: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The pipeline on each document's raw text, scored as conll18_ud_eval.py scores a system file."""
    import time

    gold = read_ud(args.corpus)
    texts = raw_texts(args.corpus)
    start = time.perf_counter()
    preds = []
    for (doc_id, _text), doc in zip(texts, with_progress(nlp.pipe((t for _, t in texts), batch_size=args.batch_size), desc="evaluate", unit="doc", total=len(texts))):
        doc.doc_id = doc_id
        preds.append(doc)
    elapsed = time.perf_counter() - start
    results = evaluate_ud(gold, ud_from_docs(preds))
    print(_format_ud_table(results))
    words = sum(len(d) for d in preds)
    print(f"raw text: {len(texts):,} documents, {words:,} predicted tokens in {elapsed:.1f} s ({words / max(elapsed, 1e-9):,.0f} tokens/s, "
          "tokenization included); F1 as the official CoNLL 2018 scorer computes it", file=sys.stderr)
    if args.conllu:
        write_conllu_docs(preds, args.conllu)
        print(f"predictions written to {args.conllu}", file=sys.stderr)
    scores: dict[str, Any] = {name: score.f1 for name, score in results.items()}
    scores["conll18"] = {name: {"precision": r.precision, "recall": r.recall, "f1": r.f1, "aligned_accuracy": r.aligned_accuracy}
                         for name, r in results.items()}
    scores["speed"] = words / max(elapsed, 1e-9)
    return scores


def _format_ud_table(results: dict[str, Any]) -> str:
    """The official scorer's table: precision, recall, F1 and accuracy over aligned words."""
    lines = ["Metric     | Precision |    Recall |  F1 Score | AligndAcc", "-----------+-----------+-----------+-----------+-----------"]
    for name, r in results.items():
        acc = "" if r.aligned_accuracy is None else f"{100 * r.aligned_accuracy:10.2f}"
        lines.append(f"{name:<11}|{100 * r.precision:10.2f} |{100 * r.recall:10.2f} |{100 * r.f1:10.2f} |{acc}")
    return "\n".join(lines)


def _evaluation_docs(corpus: str, conllu_source: bool) -> list[Any]:
    if conllu_source:
        return list(read_conllu(corpus))

    return list(read_docs(corpus))
