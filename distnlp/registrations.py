"""Importing this module registers every built-in name (as spaCy's registrations.py does).

Kept in one place so a registry lookup never depends on which module happened to be imported.
Modules that are missing (optional features) are skipped with no error.
"""
from __future__ import annotations

import importlib

_MODULES = (
    "distnlp.schedules",
    "distnlp.data.batching",
    "distnlp.data.stream",
    "distnlp.vectors.table",
    "distnlp.models.tok2vec",
    "distnlp.models.heads",
    "distnlp.models.transformer",
    "distnlp.models.span_getters",
    "distnlp.models.pooling",
    "distnlp.pipeline.components",
    "distnlp.pretrain.objectives",
    "distnlp.training.trackers",
)

for _name in _MODULES:
    try:
        importlib.import_module(_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not _name.startswith(exc.name):
            raise
