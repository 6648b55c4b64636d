"""`initialize.init_tok2vec`: load `distnlp pretrain`'s weights into a pipeline.

The `pretrain` section (component, layer) says where they go, as spaCy's `[pretraining]` block
does at training time: the shared encoder (`component: encoder`, the default; a listening
component means the shared encoder too) or a component's own embedding, optionally one of its
layers. The file is safetensors bytes (named `.bin` as spaCy's); nothing is unpickled. Every
shape must match: a different architecture raises a ConfigError that names the parameters whose
shapes differ, the missing and the unexpected ones, and how to fix it.

Integrity: a `.bin` is passed on its own (`init_tok2vec=DIR/model-last.bin`), so it carries its own
checksum: its safetensors metadata holds `weights_sha256` and `weights_bytes`, the SHA-256 and size
of the weights it holds (every tensor's name, dtype, shape and bytes, in name order). Loading
recomputes them from the tensors read and refuses a file whose weights differ, or that holds NaN or
inf, with one line naming the file (and the tensor). A file written before holds neither key and
loads unchecked.
"""
from __future__ import annotations

import hashlib
import json
import logging
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load
from torch import nn

from ..errors import ConfigError
from .integrity import all_finite

log = logging.getLogger(__name__)

ENCODER_NAMES = ("encoder", "tok2vec")  # "tok2vec" is spaCy's default component name


def select_layer(module: nn.Module, layer: str, path: str) -> nn.Module:
    """`layer` = a sub-module path ("" = the whole module), e.g. "embed" of a Tok2Vec."""
    if not layer:
        return module
    try:
        return module.get_submodule(layer)
    except AttributeError:
        names = [n for n, _ in module.named_modules() if n and n.count(".") < 2]
        raise ConfigError("pretrain.layer", f"{path} has no layer {layer!r}", f"use '' (the whole module) or one of {names[:12]}") from None


KEY = "initialize.init_tok2vec"
SHA_KEY, BYTES_KEY = "weights_sha256", "weights_bytes"  # safetensors metadata of a pretrain .bin
DAMAGED_FIX = "the file was changed or damaged after distnlp pretrain wrote it: pass another of its .bin files, or run distnlp pretrain again"


def weights_metadata(tensors: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """`weights_sha256` and `weights_bytes` of `tensors` (safetensors metadata values are strings)."""
    digest, size = hashlib.sha256(), 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode("utf-8"))
        raw = t.reshape(-1).view(torch.uint8).numpy()
        digest.update(memoryview(raw))
        size += raw.nbytes
    return {SHA_KEY: digest.hexdigest(), BYTES_KEY: str(size)}


def _file_metadata(data: bytes) -> dict[str, Any]:
    """The safetensors header's `__metadata__` (the bytes already loaded, so the header is valid)."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) else {}


def verify_tok2vec_weights(p: Path, data: bytes, state: Mapping[str, torch.Tensor]) -> None:
    """The weights read are the ones written (when the file records them) and all finite."""
    try:
        meta = _file_metadata(data)
    except (ValueError, struct.error) as exc:  # safetensors read it, Python's JSON parser did not
        raise ConfigError(KEY, f"{p}: unreadable header ({' '.join(str(exc).split())})", DAMAGED_FIX) from None
    if SHA_KEY in meta or BYTES_KEY in meta:
        got = weights_metadata(state)
        if meta.get(BYTES_KEY) != got[BYTES_KEY]:
            raise ConfigError(KEY, f"{p}: the weights are {got[BYTES_KEY]} bytes, the file says {meta.get(BYTES_KEY)} (truncated, or changed after saving)", DAMAGED_FIX)
        if meta.get(SHA_KEY) != got[SHA_KEY]:
            raise ConfigError(KEY, f"{p}: SHA-256 of the weights differs from the one saved in the file (the file was changed or damaged after saving)", DAMAGED_FIX)
    else:
        log.debug("%s: written before pretrain files carried checksums; not verified", p)
    for name, tensor in state.items():
        if not all_finite(tensor):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ConfigError(KEY, f"{p}: tensor {name!r} holds {bad:,} non-finite value(s) (NaN or inf)",
                              "pretraining diverged before this file was written, or the file was damaged: pass an earlier modelN.bin, or pretrain again")


def _pretrain_target(config: Mapping[str, Any]) -> tuple[str, str]:
    p = config.get("pretrain") if isinstance(config.get("pretrain"), Mapping) else {}
    return str((p or {}).get("component") or "encoder"), str((p or {}).get("layer") or "")


def target_module(nlp: Any, config: Mapping[str, Any]) -> tuple[nn.Module, str]:
    """The pipeline module the weights load into, and its description."""
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
        data = p.read_bytes()
        state = load(data)
    except (SafetensorError, ValueError, OSError) as exc:
        raise ConfigError(KEY, f"{p} is not a distnlp pretrain weights file ({' '.join(str(exc).split())}; truncated or damaged?)",
                          "pass a .bin written by distnlp pretrain (safetensors; spaCy's msgpack .bin files do not load)") from None
    verify_tok2vec_weights(p, data, state)
    return state


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
