"""Path-valued config keys, made absolute where a worker may run in another directory."""
from __future__ import annotations

from pathlib import Path
from typing import Any

PATH_KEYS = (
    ("corpus", "train"), ("corpus", "dev"), ("corpus", "raw_text"), ("training", "output_dir"),
    ("initialize", "init_tok2vec"), ("initialize", "vectors"), ("pretrain", "output_dir"), ("pretrain", "vectors"),
)


def absolute_paths(config: dict[str, Any]) -> dict[str, Any]:
    """Local paths become absolute; URIs (s3://, gs://) and registered objects stay as they are.
    A list of training corpora has its entries' path and dev made absolute too."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in config.items()}
    for section, key in PATH_KEYS:
        node = out.get(section)
        value = node.get(key) if isinstance(node, dict) else None
        if isinstance(value, str):
            node[key] = _absolute(value)  # type: ignore[index]
        elif section == "corpus" and key == "train" and isinstance(value, list):
            node[key] = [_absolute(e) if isinstance(e, str) else _absolute_entry(e) for e in value]  # type: ignore[index]
    return out


def _absolute(value: str) -> str:
    return str(Path(value).resolve()) if value and "://" not in value else value


def _absolute_entry(entry: Any) -> Any:
    if not isinstance(entry, dict):
        return entry
    return {k: (_absolute(v) if k in ("path", "dev") and isinstance(v, str) else v) for k, v in entry.items()}
