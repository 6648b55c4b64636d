"""A Hugging Face transformer as the shared embedding layer (spacy-transformers' Transformer, torch-native).

    model:
      _use_: distnlp.Transformer.v1
      name: sentence-transformers/all-MiniLM-L6-v2   # a hub name or a local directory
      get_spans: {_use_: distnlp.strided_spans.v1, window: 128, stride: 96}
      pooling: {_use_: distnlp.reduce_mean.v1}
      max_batch_items: 4096

Same contract as Tok2Vec: `width`, `featurize(docs)` (CPU: the fast tokenizer runs here, never in
forward), `forward(features) -> Tensor[n_words_total, width]` (float32, docs concatenated).

How a batch goes through:
1. featurize: each doc's text is tokenized once (no special tokens, no truncation); wordpieces are
   aligned to the corpus words by character offsets (alignment.py). The span getter picks word
   spans (span_getters.py); a span with more wordpieces than fit in one row (the model's maximum
   length minus special tokens, and at most `max_batch_items`) is split on word boundaries, a
   single longer word is cut; both are counted in `self.truncation` and logged once per batch.
   Rows are sorted by length and packed into sub-batches of at most `max_batch_items` padded
   wordpieces (rows x padded length), padded to a multiple of 8 where that stays in budget.
2. forward: one transformer forward per sub-batch; the padded outputs are flattened, the
   (word occurrence, wordpiece) rows gathered, pooled per occurrence (pooling.py), and the
   occurrences of a word in overlapping spans averaged. A word with no wordpiece (a whitespace
   word, characters the tokenizer's normalizer drops, or a word no span covers) gets ZEROS.
3. annotate(docs, features): after an eval-mode forward, the annotation setter stores what it
   wants on `doc.trf_data` (annotation_setters.py).

Saving: `save_extra(model_dir)` writes `model_dir/transformer/` (safetensors weights, config,
tokenizer files); a loaded pipeline's config points `name` there, so loading needs no network,
and the pipeline's own state dict (which holds the same weights under `encoder.model.*`) is loaded
on top.
"""
from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..data.doc import Doc
from ..errors import ConfigError
from ..registry import architectures
from .alignment import DocWordpieces
from .annotation_setters import SpanRow, TransformerBatchOutput, is_null_setter, null_annotation_setter
from .local_models import resolve_model_name
from .pooling import reduce_mean
from .span_getters import configure_strided_spans

__all__ = ["TransformerEncoder", "build_transformer"]

log = logging.getLogger(__name__)

# model types whose position ids start after the padding index (max usable = max_pos - pad - 1)
_OFFSET_POSITIONS = {"roberta", "xlm-roberta", "camembert", "longformer", "xlm-roberta-xl", "data2vec-text", "luke", "mpnet", "ibert"}
_UNBOUNDED = 1_000_000


