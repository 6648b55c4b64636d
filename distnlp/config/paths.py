"""Path-valued config keys, made absolute where a worker may run in another directory."""
from __future__ import annotations

from pathlib import Path
from typing import Any

PATH_KEYS = (
    ("corpus", "train"), ("corpus", "dev"), ("corpus", "raw_text"), ("training", "output_dir"),
    ("initialize", "init_tok2vec"), ("initialize", "vectors"), ("pretrain", "output_dir"), ("pretrain", "vectors"),
)


def absolute_paths(config: dict[str, Any]) -> dict[str, Any]:
    """Local paths become absolute; URIs (s3://, gs://) and registered objects stay as they are."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in config.items()}
    for section, key in PATH_KEYS:
        node = out.get(section)
        value = node.get(key) if isinstance(node, dict) else None
        if isinstance(value, str) and value and "://" not in value:
            node[key] = str(Path(value).resolve())
    return out
