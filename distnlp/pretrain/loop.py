"""What is pretrained: the layer (the shared encoder, or a component's own embedding, or one of
their sub-layers) plus the objective head, built from the config; their weights as spaCy's
`.bin` files. The loop itself is the engine's (training/engine.py); the objective that plugs
into it is pretrain/objective.py.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safetensors.torch import save
from torch import nn

from .. import registry
from ..errors import ConfigError
from ..pipeline.pretrained_weights import ENCODER_NAMES, select_layer, weights_metadata
from ..training.optim import ParameterAverages
from ..vectors.table import Vectors

log = logging.getLogger(__name__)


# --- configuration -------------------------------------------------------------------------


def pretrain_section(config: Mapping[str, Any]) -> dict[str, Any]:
    cfg = config.get("pretrain")
    if not isinstance(cfg, Mapping) or not cfg:
        raise ConfigError("pretrain", "no pretrain section in the config", "add the group: +pretrain=characters (or pretrain=vectors)")
    return dict(cfg)


def objective_config(pcfg: Mapping[str, Any]) -> dict[str, Any]:
    """`pretrain.objective` names one of `pretrain.objectives` (or is itself a {_use_: ...} node)."""
    choice = pcfg.get("objective")
    if registry.is_reference(choice):
        return dict(choice)
    options = dict(pcfg.get("objectives") or {})
    if not isinstance(choice, str) or choice not in options:
        raise ConfigError("pretrain.objective", f"unknown objective {choice!r}", f"choose one of {sorted(options)} (pretrain.objective=NAME)")
    node = options[choice]
    if not registry.is_reference(node):
        raise ConfigError(f"pretrain.objectives.{choice}", "must be a registered objective {_use_: ...}", "e.g. _use_: distnlp.PretrainCharacters.v1")
    return dict(node)


def _target_config(config: Mapping[str, Any], component: str) -> tuple[Any, str]:
    """The config node of the embedding module the weights belong to, and its dotted path."""
    comps = config.get("components") or {}
    if component in ENCODER_NAMES:
        enc = config.get("encoder")
        if not isinstance(enc, Mapping) or "model" not in enc:
            raise ConfigError("encoder", "pretrain.component is the shared encoder but no encoder is configured", "pick one: encoder=tok2vec")
        return enc["model"], "encoder.model"
    if component not in comps:
        raise ConfigError("pretrain.component", f"unknown component {component!r}", f"choose 'encoder' or one of {sorted(comps)}")
    settings = comps[component]
    if settings.get("listen"):
        # spaCy: a listener's weights are the upstream tok2vec's
        return _target_config(config, "encoder")
    if not settings.get("embed"):
        raise ConfigError(f"components.{component}.embed", "the component has no own embedding", "pretrain the shared encoder: pretrain.component=encoder")
    return settings["embed"], f"components.{component}.embed"


def build_tok2vec(config: Mapping[str, Any], vectors: Any = None) -> tuple[nn.Module, nn.Module, str]:
    """(the module built from the config, the layer being pretrained, its description)."""
    pcfg = pretrain_section(config)
    component = str(pcfg.get("component") or "encoder")
    layer = str(pcfg.get("layer") or "")
    node, path = _target_config(config, component)
    module = registry.resolve(node, path)
    for sub in module.modules():
        if getattr(sub, "include_static_vectors", False) and hasattr(sub, "attach_vectors"):
            if vectors is None:
                raise ConfigError("initialize.vectors", "include_static_vectors is true but no vectors table is given", "create one with `distnlp init vectors` and set initialize.vectors=DIR")
            sub.attach_vectors(vectors)
    target = select_layer(module, layer, path)
    if not (callable(getattr(target, "featurize", None)) and hasattr(target, "width")):
        raise ConfigError("pretrain.layer", f"{path}{'.' + layer if layer else ''} ({type(target).__name__}) is not an embedding layer with featurize(docs), forward and width", "pretrain the whole module: pretrain.layer=''")
    return module, target, path + (f".{layer}" if layer else "")


def _load_vectors_dir(setting: Any, where: str) -> Any:
    if not setting:
        return None
    if isinstance(setting, Mapping):
        return registry.resolve(setting, where)
    if not Path(str(setting)).exists():
        raise ConfigError(where, f"directory not found: {setting}", "create it with `distnlp init vectors`")

    return Vectors.from_disk(str(setting))


class PretrainModel(nn.Module):
    """The layer being pretrained plus the objective head: what the optimizer and checkpoints see."""

    def __init__(self, tok2vec: nn.Module, objective: nn.Module) -> None:
        super().__init__()
        self.tok2vec = tok2vec
        self.objective = objective


def build_pretrain_model(config: Mapping[str, Any]) -> tuple[PretrainModel, str]:
    pcfg = pretrain_section(config)
    init_vectors = _load_vectors_dir((config.get("initialize") or {}).get("vectors"), "initialize.vectors")
    _, target, where = build_tok2vec(config, init_vectors)
    objective = registry.resolve(objective_config(pcfg), "pretrain.objective")
    obj_vectors = None
    if getattr(objective, "needs_vectors", False):
        setting = pcfg.get("vectors")
        same = setting and setting == (config.get("initialize") or {}).get("vectors")
        obj_vectors = init_vectors if same else _load_vectors_dir(setting, "pretrain.vectors")
    objective.initialize(int(target.width), obj_vectors)
    return PretrainModel(target, objective), where


# --- saving --------------------------------------------------------------------------------


def tok2vec_bytes(model: PretrainModel, averages: ParameterAverages | None) -> bytes:
    """The pretrained layer's weights as safetensors bytes (averaged weights when kept)."""
    if averages is not None:
        averages.swap()
    try:
        tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.tok2vec.state_dict().items()}
    finally:
        if averages is not None:
            averages.swap()
    # the file carries the SHA-256 and size of the weights it holds; loading checks them (pipeline/pretrained_weights.py)
    return save(tensors, metadata={"format": "distnlp.tok2vec", "version": "1", **weights_metadata(tensors)})


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def bin_name(epoch: int, temp: bool) -> str:
    return f"model{epoch}.temp.bin" if temp else f"model{epoch}.bin"