class TransformerEncoder(nn.Module):
    """Word vectors from a Hugging Face encoder: [n_words_total, width], docs concatenated in order."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        get_spans: Any = None,
        pooling: Any = None,
        max_batch_items: int = 4096,
        mixed_precision: bool = True,
        compile: bool = False,
        set_extra_annotations: Any = None,
    ) -> None:
        super().__init__()
        if getattr(tokenizer, "backend_tokenizer", None) is None:
            raise ConfigError("encoder.model.name", f"{type(tokenizer).__name__} is not a fast tokenizer (no offset mapping)",
                              "use a model with a tokenizer.json (a fast, Rust-backed tokenizer)")
        self.model = model
        self.tokenizer = tokenizer
        self.get_spans = get_spans if get_spans is not None else configure_strided_spans(128, 96)
        self._getter_takes_counts = _takes_two_args(self.get_spans)
        self.pooling = pooling if pooling is not None else reduce_mean
        self.set_extra_annotations = set_extra_annotations if set_extra_annotations is not None else null_annotation_setter
        self.max_batch_items = int(max_batch_items)
        self.mixed_precision = bool(mixed_precision)
        self.width = int(model.config.hidden_size)
        # a private copy of the Rust tokenizer: a tokenizer.json may carry truncation/padding settings
        from tokenizers import Tokenizer

        self._backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        self._backend.no_truncation()
        self._backend.no_padding()
        self.prefix_ids, self.suffix_ids = _special_template(self._backend)
        self.prefix_strings = [self._backend.id_to_token(i) or "" for i in self.prefix_ids]
        self.suffix_strings = [self._backend.id_to_token(i) or "" for i in self.suffix_ids]
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else 0
        self.max_length = _max_length(model, tokenizer)
        n_special = len(self.prefix_ids) + len(self.suffix_ids)
        self.max_content = min(self.max_length, self.max_batch_items) - n_special
        if self.max_content < 1:
            raise ConfigError("encoder.model.max_batch_items", f"{self.max_batch_items} leaves no room for wordpieces next to {n_special} special tokens",
                              f"use at least {n_special + 1}, e.g. 4096")
        # The pooler head of BERT-like models is unused for token vectors: keep it out of training.
        pooler = getattr(model, "pooler", None)
        if isinstance(pooler, nn.Module):
            pooler.requires_grad_(False)
        self.truncation: dict[str, int] = {"spans_split": 0, "words_truncated": 0, "wordpieces_dropped": 0, "words_uncovered": 0}
        self.stats: dict[str, Any] = {"forwards": 0, "last_shapes": []}
        self._compiled: Any = None
        if compile:
            object.__setattr__(self, "_compiled", torch.compile(self.model))
        self._last_output: tuple[Any, Tensor] | None = None

    # --- features (CPU) ----------------------------------------------------------------------
    def featurize(self, docs: Sequence[Doc]) -> dict[str, Any]:
        docs = list(docs)
        encodings = self._backend.encode_batch([doc.text for doc in docs], add_special_tokens=False) if docs else []
        pieces = [DocWordpieces.from_encoding(doc.words, doc.spaces, enc) for doc, enc in zip(docs, encodings)]
        counts = [p.word_counts() for p in pieces]
        spans = self.get_spans(docs, counts) if self._getter_takes_counts else self.get_spans(docs)
        if len(spans) != len(docs):
            raise ConfigError("encoder.model.get_spans", f"the span getter returned spans for {len(spans)} docs, not {len(docs)}",
                              "return one list of (start, end) word spans per doc")
        rows: list[SpanRow] = []
        batch_trunc = {k: 0 for k in self.truncation}
        word_offsets = np.zeros(len(docs) + 1, dtype=np.int64)
        np.cumsum([len(d) for d in docs], out=word_offsets[1:])
        for d, (doc, doc_spans, wp) in enumerate(zip(docs, spans, pieces)):
            covered = np.zeros(len(doc), dtype=bool)
            for span in doc_spans:
                start, end = _span_bounds(span, len(doc))
                if end <= start:
                    continue
                parts = self._fit(wp, start, end, batch_trunc)
                for s, e, lo, hi in parts:
                    if hi <= lo:
                        continue
                    pw, pp = wp.pairs(s, e, lo, hi)
                    covered[pw] = True
                    rows.append(SpanRow(d, s, e, lo, hi, pw, pp))
            has_pieces = counts[d] > 0
            batch_trunc["words_uncovered"] += int((has_pieces & ~covered).sum())
        self._log_truncation(batch_trunc, len(docs))
        return self._pack(docs, rows, pieces, word_offsets)

    def _fit(self, wp: DocWordpieces, start: int, end: int, trunc: dict[str, int]) -> list[tuple[int, int, int, int]]:
        """Split words [start, end) into pieces of at most max_content wordpieces (word boundaries)."""
        limit = self.max_content
        out: list[tuple[int, int, int, int]] = []
        s = start
        n_pieces = len(wp)
        while s < end:
            lo, hi_end = wp.piece_range(s, end)
            if hi_end - lo <= limit:
                out.append((s, end, lo, hi_end))
                break
            e_max = end if lo + limit >= n_pieces else min(end, int(wp.first_word[lo + limit]))
            if e_max <= s:  # word s alone has more pieces than fit: keep its first `limit`
                _, hi_word = wp.piece_range(s, s + 1)
                trunc["words_truncated"] += 1
                trunc["wordpieces_dropped"] += hi_word - (lo + limit)
                out.append((s, s + 1, lo, lo + limit))
                s += 1
            else:
                out.append((s, e_max, lo, wp.piece_range(s, e_max)[1]))
                s = e_max
        if len(out) > 1:
            trunc["spans_split"] += 1
        return out

    def _pad_len(self, n: int) -> int:
        padded = int(math.ceil(n / 8) * 8)
        return max(n, min(padded, self.max_length, self.max_batch_items))

    def _pack(self, docs: list[Doc], rows: list[SpanRow], pieces: list[DocWordpieces], word_offsets: np.ndarray) -> dict[str, Any]:
        pre, suf = len(self.prefix_ids), len(self.suffix_ids)
        for r in rows:
            r.length = pre + (r.hi - r.lo) + suf
        order = sorted(range(len(rows)), key=lambda i: -rows[i].length)
        batches: list[dict[str, Tensor]] = []
        flat_base = 0
        i = 0
        prefix = np.asarray(self.prefix_ids, dtype=np.int64)
        suffix = np.asarray(self.suffix_ids, dtype=np.int64)
        while i < len(order):
            width = self._pad_len(rows[order[i]].length)
            n_rows = max(1, self.max_batch_items // width)
            chunk = order[i : i + n_rows]
            i += len(chunk)
            ids = np.full((len(chunk), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            for j, k in enumerate(chunk):
                r = rows[k]
                ids[j, : r.length] = np.concatenate([prefix, pieces[r.doc].ids[r.lo : r.hi], suffix])
                mask[j, : r.length] = 1
                r.flat_start = flat_base + j * width
            flat_base += len(chunk) * width
            batches.append({"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)})
        # (word occurrence, wordpiece) items, grouped by occurrence, pieces in order
        item_index: list[np.ndarray] = []
        item_occ: list[np.ndarray] = []
        occ_word: list[np.ndarray] = []
        n_occ = 0
        for r in rows:
            words, pcs = r.pair_words, r.pair_pieces
            if len(words) == 0:
                continue
            new = np.concatenate([[True], words[1:] != words[:-1]])
            occ_local = np.cumsum(new) - 1
            item_index.append(r.flat_start + pre + (pcs - r.lo))
            item_occ.append(n_occ + occ_local)
            occ_word.append(word_offsets[r.doc] + words[new])
            n_occ += int(new.sum())
        n_words = int(word_offsets[-1])
        ow = np.concatenate(occ_word) if occ_word else np.zeros(0, dtype=np.int64)
        per_word = np.bincount(ow, minlength=n_words).astype(np.float32)
        norm = np.where(per_word > 0, 1.0 / np.maximum(per_word, 1.0), 0.0).astype(np.float32)
        return {
            "batches": batches,
            "item_index": torch.from_numpy(np.concatenate(item_index) if item_index else np.zeros(0, dtype=np.int64)),
            "item_occ": torch.from_numpy(np.concatenate(item_occ) if item_occ else np.zeros(0, dtype=np.int64)),
            "occ_word": torch.from_numpy(ow),
            "word_norm": torch.from_numpy(norm),
            "meta": _Meta(docs, rows, pieces, n_occ, n_words),
        }

    def _log_truncation(self, batch: dict[str, int], n_docs: int) -> None:
        for k, v in batch.items():
            self.truncation[k] += v
        if batch["spans_split"] or batch["words_truncated"] or batch["words_uncovered"]:
            log.warning(
                "transformer: in a batch of %d docs, %d spans were longer than %d wordpieces and were split, "
                "%d words were cut (%d wordpieces dropped), %d words with wordpieces were in no span (zero vectors); "
                "totals so far: %s",
                n_docs, batch["spans_split"], self.max_content, batch["words_truncated"], batch["wordpieces_dropped"],
                batch["words_uncovered"], self.truncation,
            )

    # --- forward ------------------------------------------------------------------------------
    def _encode(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        model = self._compiled if self._compiled is not None else self.model
        use_amp = self.mixed_precision and input_ids.device.type == "cuda"
        with torch.autocast(device_type=input_ids.device.type, dtype=torch.bfloat16, enabled=use_amp):
            out = model(input_ids=input_ids, attention_mask=attention_mask)
        return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]

    def forward(self, features: Mapping[str, Any]) -> Tensor:
        meta: _Meta = features["meta"]
        device = features["item_index"].device
        outs: list[Tensor] = []
        shapes: list[tuple[int, int]] = []
        for b in features["batches"]:
            h = self._encode(b["input_ids"], b["attention_mask"])
            outs.append(h.reshape(-1, h.shape[-1]))
            shapes.append(tuple(b["input_ids"].shape))  # type: ignore[arg-type]
        self.stats["forwards"] += len(shapes)
        self.stats["last_shapes"] = shapes
        if outs:
            flat = torch.cat(outs) if len(outs) > 1 else outs[0]
        else:
            flat = torch.zeros(0, self.width, device=device)
        values = flat.index_select(0, features["item_index"]).float()
        occ = self.pooling(values, features["item_occ"], meta.n_occ)
        words = occ.new_zeros((meta.n_words, self.width)).index_add(0, features["occ_word"], occ)
        words = words * features["word_norm"].unsqueeze(-1)
        if not self.training and not is_null_setter(self.set_extra_annotations):
            self._last_output = (features, flat.detach())
        else:
            self._last_output = None
        return words

    def annotate(self, docs: Sequence[Doc], features: Mapping[str, Any]) -> None:
        """Run the annotation setter on the outputs of the latest eval-mode forward of `features`."""
        if is_null_setter(self.set_extra_annotations):
            return
        last = self._last_output
        if last is None or last[0] is not features:
            raise RuntimeError("TransformerEncoder.annotate(docs, features) must follow an eval-mode forward of the same features")
        self._last_output = None
        meta: _Meta = features["meta"]
        output = TransformerBatchOutput(
            docs=list(docs), rows=meta.rows, doc_pieces=meta.pieces, prefix_ids=list(self.prefix_ids),
            suffix_ids=list(self.suffix_ids), prefix_strings=list(self.prefix_strings),
            suffix_strings=list(self.suffix_strings), hidden=last[1],
        )
        self.set_extra_annotations(list(docs), output)

    def predict(self, docs: Sequence[Doc]) -> list[Tensor]:
        """Per-doc word vectors, no gradient (convenience for tests and inference)."""
        device = next(self.parameters()).device
        feats = _to(self.featurize(docs), device)
        with torch.no_grad():
            out = self.forward(feats)
        return list(torch.split(out, [len(d) for d in docs]))

    # --- saving -------------------------------------------------------------------------------
    def save_extra(self, model_dir: str | Path) -> None:
        """model_dir/transformer/: HF weights (safetensors), config and tokenizer files."""
        out = Path(model_dir) / "transformer"
        out.mkdir(parents=True, exist_ok=True)
        from transformers.utils import logging as hf_logging

        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            self.model.save_pretrained(out)  # transformers >= 5 always writes safetensors
            self.tokenizer.save_pretrained(out)
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        if not any(out.glob("*.safetensors")):
            raise RuntimeError(f"{out}: save_pretrained wrote no safetensors weights")


class _Meta:
    """CPU-side bookkeeping that travels with the features (not tensors; left alone by to_device)."""

    __slots__ = ("docs", "n_occ", "n_words", "pieces", "rows")

    def __init__(self, docs: list[Doc], rows: list[SpanRow], pieces: list[DocWordpieces], n_occ: int, n_words: int) -> None:
        self.docs, self.rows, self.pieces, self.n_occ, self.n_words = docs, rows, pieces, n_occ, n_words


def _to(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to(v, device) for v in obj]
    return obj


def _span_bounds(span: Any, n: int) -> tuple[int, int]:
    if hasattr(span, "start") and hasattr(span, "end"):
        start, end = int(span.start), int(span.end)
    else:
        start, end = (int(x) for x in span)
    if not 0 <= start <= end <= n:
        raise ConfigError("encoder.model.get_spans", f"span ({start}, {end}) is outside the doc's {n} words",
                          "return (start, end) word indices with 0 <= start <= end <= len(doc)")
    return start, end


def _takes_two_args(fn: Any) -> bool:
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    except (TypeError, ValueError):
        return True
    return len(params) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params)


def _special_template(backend: Any) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after a single sequence."""
    for probe in ("a", "hello", "0", "x y"):
        enc = backend.encode(probe, add_special_tokens=True)
        mask = list(enc.special_tokens_mask)
        if 0 in mask:
            first = mask.index(0)
            last = len(mask) - 1 - mask[::-1].index(0)
            return list(enc.ids[:first]), list(enc.ids[last + 1 :])
    return [], []


