"""Label inventories for each component, from the training corpora's meta.json alone.

`distnlp convert` (and annotate) store every inventory while writing the corpus, the lemma edit
trees with their counts, so start-up reads no shard: its time and memory do not grow with the
corpus. A corpus written before the trees were stored gets one clear error on every rank rather
than a full scan on every rank at every start; `distnlp corpus-labels` adds them once, with the
full scans kept here (`morph_labels`, `lemma_tree_counts`).
"""
from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow.fs as pafs

from ..data.stream import read_docs
from ..errors import CorpusError
from ..lemma.edit_trees import count_trees
from ..pipeline.components import component_class, join_morph

log = logging.getLogger(__name__)

META_FILE = "meta.json"
TREES_KEY = "lemma_trees"  # meta.json: edit tree -> tokens, before min_tree_freq


def _corpus_fs(path: str) -> tuple[pafs.FileSystem, str]:
    fs, root = pafs.FileSystem.from_uri(path) if "://" in path else (pafs.LocalFileSystem(), path)
    return fs, root.rstrip("/")


def read_meta(path: str) -> dict[str, Any]:
    fs, root = _corpus_fs(path)
    meta_path = f"{root}/{META_FILE}"
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
    corpora as listed (one corpus: its own order), so every rank agrees on the label ids.
    Reads meta.json only, never a shard. Only the components in nlp.pipeline (as Pipeline builds
    them), so a corpus lacking what another component needs stops nothing."""
    paths = [train_paths] if isinstance(train_paths, str) else list(train_paths)
    metas = [read_meta(p) for p in paths]
    inventories = union_labels([m.get("labels", {}) for m in metas])
    components: Mapping[str, Any] = config.get("components") or {}
    out: dict[str, list[str]] = {}
    for name in (config.get("nlp") or {}).get("pipeline") or components:
        settings = components.get(name)
        if settings is None:
            continue  # validate_config names it; Pipeline refuses it
        cls = component_class(settings.get("factory", ""), f"components.{name}.factory")
        if cls.factory == "morphologizer":
            for path, meta in zip(paths, metas):
                _require_morph_labels(path, meta)
        if cls.factory == "lemmatizer":
            trees = stored_tree_counts(paths, metas)
            inventories = {**inventories, "lemmatizer": frequent_trees(trees, int(settings.get("min_tree_freq", 3)))}
        labels = cls.labels_from_meta(settings, inventories)
        if cls.factory == "senter" and not any(_may_hold(m, "sent_starts") for m in metas):
            labels = []  # no corpus states sentence starts (e.g. one text per row): nothing to learn
        if not labels:
            log.info("%s: the training corpus has no labels for it; left out of the pipeline", name)
        out[name] = labels
    return out


def _may_hold(meta: Mapping[str, Any], column: str) -> bool:
    """Whether meta.json's annotated counts leave room for values in `column` (they list only
    the columns some doc has; a hand-made meta.json without them: maybe)."""
    return "annotated" not in meta or bool(meta["annotated"].get(column))


def _require_morph_labels(path: str, meta: Mapping[str, Any]) -> None:
    """A corpus stores its morphologizer labels when it has any; one written before they were
    stored (no tree counts either) but with pos and morphs values may hold some."""
    labels = meta.get("labels", {})
    if "morphologizer" not in labels and TREES_KEY not in meta and labels.get("pos") and labels.get("morphs"):
        raise _written_before(path, "morphologizer labels")


def stored_tree_counts(paths: Sequence[str], metas: Sequence[Mapping[str, Any]]) -> Counter[str]:
    """Edit-tree counts summed over the corpora, from their meta.json."""
    total: Counter[str] = Counter()
    for path, meta in zip(paths, metas):
        if not _may_hold(meta, "lemmas"):
            continue  # no lemma-annotated doc: no tree to add, stored or not
        if TREES_KEY not in meta:
            raise _written_before(path, "lemma edit-tree counts")
        total.update({str(tree): int(n) for tree, n in meta[TREES_KEY].items()})
    return total


def _written_before(path: str, what: str) -> CorpusError:
    return CorpusError(
        path, f"meta.json has no {what} (written before distnlp stored them)",
        f"run `distnlp corpus-labels {path}` once (or re-run distnlp convert)",
    )


def frequent_trees(counts: Mapping[str, int], min_tree_freq: int) -> list[str]:
    """Trees seen at least `min_tree_freq` times (spaCy's min_tree_freq), most frequent first,
    ties by string: an untrained head's all-equal scores pick the commonest tree (mostly
    identity), as spaCy's first-seen order does, instead of an arbitrary one."""
    kept = [(tree, n) for tree, n in counts.items() if n >= max(1, min_tree_freq)]
    return [tree for tree, _ in sorted(kept, key=lambda item: (-item[1], item[0]))]


