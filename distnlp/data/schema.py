"""The Parquet corpus schema: one row per doc; a missing annotation is null.

Missing is never a label (docs/architecture.md, decision 7), at three levels:
- a whole column of a doc: the column is null (the doc has no tags at all);
- one token of a per-token column (`tags`, `pos`, `morphs`, `lemmas`, `deps`, `heads`,
  `sent_starts`): that list element is null;
- a stretch of tokens whose entities are unknown inside a doc that has entity annotation (e.g.
  a sentence whose NER labels were dropped): `ents_missing`, token ranges [start, end).
  Entities never overlap them; "O" is only what `ents` states outside them.

Version 2 added `ents_missing` and per-token nulls; a version-1 shard is read with
`ents_missing` null (no missing ranges), which is what it meant.
"""
from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 2

ENT_TYPE = pa.struct([("start", pa.int32()), ("end", pa.int32()), ("label", pa.string())])
RANGE_TYPE = pa.struct([("start", pa.int32()), ("end", pa.int32())])

CORPUS_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("text", pa.string()),
        ("words", pa.list_(pa.string())),
        ("spaces", pa.list_(pa.bool_())),
        ("sent_starts", pa.list_(pa.bool_())),
        ("tags", pa.list_(pa.string())),
        ("pos", pa.list_(pa.string())),
        ("morphs", pa.list_(pa.string())),
        ("lemmas", pa.list_(pa.string())),
        ("deps", pa.list_(pa.string())),
        ("heads", pa.list_(pa.int32())),
        ("ents", pa.list_(ENT_TYPE)),
        ("cats", pa.map_(pa.string(), pa.float32())),
        ("ents_missing", pa.list_(RANGE_TYPE)),
    ]
)

# Columns whose label inventory goes into meta.json["labels"].
LABEL_COLUMNS = ("tags", "pos", "morphs", "deps", "ents", "cats")
