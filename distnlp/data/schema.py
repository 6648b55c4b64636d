"""The Parquet corpus schema (DESIGN.md): one row per doc; a missing annotation is null."""
from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1

ENT_TYPE = pa.struct([("start", pa.int32()), ("end", pa.int32()), ("label", pa.string())])

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
    ]
)

# Columns whose label inventory goes into meta.json["labels"].
LABEL_COLUMNS = ("tags", "pos", "morphs", "deps", "ents", "cats")