def union_labels(inventories: Sequence[Mapping[str, list[str]]]) -> dict[str, list[str]]:
    """Each column's labels over several meta.json inventories, first-seen order."""
    out: dict[str, list[str]] = {}
    for inventory in inventories:
        for column, labels in inventory.items():
            seen = out.setdefault(column, [])
            seen.extend(label for label in labels if label not in seen)
    return out


def morph_labels(paths: str | Sequence[str]) -> list[str]:
    """POS+features label set by a full read of the pos and morphs columns (what convert stores
    as meta.json["labels"]["morphologizer"])."""
    seen: set[str] = set()
    for path in [paths] if isinstance(paths, str) else paths:
        for doc in read_docs(path, columns=["words", "spaces", "pos", "morphs"], label="corpus.train"):
            if doc.pos is not None and doc.morphs is not None:
                seen.update(label for label in (join_morph(p, m) for p, m in zip(doc.pos, doc.morphs)) if label is not None)
    return sorted(seen)


def lemma_tree_counts(paths: str | Sequence[str]) -> Counter[str]:
    """Edit tree (form -> lemma) -> how often, over the corpora's words and lemmas columns:
    a full read (what convert stores as meta.json["lemma_trees"])."""
    pairs = (
        (form, lemma)
        for path in ([paths] if isinstance(paths, str) else paths)
        for doc in read_docs(path, columns=["words", "spaces", "lemmas"], label="corpus.train")
        if doc.lemmas is not None
        for form, lemma in zip(doc.words, doc.lemmas)
    )
    return count_trees(pairs)


def lemma_tree_labels(paths: str | Sequence[str], min_tree_freq: int) -> list[str]:
    """The lemmatizer's labels by a full read of the corpora (counts summed over them); training
    takes the same list from the stored counts (`stored_tree_counts`)."""
    return frequent_trees(lemma_tree_counts(paths), min_tree_freq)


def store_corpus_labels(path: str) -> dict[str, Any]:
    """Add the inventories a corpus written before they were stored lacks to its meta.json (one
    full read; meta.json replaced atomically, formatted as convert writes it); return the meta."""
    meta = read_meta(path)
    if TREES_KEY in meta:
        return meta  # written with them (its morphologizer labels too, when it has any)
    labels = meta.setdefault("labels", {})
    if "morphologizer" not in labels:
        morph = morph_labels(path)
        if morph:  # convert stores the key only when there are labels
            labels["morphologizer"] = morph
    meta[TREES_KEY] = dict(sorted(lemma_tree_counts(path).items()))
    _replace_meta(path, meta)
    return meta


def _replace_meta(path: str, meta: Mapping[str, Any]) -> None:
    """Write meta.json beside itself, then rename over it: a reader sees the old or the new file."""
    fs, root = _corpus_fs(path)
    tmp = f"{root}/.{META_FILE}.tmp-{uuid.uuid4().hex[:8]}"
    text = json.dumps(meta, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    try:
        with fs.open_output_stream(tmp) as f:
            f.write(text.encode("utf-8"))
        fs.move(tmp, f"{root}/{META_FILE}")
    except BaseException:
        try:
            fs.delete_file(tmp)
        except OSError:
            pass
        raise
