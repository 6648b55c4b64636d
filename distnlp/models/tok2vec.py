"""Tok2Vec = embed >> encode, and the registered architectures that build it from a config.

    embed:  {_use_: distnlp.MultiHashEmbed.v1, width: 96, attrs: [NORM, PREFIX, SUFFIX, SHAPE],
             rows: [5000, 1000, 2500, 2500]}
    encode: {_use_: distnlp.MaxoutWindowEncoder.v1, width: 96, depth: 4, window_size: 1, maxout_pieces: 3}

Any embed module with `width`, `featurize(docs)` and `forward(features) -> [n_tokens, width]`
can replace MultiHashEmbed.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..data.doc import Doc
from ..errors import ConfigError
from ..registry import architectures
from .embed import MultiHashEmbed
from .encoder import MaxoutWindowEncoder

__all__ = ["Tok2Vec", "build_maxout_window_encoder", "build_multi_hash_embed", "build_tok2vec", "features_to"]


def features_to(features: Any, device: torch.device | str, non_blocking: bool = False) -> Any:
    """Move every tensor in a (nested) features structure to `device`."""
    if isinstance(features, Tensor):
        return features.to(device, non_blocking=non_blocking)
    if isinstance(features, Mapping):
        return {k: features_to(v, device, non_blocking) for k, v in features.items()}
    if isinstance(features, (list, tuple)):
        return type(features)(features_to(v, device, non_blocking) for v in features)
    return features


class Tok2Vec(nn.Module):
    """Token vectors for a batch of docs: [n_tokens_total, width], docs concatenated in order."""

    def __init__(self, embed: nn.Module, encode: nn.Module) -> None:
        super().__init__()
        for name, part in (("embed", embed), ("encode", encode)):
            if not (callable(getattr(part, "forward", None)) and hasattr(part, "width")):
                raise ConfigError(name, f"{type(part).__name__} is not a layer with `width` and `forward`",
                                  "use a registered architecture")
        if not callable(getattr(embed, "featurize", None)):
            raise ConfigError("embed", f"{type(embed).__name__} has no featurize(docs) method",
                              "an embed layer needs featurize(docs) and forward(features)")
        if int(embed.width) != int(encode.width):
            raise ConfigError("encode.width", f"{encode.width} differs from embed.width {embed.width}",
                              "give both the same width")
        self.embed = embed
        self.encode = encode
        self.width = int(encode.width)

    def featurize(self, docs: Sequence[Doc]) -> dict[str, Any]:
        """CPU-side preprocessing; the result can be moved with `features_to` and fed to forward."""
        lengths = torch.tensor([len(d) for d in docs], dtype=torch.int64)
        return {"embed": self.embed.featurize(docs), "lengths": lengths}

    def forward(self, features: Mapping[str, Any]) -> Tensor:
        x = self.embed(features["embed"])
        return self.encode(x, features["lengths"])

    def predict(self, docs: Sequence[Doc]) -> list[Tensor]:
        """Per-doc outputs, no gradient (convenience for inference and tests)."""
        feats = features_to(self.featurize(docs), next(self.parameters()).device)
        with torch.no_grad():
            out = self.forward(feats)
        return list(torch.split(out, feats["lengths"].tolist()))


@architectures("distnlp.Tok2Vec.v1")
def build_tok2vec(embed: nn.Module, encode: nn.Module) -> Tok2Vec:
    return Tok2Vec(embed, encode)


@architectures("distnlp.MultiHashEmbed.v1")
def build_multi_hash_embed(
    width: int,
    attrs: Sequence[str],
    rows: Sequence[int],
    include_static_vectors: bool = False,
    dropout: float = 0.0,
) -> MultiHashEmbed:
    if int(width) < 1:
        raise ConfigError("width", f"must be >= 1, not {width}")
    if isinstance(attrs, str) or isinstance(rows, (str, int)):
        raise ConfigError("attrs" if isinstance(attrs, str) else "rows", "must be a list", "e.g. attrs: [NORM, PREFIX]")
    if any(int(r) < 1 for r in rows):
        raise ConfigError("rows", f"every row count must be >= 1, got {list(rows)}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ConfigError("dropout", f"must be in [0, 1), not {dropout}")
    return MultiHashEmbed(int(width), list(attrs), [int(r) for r in rows], bool(include_static_vectors), float(dropout))


@architectures("distnlp.MaxoutWindowEncoder.v1")
def build_maxout_window_encoder(width: int, depth: int, window_size: int, maxout_pieces: int) -> MaxoutWindowEncoder:
    for name, value, low in (("width", width, 1), ("depth", depth, 1), ("window_size", window_size, 0),
                             ("maxout_pieces", maxout_pieces, 1)):
        if int(value) < low:
            raise ConfigError(name, f"must be >= {low}, not {value}")
    return MaxoutWindowEncoder(int(width), int(depth), int(window_size), int(maxout_pieces))
