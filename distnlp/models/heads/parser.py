"""Graph-based dependency parser head: biaffine arc and label scorers (Dozat & Manning 2017).

Per token, four small MLPs read the (shared) token vectors: arc-dependent, arc-head,
label-dependent, label-head. A learned ROOT vector goes through the head MLPs as position 0. Arc
scores of one sentence are [n, n + 1] (head 0 = ROOT): a biaffine term, a head bias, and a
signed distance term (the CNN's token vectors carry no position, so without it two identical
words would be indistinguishable heads). Labels are scored bilinearly on (dependent, head):
the gold head in training, the decoded head at inference.

With `lstm_width` > 0 a BiLSTM first reads each sentence (off by default, see `initialize`).

Sentences are cut from the flat [n_tokens, width] batch by a sentence-start mask and padded to
[n_sents, max_len] with one scatter (no per-token Python). Decoding is exact MST per sentence
(models/mst_batch.py, compiled; models/mst.py is its numpy reference) on the log-softmax of the arc
scores.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...registry import architectures
from .common import IGNORE, full_precision, zero_loss

__all__ = ["BiaffineParserHead", "ROOT_LABELS", "biaffine_parser_head", "bounded_starts", "distance_buckets", "segment"]

ROOT_LABELS = ("root", "ROOT")  # UD's and spaCy's name of the root relation
EXACT_DISTANCE = 8  # distances up to this get a bucket each; longer ones share log2 buckets
LOG_BUCKETS = 4  # 9-16, 17-32, 33-64, 65+
SIDE_BUCKETS = EXACT_DISTANCE + LOG_BUCKETS
N_BUCKETS = 1 + 2 * SIDE_BUCKETS  # ROOT, heads to the left, heads to the right


def segment(starts: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Sentence id and position of every token, first token and length of every sentence,
    from a flat bool mask whose first entry is True."""
    sid = torch.cumsum(starts.long(), 0) - 1
    first = torch.nonzero(starts, as_tuple=False).flatten()
    pos = torch.arange(starts.numel(), device=starts.device) - first[sid]
    lens = torch.bincount(sid, minlength=first.numel())
    return sid, pos, first, lens


def host_segment(starts: np.ndarray) -> dict[str, Any]:
    """`segment` computed on the host when the targets are built, with the longest sentence and
    the lengths as Python numbers: the training loss then reads nothing back from the device
    (the number of sentences and the longest one are tensor shapes)."""
    sid = np.cumsum(starts.astype(np.int64)) - 1
    first = np.flatnonzero(starts)
    pos = np.arange(starts.size) - first[sid] if starts.size else np.zeros(0, dtype=np.int64)
    lens = np.bincount(sid, minlength=first.size) if starts.size else np.zeros(0, dtype=np.int64)
    return {"sid": torch.from_numpy(sid), "pos": torch.from_numpy(pos.astype(np.int64)), "first": torch.from_numpy(first.astype(np.int64)),
            "lens": torch.from_numpy(lens.astype(np.int64)), "lengths": [int(n) for n in lens], "longest": int(lens.max()) if lens.size else 0}


DECODE_BUDGET = 1 << 22  # arc scores scored at once at inference: sentences x T x (T + 1)
LABEL_CHUNK = 4096  # tokens label-scored at once at inference


def length_groups(lens: np.ndarray, budget: int, slack: float = 1.5) -> list[list[int]]:
    """Sentence ids sorted by length, cut into groups of similar length: a group's padded arc
    tensor (count x longest x (longest + 1)) stays within `budget` (a longer sentence is a group
    alone), and within `slack` times the area of its shortest sentence (or 4 words longer).
    The budget bounds memory; the slack bounds the padding: a batch's one 100-word sentence
    padded 200 short ones to 100 x 101 each, and the arc scores spent 50x their real work."""
    order = sorted(range(len(lens)), key=lambda i: int(lens[i]))  # stable: ties in input order
    groups: list[list[int]] = []
    group: list[int] = []
    shortest = 0
    for i in order:
        n = int(lens[i])
        area = n * (n + 1)
        if group and ((len(group) + 1) * area > budget or (area > slack * shortest * (shortest + 1) and n > shortest + 4)):
            groups.append(group)
            group = []
        if not group:
            shortest = n
        group.append(i)
    if group:
        groups.append(group)
    return groups


