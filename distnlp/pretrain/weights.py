"""`initialize.init_tok2vec`: load `distnlp pretrain`'s weights into a pipeline.

The `pretrain` section (component, layer) says where they go, as spaCy's `[pretraining]` block
does at training time: the shared encoder (`component: encoder`, the default; a listening
component means the shared encoder too) or a component's own embedding, optionally one of its
layers. The file is safetensors bytes (named `.bin` as spaCy's); nothing is unpickled. Every
shape must match: a different architecture raises a ConfigError that names the parameters whose
shapes differ, the missing and the unexpected ones, and how to fix it.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load
from torch import nn

from ..errors import ConfigError

KEY = "initialize.init_tok2vec"


def _pretrain_target(config: Mapping[str, Any]) -> tuple[str, str]:
    p = config.get("pretrain") if isinstance(config.get("pretrain"), Mapping) else {}
    return str((p or {}).get("component") or "encoder"), str((p or {}).get("layer") or "")


def target_module(nlp: Any, config: Mapping[str, Any]) -> tuple[nn.Module, str]:
    """The pipeline module the weights load into, and its description."""
    from .loop import ENCODER_NAMES, select_layer

    component, layer = _pretrain_target(config)
    if component in ENCODER_NAMES or component in getattr(nlp, "listening", []):
        module, where = nlp.encoder, "the shared encoder"
        if module is None:
            raise ConfigError(KEY, "the pipeline has no shared encoder (no component listens to it)", "set pretrain.component to the component whose own embedding was pretrained")
    else:
        if component not in nlp.components:
            raise ConfigError("pretrain.component", f"no component {component!r} in this pipeline", f"choose 'encoder' or one of {nlp.pipe_names}")
        module, where = getattr(nlp.components[component], "embed", None), f"components.{component}.embed"
        if module is None:
            raise ConfigError("pretrain.component", f"{component} has no own embedding", "pretrain.component=encoder")
    return select_layer(module, layer, where), where + (f" layer {layer!r}" if layer else "")


def read_tok2vec_file(path: str | Path) -> dict[str, torch.Tensor]:
    p = Path(path)
    if not p.exists():
        raise ConfigError(KEY, f"file not found: {p}", "pass a file written by distnlp pretrain (DIR/model-last.bin or DIR/modelN.bin)")
    if p.is_dir():
        raise ConfigError(KEY, f"{p} is a directory", "pass one of the .bin files inside it, e.g. model-last.bin")
    try:
        return load(p.read_bytes())
    except (SafetensorError, ValueError, OSError) as exc:
        raise ConfigError(KEY, f"{p} is not a distnlp pretrain weights file ({exc})", "pass a .bin written by distnlp pretrain (safetensors; spaCy's msgpack .bin files do not load)") from None


def compare_state(expected: Mapping[str, torch.Tensor], got: Mapping[str, torch.Tensor]) -> tuple[list[str], list[str], list[str]]:
    """(shape mismatches as 'name: file [..] vs model [..]', missing keys, unexpected keys)."""
    shapes = [
        f"{k}: file {list(got[k].shape)} vs model {list(v.shape)}"
        for k, v in expected.items() if k in got and tuple(got[k].shape) != tuple(v.shape)
    ]
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    return shapes, missing, unexpected


def load_pretrained_tok2vec(nlp: Any, path: str | Path, config: Mapping[str, Any]) -> list[str]:
    """Copy the pretrained weights into the pipeline; returns the names loaded."""
    state = read_tok2vec_file(path)
    module, where = target_module(nlp, config)
    expected = module.state_dict()
    shapes, missing, unexpected = compare_state(expected, state)
    if shapes or missing or unexpected:
        parts = []
        if shapes:
            parts.append(f"shapes differ for {len(shapes)} parameter(s): " + "; ".join(shapes[:8]) + (" ..." if len(shapes) > 8 else ""))
        if missing:
            parts.append(f"missing from the file: {missing[:8]}" + (" ..." if len(missing) > 8 else ""))
        if unexpected:
            parts.append(f"not in the model: {unexpected[:8]}" + (" ..." if len(unexpected) > 8 else ""))
        raise ConfigError(
            KEY,
            f"{path} does not fit {where}: " + " | ".join(parts),
            "pretrain and train with the same encoder architecture (width, depth, rows, attrs, include_static_vectors) "
            "and the same pretrain.component/pretrain.layer, or re-run distnlp pretrain with this config",
        )
    with torch.no_grad():
        for name, tensor in expected.items():
            tensor.copy_(state[name].to(device=tensor.device, dtype=tensor.dtype))
    return list(expected)
