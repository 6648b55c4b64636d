"""Transformer training throughput: distnlp (shared encoder + tagger/morphologizer/ner listening)
vs a plain Hugging Face token-classification loop (encoder + linear), in one run.

    python tests/benchmarks/bench_trf_gpu.py --corpus DIR [--steps 30] [--compile]     # on a GPU
    python tests/benchmarks/bench_trf_gpu.py --device cpu --tiny --steps 3            # smoke test

The encoder is a random-init BERT-base (or, with --tiny, a 2-layer hidden-32 BERT) built from a
config dict in this script: no downloads. bf16 autocast on CUDA for both loops. Word pieces come
from the locally installed MiniLM tokenizer (BERT uncased vocabulary) when present, else from the
tiny tokenizer shipped with distnlp. Runs:
- distnlp: its own length-aware batching (batch_by_words, then spans sorted into sub-batches of
  at most max_batch_items padded pieces), all listeners at grad_factor 1;
- hf_same_batches (a): the plain loop on exactly distnlp's sub-batches (same rows, same padding);
- hf_own_batches (b): the plain loop on the same rows shuffled into random batches (as many as
  steps, equal row counts) padded to their longest, one forward per step;
- distnlp_frozen: distnlp with every grad_factor 0 (no autograd through the transformer).
MFU = model FLOPs / time / 989e12 (H100 bf16 dense), model FLOPs per real wordpiece =
6 * N_nonembedding + 12 * layers * width * padded_length. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from distnlp.cli.compose import compose_config  # noqa: E402
from distnlp.data.stream import read_docs  # noqa: E402
from distnlp.models.local_models import LOCAL_PACKAGES, TINY_DIR, package_model_dir  # noqa: E402
from distnlp.training.loop import build_pipeline  # noqa: E402
from distnlp.training.optim import build_optimizer  # noqa: E402
from distnlp.training.pipeline_objective import train_step  # noqa: E402

PEAK_FLOPS = 989e12
BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, max_position_embeddings=512)
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=512)


def model_dir(tmp: Path, tiny: bool) -> Path:
    from transformers import AutoTokenizer, BertConfig

    tok_dir = package_model_dir(*LOCAL_PACKAGES["sentence-transformers/all-MiniLM-L6-v2"]) or (TINY_DIR / "bert")
    tok = AutoTokenizer.from_pretrained(str(tok_dir), use_fast=True)
    tok.save_pretrained(tmp)
    BertConfig(vocab_size=max(len(tok), 1200), **(TINY if tiny else BASE)).save_pretrained(tmp)
    return tmp


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def n_nonembedding(model: torch.nn.Module) -> int:
    skip = {id(p) for name in ("embeddings", "pooler") if getattr(model, name, None) is not None
            for p in getattr(model, name).parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def flops(shapes: list[tuple[int, int, int]], n_nonemb: int, layers: int, width: int) -> float:
    """shapes: (rows, padded_len, real_tokens) per forward."""
    return sum(real * (6 * n_nonemb + 12 * layers * width * padded) for _, padded, real in shapes)


def batches_of_docs(corpus: str, words_per_batch: int, n: int, seed: int = 0) -> list[list[Any]]:
    docs = list(read_docs(corpus))
    rng = random.Random(seed)
    out: list[list[Any]] = []
    while len(out) < n:
        rng.shuffle(docs)
        cur: list[Any] = []
        count = 0
        for doc in docs:
            cur.append(doc)
            count += len(doc)
            if count >= words_per_batch:
                out.append(cur)
                cur, count = [], 0
                if len(out) == n:
                    break
    return out


def distnlp_run(args: argparse.Namespace, name: str, batches: list[list[Any]], device: torch.device, frozen: bool) -> tuple[dict[str, Any], list]:
    overrides = [
        "encoder=transformer", f"encoder.name={name}", "encoder.model.from_config=true",
        f"encoder.model.max_batch_items={args.max_batch_items}", f"encoder.model.compile={str(args.compile).lower()}",
        "nlp.pipeline=[tagger,morphologizer,ner]", f"corpus.train={args.corpus}", f"corpus.dev={args.corpus}",
        "training.optimizer.learn_rate=0.0001",
    ]
    if frozen:
        overrides += [f"components.{c}.grad_factor=0.0" for c in ("tagger", "morphologizer", "ner")]
    cfg = compose_config(overrides)
    torch.manual_seed(0)
    nlp = build_pipeline(cfg).to(device)
    nlp.train()
    optimizer, _ = build_optimizer(nlp, cfg["training"]["optimizer"])
    enc = nlp.encoder
    shapes: list[tuple[int, int, int]] = []
    feats_log: list = []
    words = 0
    t0 = 0.0
    for i, docs in enumerate(batches[: args.warmup + args.steps]):
        if i == args.warmup:
            sync(device)
            t0 = time.perf_counter()
            shapes, words = [], 0
        batch = nlp.featurize(docs)
        if not frozen:
            feats_log.append([(b["input_ids"], b["attention_mask"]) for b in batch.shared["batches"]])
        batch = batch.to(device)
        train_step(nlp, [batch], step=i, optimizer=optimizer, grad_clip=1.0)
        shapes += [(int(b["input_ids"].shape[0]), int(b["input_ids"].shape[1]), int(b["attention_mask"].sum())) for b in batch.shared["batches"]]
        words += batch.num_words
    sync(device)
    elapsed = time.perf_counter() - t0
    model = enc.model
    result = summarize(elapsed, words, shapes, n_nonembedding(model), model.config.num_hidden_layers, model.config.hidden_size)
    result["truncation"] = dict(enc.truncation)
    return result, feats_log


def summarize(elapsed: float, words: int, shapes: list[tuple[int, int, int]], n_nonemb: int, layers: int, width: int) -> dict[str, Any]:
    real = sum(s[2] for s in shapes)
    padded = sum(s[0] * s[1] for s in shapes)
    f = flops(shapes, n_nonemb, layers, width)
    return {
        "seconds": round(elapsed, 4),
        "words_per_s": round(words / elapsed, 1) if words else None,
        "wordpieces_per_s": round(real / elapsed, 1),
        "padded_wordpieces_per_s": round(padded / elapsed, 1),
        "padding_fraction": round(1 - real / max(padded, 1), 4),
        "forwards": len(shapes),
        "mfu": round(f / elapsed / PEAK_FLOPS, 5),
    }


def hf_run(args: argparse.Namespace, name: str, steps: list[list[tuple[torch.Tensor, torch.Tensor]]], device: torch.device,
           words_per_step: list[int] | None) -> dict[str, Any]:
    """A plain token-classification loop: AutoModel + Linear, bf16 autocast, AdamW; one step per batch."""
    from transformers import AutoConfig, AutoModel

    torch.manual_seed(0)
    encoder = AutoModel.from_config(AutoConfig.from_pretrained(name), attn_implementation="sdpa", add_pooling_layer=False).to(device)
    head = torch.nn.Linear(encoder.config.hidden_size, 50).to(device)
    params = list(encoder.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4, fused=device.type == "cuda")
    run = torch.compile(encoder) if args.compile else encoder
    amp = device.type == "cuda"
    shapes: list[tuple[int, int, int]] = []
    t0 = 0.0
    words = 0
    for i, sub in enumerate(steps[: args.warmup + args.steps]):
        if i == args.warmup:
            sync(device)
            t0 = time.perf_counter()
            shapes, words = [], 0
        opt.zero_grad(set_to_none=True)
        for ids, mask in sub:
            ids, mask = ids.to(device, non_blocking=True), mask.to(device, non_blocking=True)
            labels = torch.randint(0, 50, ids.shape, device=device).masked_fill(mask == 0, -100)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
                h = run(input_ids=ids, attention_mask=mask).last_hidden_state
                logits = head(h)
            loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, 50), labels.reshape(-1), ignore_index=-100)
            loss.backward()
            shapes.append((int(ids.shape[0]), int(ids.shape[1]), int(mask.sum())))
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if words_per_step is not None:
            words += words_per_step[i]
    sync(device)
    if len(steps) <= args.warmup:
        raise SystemExit(f"only {len(steps)} batches for {args.warmup} warm-up steps")
    elapsed = time.perf_counter() - t0
    return summarize(elapsed, words, shapes, n_nonembedding(encoder), encoder.config.num_hidden_layers, encoder.config.hidden_size)


def random_batches(steps: list[list[tuple[torch.Tensor, torch.Tensor]]], pad_id: int = 0) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """The same rows, shuffled into as many random batches (one per step), padded to their longest."""
    rows = []
    for sub in steps:
        for ids, mask in sub:
            for r in range(ids.shape[0]):
                n = int(mask[r].sum())
                rows.append(ids[r, :n])
    random.Random(0).shuffle(rows)
    rows_per_batch = -(-len(rows) // len(steps))
    out = []
    for i in range(0, len(rows), rows_per_batch):
        chunk = rows[i : i + rows_per_batch]
        width = max(len(r) for r in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.int64)
        mask = torch.zeros((len(chunk), width), dtype=torch.int64)
        for j, r in enumerate(chunk):
            ids[j, : len(r)] = r
            mask[j, : len(r)] = 1
        out.append([(ids, mask)])
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(ROOT / "distnlp" / "demo_data" / "train"), help="a converted corpus directory (EWT train)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="2-layer hidden-32 encoder (smoke test)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 5, 1 with --tiny)")
    parser.add_argument("--batch-words", type=int, default=None, help="words per step (default 2000, 200 with --tiny)")
    parser.add_argument("--max-batch-items", type=int, default=4096)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.tiny else 5)
    args.batch_words = args.batch_words or (200 if args.tiny else 2000)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    n = args.warmup + args.steps
    with tempfile.TemporaryDirectory() as tmp:
        name = str(model_dir(Path(tmp), args.tiny))
        batches = batches_of_docs(args.corpus, args.batch_words, n)
        words_per_step = [sum(len(d) for d in b) for b in batches]
        distnlp, same = distnlp_run(args, name, batches, device, frozen=False)
        hf_same = hf_run(args, name, same, device, words_per_step)
        own = random_batches(same)
        hf_own = hf_run(args, name, own, device, None)
        if hf_own["wordpieces_per_s"] and distnlp["wordpieces_per_s"]:
            # words/s of the plain loop at its own batching, at distnlp's words-per-wordpiece ratio
            hf_own["words_per_s_equivalent"] = round(hf_own["wordpieces_per_s"] * distnlp["words_per_s"] / distnlp["wordpieces_per_s"], 1)
        frozen, _ = distnlp_run(args, name, batches, device, frozen=True)
    result = {
        "benchmark": "bench_trf_gpu",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "encoder": "tiny" if args.tiny else "bert-base (random init)",
        "precision": "bf16 autocast" if device.type == "cuda" else "fp32",
        "steps": args.steps, "warmup": args.warmup, "batch_words": args.batch_words, "max_batch_items": args.max_batch_items,
        "compile": args.compile, "corpus": args.corpus,
        "distnlp": distnlp,
        "hf_same_batches": hf_same,
        "hf_own_batches": hf_own,
        "distnlp_frozen": frozen,
        "frozen_speedup": round(frozen["words_per_s"] / distnlp["words_per_s"], 3) if distnlp["words_per_s"] else None,
        "distnlp_vs_hf_same_batches": round(distnlp["wordpieces_per_s"] / hf_same["wordpieces_per_s"], 3),
    }
    if device.type == "cuda":
        result["peak_memory_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