def distance_buckets(T: int, device: torch.device | None = None) -> Tensor:
    """[T, T + 1] bucket of head position u (0 = ROOT, else word u - 1) for dependent t."""
    t = torch.arange(T, device=device)[:, None]
    u = torch.arange(T + 1, device=device)[None, :]
    d = (u - 1) - t
    a = d.abs().clamp(min=1)
    log_b = EXACT_DISTANCE + torch.ceil(torch.log2(a.float() / EXACT_DISTANCE)).long().clamp(max=LOG_BUCKETS)
    b = torch.where(a <= EXACT_DISTANCE, a, log_b)
    out = torch.where(d < 0, b, SIDE_BUCKETS + b)
    return torch.where(u == 0, torch.zeros_like(out), out)


_BUCKETS: dict[torch.device, Tensor] = {}


def _cached_buckets(T: int, device: torch.device) -> Tensor:
    """distance_buckets(T) as a slice of one cached matrix (a bucket depends only on the
    offset between head and dependent), grown when a longer sentence comes."""
    cached = _BUCKETS.get(device)
    if cached is None or cached.shape[0] < T:
        with torch.inference_mode(False):  # made during inference, it must still serve training's autograd
            cached = _BUCKETS[device] = distance_buckets(max(T, 64), device)
    return cached[:T, : T + 1]


class _MLP(nn.Sequential):
    # The LayerNorm bounds what the bilinear scorers multiply: without it, a shared encoder
    # trained at a high learning rate (5e-3) made the parser's loss spike and shook every head.
    def __init__(self, n_in: int, width: int, dropout: float) -> None:
        super().__init__(nn.Linear(n_in, width), nn.LeakyReLU(0.1), nn.LayerNorm(width, elementwise_affine=False), nn.Dropout(dropout))


