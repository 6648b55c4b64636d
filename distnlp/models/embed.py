"""MultiHashEmbed: spaCy's embedding of lexical attributes (+ optional static vectors).

`featurize(docs)` is the CPU-side part (strings -> keys / vector rows), kept apart from
`forward(features)` so a data loader can run it ahead of the accelerator.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from ..data.doc import Doc
from ..errors import ConfigError
from .features import Featurizer
from .layers import HashEmbed, Maxout

__all__ = ["MultiHashEmbed", "StaticTable"]


@runtime_checkable
class StaticTable(Protocol):
    """What the embedding needs of a vectors table (distnlp.vectors.VectorsLike has the same shape)."""

    @property
    def dim(self) -> int: ...

    def get(self, word: str) -> np.ndarray: ...

    def has(self, word: str) -> bool: ...

    def get_batch(self, words: Sequence[str]) -> np.ndarray: ...


class MultiHashEmbed(nn.Module):
    def __init__(
        self,
        width: int,
        attrs: Sequence[str],
        rows: Sequence[int],
        include_static_vectors: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(rows) != len(attrs):
            raise ConfigError(
                "rows",
                f"{len(rows)} row counts for {len(attrs)} attrs {list(attrs)}",
                "give one row count per attribute",
            )
        self.width = int(width)
        self.attrs = tuple(str(a).upper() for a in attrs)
        self.featurizer = Featurizer(self.attrs)
        # spaCy's seeds: 8 + column index
        self.embeds = nn.ModuleList(HashEmbed(self.width, int(r), seed=8 + i) for i, r in enumerate(rows))
        self.include_static_vectors = bool(include_static_vectors)
        n_in = len(self.attrs) + (1 if self.include_static_vectors else 0)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None
        self.mix = Maxout(self.width, self.width * n_in, nP=3, normalize=True)
        self.static_proj: nn.Linear | None = None
        self._table: Any = None
        # the attached table's matrix, when it can be indexed on the device (never saved)
        self.register_buffer("_vectors", None, persistent=False)

    # --- static vectors ----------------------------------------------------------------------
    def attach_vectors(self, table: Any) -> None:
        """Use `table` (VectorsLike) for the static vectors; creates the learned projection.

        Call before building the optimizer and before `load_state_dict` (as spaCy's initialize).
        A table with `rows(words)` and a `data` matrix is indexed on the device (one copy, not
        saved in the state dict); any other table is asked for `get_batch(words)` per batch.
        """
        if not self.include_static_vectors:
            raise ConfigError(
                "include_static_vectors", "this embedding does not use static vectors",
                "set include_static_vectors: true to attach a vectors table",
            )
        dim = int(table.dim)
        if self.static_proj is None or self.static_proj.in_features != dim:
            device = self.mix.linear.weight.device
            self.static_proj = nn.Linear(dim, self.width, bias=False).to(device)
        self._table = table
        data = getattr(table, "data", None)
        if callable(getattr(table, "rows", None)) and isinstance(data, np.ndarray):
            buf = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
            self._vectors = buf.to(self.mix.linear.weight.device)
        else:
            self._vectors = None

    def _load_from_state_dict(self, state_dict: Mapping[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # A saved model carries the projection; create it so loading works before attach_vectors.
        w = state_dict.get(prefix + "static_proj.weight")
        if w is not None and (self.static_proj is None or tuple(self.static_proj.weight.shape) != tuple(w.shape)):
            self.static_proj = nn.Linear(w.shape[1], w.shape[0], bias=False).to(self.mix.linear.weight.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # --- features ----------------------------------------------------------------------------
    def featurize(self, docs: Sequence[Doc]) -> dict[str, Tensor]:
        words = list(chain.from_iterable(doc.words for doc in docs))
        feats = {"keys": torch.from_numpy(self.featurizer.words(words))}
        if self.include_static_vectors:
            table = self._table
            if table is None:
                raise ConfigError(
                    "include_static_vectors",
                    "the embedding uses static vectors but no vectors table is attached",
                    "set initialize.vectors to a vectors directory (distnlp init vectors) or call attach_vectors(table)",
                )
            if self._vectors is not None:
                feats["vector_rows"] = torch.from_numpy(np.asarray(table.rows(words), dtype=np.int64))
            else:
                vecs = np.asarray(table.get_batch(words), dtype=np.float32).reshape(len(words), int(table.dim))
                feats["vectors"] = torch.from_numpy(vecs)
        return feats

    def forward(self, features: Mapping[str, Tensor]) -> Tensor:
        keys = features["keys"]
        parts = [embed(keys[:, i]) for i, embed in enumerate(self.embeds)]
        if self.include_static_vectors:
            parts.append(self._static(features))
        x = torch.cat(parts, dim=-1)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.mix(x)

    def _static(self, features: Mapping[str, Tensor]) -> Tensor:
        if self.static_proj is None:
            raise ConfigError("include_static_vectors", "no vectors table attached", "call attach_vectors(table) first")
        if "vector_rows" in features:
            rows = features["vector_rows"]
            known = rows >= 0
            vecs = self._vectors[rows.clamp(min=0)] * known.unsqueeze(-1).to(self._vectors.dtype)  # OOV -> 0
        else:
            vecs = features["vectors"]
        return self.static_proj(vecs.to(self.static_proj.weight.dtype))
