"""Label inventories for each component, from the training corpus's meta.json pre-pass."""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow.fs as pafs

from ..data.stream import read_docs
from ..errors import CorpusError
from ..lemma.edit_trees import count_trees
from ..pipeline.components import component_class, join_morph

log = logging.getLogger(__name__)


def read_meta(path: str) -> dict[str, Any]:
    fs, root = pafs.FileSystem.from_uri(path) if "://" in path else (pafs.LocalFileSystem(), path)
    meta_path = f"{root.rstrip('/')}/meta.json"
    try:
        with fs.open_input_stream(meta_path) as f:
            return json.loads(f.read().decode("utf8"))
    except FileNotFoundError:
        raise CorpusError(path, "no meta.json here: not a converted corpus", "convert it first: distnlp convert INPUT OUTPUT_DIR") from None
    except json.JSONDecodeError as exc:
        raise CorpusError(meta_path, f"corrupt meta.json ({exc})", "re-run distnlp convert") from None


def pipeline_labels(config: Mapping[str, Any], train_paths: str | Sequence[str]) -> dict[str, list[str]]:
    """component name -> labels. A component whose column no training corpus has gets [] (left
    out). With several corpora each inventory is their union, in first-seen order over the
    corpora as listed (one corpus: its own order), so every rank agrees on the label ids."""
    paths = [train_paths] if isinstance(train_paths, str) else list(train_paths)
    metas = [read_meta(p) for p in paths]
    inventories = union_labels([m.get("labels", {}) for m in metas])
    out: dict[str, list[str]] = {}
    for name, settings in (config.get("components") or {}).items():
        cls = component_class(settings.get("factory", ""), f"components.{name}.factory")
        if cls.factory == "morphologizer" and "morphologizer" not in inventories and inventories.get("pos"):
            inventories["morphologizer"] = morph_labels(paths)
        if cls.factory == "lemmatizer":
            with_lemmas = [p for p, m in zip(paths, metas) if (m.get("annotated") or {}).get("lemmas", 1)]  # 0: no lemma to read
            if with_lemmas:
                inventories = {**inventories, "lemmatizer": lemma_tree_labels(with_lemmas, int(settings.get("min_tree_freq", 3)))}
        labels = cls.labels_from_meta(settings, inventories)
        if cls.factory == "senter" and not any(m["annotated"].get("sent_starts", 0) if "annotated" in m else 1 for m in metas):
            labels = []  # no corpus states sentence starts (e.g. one text per row): nothing to learn
        if not labels:
            log.info("%s: the training corpus has no labels for it; left out of the pipeline", name)
        out[name] = labels
    return out


def union_labels(inventories: Sequence[Mapping[str, list[str]]]) -> dict[str, list[str]]:
    """Each column's labels over several meta.json inventories, first-seen order."""
    out: dict[str, list[str]] = {}
    for inventory in inventories:
        for column, labels in inventory.items():
            seen = out.setdefault(column, [])
            seen.extend(label for label in labels if label not in seen)
    return out


def morph_labels(paths: str | Sequence[str]) -> list[str]:
    """POS+features label set, read from the pos and morphs columns only (cheap)."""
    seen: set[str] = set()
    for path in [paths] if isinstance(paths, str) else paths:
        for doc in read_docs(path, columns=["words", "spaces", "pos", "morphs"], label="corpus.train"):
            if doc.pos is not None and doc.morphs is not None:
                seen.update(label for label in (join_morph(p, m) for p, m in zip(doc.pos, doc.morphs)) if label is not None)
    return sorted(seen)


def lemma_tree_labels(paths: str | Sequence[str], min_tree_freq: int) -> list[str]:
    """The lemmatizer's labels: edit trees (form -> lemma) seen at least `min_tree_freq` times in
    the training corpora together (spaCy's min_tree_freq; counts summed over corpora), read from
    the words and lemmas columns only. The same corpora give the same list on every rank, so
    replicas agree on the label ids."""
    pairs = (
        (form, lemma)
        for path in ([paths] if isinstance(paths, str) else paths)
        for doc in read_docs(path, columns=["words", "spaces", "lemmas"], label="corpus.train")
        if doc.lemmas is not None
        for form, lemma in zip(doc.words, doc.lemmas)
    )
    counts = count_trees(pairs)
    # most frequent first (ties by string): an untrained head's all-equal scores pick the commonest
    # tree (mostly identity), as spaCy's first-seen order does, instead of an arbitrary one
    kept = [(tree, n) for tree, n in counts.items() if n >= max(1, min_tree_freq)]
    return [tree for tree, _ in sorted(kept, key=lambda item: (-item[1], item[0]))]