class BiaffineParserHead(nn.Module):
    """`initialize(n_in, dep_labels)`, then forward(X, lengths) -> per-token projections;
    `loss(scores, targets)` and `decode(scores, starts)` cut sentences from them."""

    def __init__(
        self, arc_width: int = 128, label_width: int = 64, dropout: float = 0.0, use_distance: bool = True, lstm_width: int = 0
    ) -> None:
        super().__init__()
        for key, value in (("arc_width", arc_width), ("label_width", label_width)):
            if value <= 0:
                raise ValueError(f"{key} must be positive, not {value}")
        if lstm_width < 0:
            raise ValueError(f"lstm_width must be >= 0 (0 = no LSTM), not {lstm_width}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {dropout}")
        self.arc_width, self.label_width, self.use_distance = arc_width, label_width, use_distance
        self.lstm_width = lstm_width
        self.lstm: nn.LSTM | None = None
        self.dropout = nn.Dropout(dropout)
        self._dropout_rate = dropout
        self.labels: list[str] = []
        self.n_in = 0

    @property
    def is_initialized(self) -> bool:
        return self.n_in > 0

    def initialize(self, n_in: int, labels: Sequence[str]) -> "BiaffineParserHead":
        if n_in <= 0:
            raise ValueError(f"n_in must be positive, not {n_in}")
        if not labels or len(set(labels)) != len(labels):
            raise ValueError(f"BiaffineParserHead needs distinct dependency labels, got {list(labels)}")
        self.n_in, self.labels = n_in, list(labels)
        a, lw, p, n_labels = self.arc_width, self.label_width, self._dropout_rate, len(self.labels)
        width = n_in
        if self.lstm_width:
            # Optional BiLSTM over each sentence (Dozat & Manning's encoder): whole-sentence context
            # for a CNN whose tokens see only a few neighbours (+5 UAS on the demo corpus). Off
            # by default: 2 ranks match 1 process only to ~1e-9 absolute in a few Adam moments
            # with it, looser than tests/distributed/test_equivalence.py's tolerance.
            self.lstm = nn.LSTM(n_in, self.lstm_width, batch_first=True, bidirectional=True)
            width = 2 * self.lstm_width
        self.root = nn.Parameter(torch.randn(width))  # ROOT's token vector
        self.arc_dep, self.arc_head = _MLP(width, a, p), _MLP(width, a, p)
        self.lab_dep, self.lab_head = _MLP(width, lw, p), _MLP(width, lw, p)
        # Scorers start at zero (uniform predictions), as spaCy's output layers do.
        self.arc_U = nn.Parameter(torch.zeros(a, a))
        self.arc_head_bias = nn.Parameter(torch.zeros(a))
        self.dist = nn.Parameter(torch.zeros(N_BUCKETS, a)) if self.use_distance else None
        self.dist_bias = nn.Parameter(torch.zeros(N_BUCKETS)) if self.use_distance else None
        self.lab_bilinear = nn.Parameter(torch.zeros(n_labels, lw, lw))
        self.lab_linear = nn.Linear(2 * lw, n_labels)
        nn.init.zeros_(self.lab_linear.weight)
        nn.init.zeros_(self.lab_linear.bias)
        root_ids = [i for i, lab in enumerate(self.labels) if lab in ROOT_LABELS]
        self.root_label = root_ids[0] if root_ids else None
        return self

    # --- training --------------------------------------------------------------------------
    def forward(self, X: Tensor, lengths: Sequence[int] | None = None) -> dict[str, Tensor]:
        """Per-token projections; the head-side ones have ROOT as row 0 (token i is row i + 1).
        With the BiLSTM, only the (dropped-out) token vectors: it reads each sentence, and the
        sentences are known only to `loss` (gold starts) and `decode` (the senter's, at inference,
        which runs after every head's forward)."""
        if not self.is_initialized:
            raise RuntimeError("BiaffineParserHead is not initialized: call head.initialize(n_in, labels) first")
        if X.dim() != 2 or X.shape[1] != self.n_in:
            raise ValueError(f"expected X of shape [n_tokens, {self.n_in}], got {tuple(X.shape)}")
        X = self.dropout(X)
        if self.lstm is not None:
            return {"X": X}
        return self._project(X)

    def _project(self, X: Tensor) -> dict[str, Tensor]:
        with_root = torch.cat([self.root.to(X.dtype)[None], X], dim=0)
        return {
            "arc_dep": self.arc_dep(X),
            "arc_head": self.arc_head(with_root),
            "lab_dep": self.lab_dep(X),
            "lab_head": self.lab_head(with_root),
        }

    def projections(self, scores: dict[str, Tensor], starts: Tensor, lengths: list[int] | None = None) -> dict[str, Tensor]:
        """forward's output as projections: with the BiLSTM, it reads each sentence of `starts`
        first (`lengths`: the sentences' lengths where the host knows them)."""
        if "X" not in scores:
            return scores
        X = scores["X"]
        if lengths is None:
            lengths = segment(starts.to(X.device))[3].tolist()
        return self._project(self._contextualize(X, lengths))

    def _contextualize(self, X: Tensor, lengths: list[int]) -> Tensor:
        """The BiLSTM over each sentence (packed, so none sees another). Per sentence, not per
        doc: a doc of hundreds of words made hundreds of sequential LSTM steps per batch,
        sentences of a batch run side by side in a few dozen. The packed rows are gathered
        straight from the flat tokens and scattered back (no padded copy either way)."""
        assert self.lstm is not None
        if not any(lengths):
            return X.new_zeros(0, 2 * self.lstm_width)
        rows, batch_sizes = _packed_rows(np.asarray(lengths, dtype=np.int64))
        rows_t = torch.from_numpy(rows).to(X.device)
        # rows already in sorted order: no sorted_indices (only the final states, unused, would use them)
        out, _ = self.lstm(nn.utils.rnn.PackedSequence(full_precision(X)[rows_t], torch.from_numpy(batch_sizes)))
        flat = out.data.new_empty(X.shape[0], out.data.shape[1])
        flat[rows_t] = out.data
        return flat

    def arc_scores(self, scores: dict[str, Tensor], starts: Tensor, segmented: dict[str, Any] | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Arc logits [n_sents, T, T + 1] (impossible heads at -inf), and `segment(starts)`'s sid,
        pos, first (`segmented`: `host_segment`'s, already on the device)."""
        dep_flat, head_flat = full_precision(scores["arc_dep"]), full_precision(scores["arc_head"])
        if segmented is None:
            sid, pos, first, lens = segment(starts.to(dep_flat.device))
            T = int(lens.max()) if lens.numel() else 0
        else:
            sid, pos, first, lens, T = (segmented[k] for k in ("sid", "pos", "first", "lens", "longest"))
        S, a = first.numel(), dep_flat.shape[1]
        dep = dep_flat.new_zeros(S, T, a).index_put((sid, pos), dep_flat)
        head = head_flat.new_zeros(S, T + 1, a)
        head[:, 0] = head_flat[0]
        head = head.index_put((sid, pos + 1), head_flat[1:])
        arc = torch.bmm(dep @ self.arc_U, head.transpose(1, 2)) + (head @ self.arc_head_bias)[:, None, :]
        if self.dist is not None and self.dist_bias is not None:
            by_bucket = dep @ self.dist.t() + self.dist_bias  # [S, T, N_BUCKETS]
            arc = arc + torch.gather(by_bucket, 2, _cached_buckets(T, dep.device)[None].expand(S, T, T + 1))
        u = torch.arange(T + 1, device=dep.device)
        valid = (u[None, None, :] <= lens[:, None, None]) & (u[None, None, :] != torch.arange(1, T + 1, device=dep.device)[None, :, None])
        return arc.masked_fill(~valid, float("-inf")), sid, pos, first

    def label_scores(self, scores: dict[str, Tensor], deps: Tensor, heads: Tensor) -> Tensor:
        """[len(deps), n_labels] for dependents `deps` (token rows) and heads (0 = ROOT, i + 1 = token i)."""
        d = full_precision(scores["lab_dep"])[deps]
        h = full_precision(scores["lab_head"])[heads]
        # d^T W_l h for every label: torch's fused bilinear is 3x faster on CPU than a matmul to
        # [M, labels, label_width] followed by a product and a sum with h
        return F.bilinear(d, h, self.lab_bilinear) + self.lab_linear(torch.cat([d, h], dim=1))

    def loss(self, scores: dict[str, Tensor], targets: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """(sum over tokens with a gold head of head CE + label CE given the gold head, their
        count). Every shape comes from the host (`targets["segment"]`, `targets["n_heads"]`) and
        tokens without a target are IGNORE rows, not gathered out: nothing is read back."""
        seg = targets["segment"]
        scores = self.projections(scores, targets["starts"], seg["lengths"])
        head_pos = targets["head_pos"].to(scores["arc_dep"].device)
        has_head = head_pos != IGNORE
        if targets["n_heads"] == 0:  # a batch without trees (another corpus's docs): no arc scores
            return zero_loss(scores["arc_dep"]) + zero_loss(scores["arc_head"]), has_head.sum()
        arc, sid, pos, _ = self.arc_scores(scores, targets["starts"], seg)
        arc_loss = F.cross_entropy(arc[sid, pos], head_pos, ignore_index=IGNORE, reduction="sum")
        labels = torch.where(has_head, targets["labels"].to(head_pos.device), IGNORE)
        rows = torch.arange(head_pos.numel(), device=head_pos.device)
        logits = self.label_scores(scores, rows, targets["head_row"].to(head_pos.device))
        return arc_loss + F.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="sum"), has_head.sum()

    # --- inference -------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, scores: dict[str, Tensor], starts: Tensor, no_head: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per token: the flat index of its head (itself for the sentence root) and a label id.
        One tree per sentence (exact MST, models/mst_batch.py); only the root gets the root label.
        `no_head` marks tokens that may head nothing (whitespace): in a sentence with another
        token they attach to a word and nothing attaches to them.

        Sentences are scored in groups of similar length under an element budget: padding every
        sentence of a batch to its longest one made the arc tensors [S, T, T + 1] 50x larger
        than the sentences (one 150-word sentence among 2,500 short ones: GBs at inference)."""
        from ..mst_batch import decode_batch  # lazy: numba compiles (or loads from its cache) on first use

        scores = self.projections(scores, starts)
        n_tokens = scores["arc_dep"].shape[0]
        if n_tokens == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        device = scores["arc_dep"].device
        sid, _pos, first, lens = segment(starts.to(device))
        lens_np, first_np, sid_np = lens.cpu().numpy(), first.cpu().numpy(), sid.cpu().numpy()
        head_pos = np.empty(n_tokens, dtype=np.int64)
        for group in length_groups(lens_np, DECODE_BUDGET):
            tokens = np.concatenate([np.arange(first_np[s], first_np[s] + lens_np[s]) for s in group])
            rows = torch.as_tensor(tokens, device=device)
            sub = {"arc_dep": scores["arc_dep"][rows],
                   "arc_head": torch.cat([scores["arc_head"][:1], scores["arc_head"][rows + 1]])}
            sub_lens = lens_np[group]
            sub_starts = torch.as_tensor(np.concatenate([np.arange(n) == 0 for n in sub_lens]), device=device)
            arc, sub_sid, sub_pos, _ = self.arc_scores(sub, sub_starts)
            logp = torch.log_softmax(arc, dim=-1)
            if no_head is not None and no_head[tokens].any():
                logp = _mask_no_head(logp, torch.as_tensor(no_head[tokens], device=device), sub_sid, sub_pos, torch.as_tensor(sub_lens, device=device))
            heads = decode_batch(logp.cpu().numpy(), sub_lens)  # all sentences of the group in one compiled call
            head_pos[tokens] = heads[sub_sid.cpu().numpy(), sub_pos.cpu().numpy()]
        is_root = head_pos == 0
        heads = np.where(is_root, np.arange(n_tokens), first_np[sid_np] + head_pos - 1)
        head_rows = torch.as_tensor(np.where(is_root, 0, heads + 1), device=device)
        labels = np.empty(n_tokens, dtype=np.int64)
        for lo in range(0, n_tokens, LABEL_CHUNK):  # [chunk, labels, label_width] at a time
            hi = min(lo + LABEL_CHUNK, n_tokens)
            logits = self.label_scores(scores, torch.arange(lo, hi, device=device), head_rows[lo:hi])
            if self.root_label is not None:
                root_mask = torch.as_tensor(is_root[lo:hi], device=device)
                logits[:, self.root_label] = logits[:, self.root_label].masked_fill(~root_mask, float("-inf"))
                logits[root_mask] = float("-inf")
                logits[root_mask, self.root_label] = 0.0
            labels[lo:hi] = logits.argmax(dim=1).cpu().numpy()
        return heads, labels

    # --- targets ---------------------------------------------------------------------------
    def targets(self, docs: Sequence[Any], label_index: dict[str, int]) -> dict[str, Tensor]:
        """Gold sentence starts, head positions in the sentence (0 = ROOT), head rows (0 = ROOT,
        i + 1 = token i of the batch) and label ids; IGNORE where the head is missing or outside
        the token's sentence."""
        starts, head_pos, head_row, labels = [], [], [], []
        offset = 0
        for doc in docs:
            n = len(doc)
            st = sentence_starts(doc.sent_starts, n)
            sid = np.cumsum(st) - 1
            first = np.flatnonzero(st)
            hp = np.full(n, IGNORE, dtype=np.int64)
            hr = np.zeros(n, dtype=np.int64)
            lab = np.full(n, IGNORE, dtype=np.int64)
            if doc.heads is not None and n:
                raw = np.array([-1 if h is None else int(h) for h in doc.heads], dtype=np.int64)
                idx = np.arange(n)
                known = (raw >= 0) & (raw < n)
                same = known & (sid[np.clip(raw, 0, n - 1)] == sid)  # a head in another sentence: no target
                root = same & (raw == idx)
                hp = np.where(same, np.where(root, 0, raw - first[sid] + 1), IGNORE)
                hr = np.where(root | ~same, 0, raw + offset + 1)
                if doc.deps is not None:
                    lab = np.array([label_index.get(d, IGNORE) if d else IGNORE for d in doc.deps], dtype=np.int64)
                    lab = np.where(same, lab, IGNORE)
            starts.append(st)
            head_pos.append(hp)
            head_row.append(hr)
            labels.append(lab)
            offset += n
        cat = lambda parts, dtype: torch.from_numpy(np.concatenate(parts).astype(dtype)) if parts else torch.zeros(0, dtype=torch.long)  # noqa: E731
        starts_flat = np.concatenate(starts).astype(np.bool_) if starts else np.zeros(0, dtype=np.bool_)
        head_pos_flat = cat(head_pos, np.int64)
        return {
            "starts": torch.from_numpy(starts_flat),
            "head_pos": head_pos_flat,
            "head_row": cat(head_row, np.int64),
            "labels": cat(labels, np.int64),
            "segment": host_segment(starts_flat),
            "n_heads": int((head_pos_flat != IGNORE).sum()),  # on the host: decides whether arc scores are needed
        }


def _packed_rows(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For sentences of these lengths laid out one after another: the flat token row of every
    row of a PackedSequence (time-major over the sentences sorted longest first) and its batch
    sizes. Empty sentences take no rows."""
    order = np.argsort(-lengths, kind="stable")
    lens = lengths[order]
    first = (np.cumsum(lengths) - lengths)[order]
    T = int(lens[0])
    t = np.arange(T)
    live = t[:, None] < lens[None, :]  # [T, S]: sentence s (sorted) has a word at step t
    rows = (first[None, :] + t[:, None])[live]
    return rows, live.sum(axis=1).astype(np.int64)


def _mask_no_head(logp: Tensor, no_head: Tensor, sid: Tensor, pos: Tensor, lens: Tensor) -> Tensor:
    """Forbid heads at `no_head` tokens and ROOT for them, in every sentence that has another
    token (a sentence of whitespace alone keeps its scores, so it still has a tree)."""
    S, T = logp.shape[0], logp.shape[1]
    flag = torch.zeros(S, T + 1, dtype=torch.bool, device=logp.device)
    flag[sid, pos + 1] = no_head
    n_flagged = flag.sum(dim=1)
    active = (n_flagged < lens)[:, None, None]
    as_head = flag[:, None, :].expand(S, T, T + 1)  # head column u is a flagged token
    as_dep_root = torch.zeros_like(as_head)
    as_dep_root[:, :, 0] = flag[:, 1:]  # a flagged dependent may not take ROOT
    return logp.masked_fill(active & (as_head | as_dep_root), float("-inf"))


def bounded_starts(starts: np.ndarray, max_length: int) -> np.ndarray:
    """Sentence starts with every sentence longer than `max_length` cut into equal segments of at
    most that length, so no sentence's arc scores (quadratic) or tree search grows without bound."""
    if max_length < 1:
        raise ValueError(f"max_length must be at least 1, not {max_length}")
    out = starts.copy()
    first = np.flatnonzero(starts)
    ends = np.append(first[1:], starts.size)
    for b, e in zip(first, ends):
        n = int(e - b)
        if n > max_length:
            k = -(-n // max_length)  # segments
            out[b + (np.arange(1, k) * n) // k] = True
    return out


def sentence_starts(sent_starts: Sequence[bool | None] | None, n: int) -> np.ndarray:
    """Bool starts of a doc: the given ones (unknown = no boundary), the first token always."""
    st = np.zeros(n, dtype=bool) if sent_starts is None else np.array([bool(s) for s in sent_starts], dtype=bool)
    if n:
        st[0] = True
    return st


@architectures("distnlp.BiaffineParserHead.v1")
def biaffine_parser_head(
    arc_width: int = 128, label_width: int = 64, dropout: float = 0.0, use_distance: bool = True, lstm_width: int = 0
) -> BiaffineParserHead:
    return BiaffineParserHead(arc_width=arc_width, label_width=label_width, dropout=dropout, use_distance=use_distance, lstm_width=lstm_width)