def _max_length(model: nn.Module, tokenizer: Any) -> int:
    """Longest input (special tokens included) the model accepts."""
    limits = []
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < _UNBOUNDED:
        limits.append(tok_max)
    cfg = model.config
    pos = getattr(cfg, "max_position_embeddings", None)
    if isinstance(pos, int) and pos > 0:
        if getattr(cfg, "model_type", "") in _OFFSET_POSITIONS:
            pos -= int(getattr(cfg, "pad_token_id", 1) or 1) + 1
        limits.append(pos)
    return min(limits) if limits else 512


@architectures("distnlp.Transformer.v1")
def build_transformer(
    name: str,
    get_spans: Any = None,
    pooling: Any = None,
    tokenizer_config: Mapping[str, Any] | None = None,
    transformer_config: Mapping[str, Any] | None = None,
    from_config: bool = False,
    max_batch_items: int = 4096,
    mixed_precision: bool = True,
    attn_implementation: str = "sdpa",
    compile: bool = False,
    set_extra_annotations: Any = None,
) -> TransformerEncoder:
    """name: a hub name or a local directory (same code path), or `distnlp:tiny-bert`.

    from_config=True builds a randomly initialised model from the config only (benchmarks, tests;
    a saved pipeline loads its weights from its state dict on top).
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    if not name or name == "???":
        raise ConfigError("encoder.name", "no transformer model given", "set encoder.name=HUB_NAME_OR_DIRECTORY")
    if int(max_batch_items) < 1:
        raise ConfigError("encoder.model.max_batch_items", f"must be >= 1, not {max_batch_items}")
    location = resolve_model_name(name)
    tcfg = dict(transformer_config or {})
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, use_fast=True, **dict(tokenizer_config or {}))
        if from_config:
            config = AutoConfig.from_pretrained(location, **tcfg)
            model = AutoModel.from_config(config, attn_implementation=attn_implementation)
        else:
            model = AutoModel.from_pretrained(location, attn_implementation=attn_implementation, **tcfg)
    except OSError as exc:
        raise ConfigError("encoder.model.name", f"cannot load {name!r} ({str(exc).splitlines()[0]})",
                          "give a local model directory, or a hub name with network access or in the HF cache") from None
    if getattr(tokenizer, "backend_tokenizer", None) is None:
        raise ConfigError("encoder.model.name", f"{name!r} has no fast tokenizer", "distnlp aligns words by offsets and needs a tokenizer.json")
    return TransformerEncoder(model, tokenizer, get_spans=get_spans, pooling=pooling, max_batch_items=int(max_batch_items),
                              mixed_precision=bool(mixed_precision), compile=bool(compile), set_extra_annotations=set_extra_annotations)
