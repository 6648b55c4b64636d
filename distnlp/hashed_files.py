"""Files written with their size and SHA-256 recorded from the bytes as they are written (no
read-back): checkpoints and saved pipelines list them in a manifest, and loading checks them."""
from __future__ import annotations

import hashlib
import json
import struct
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as safetensors_bytes


# safetensors' dtype names, in its own order (larger types first in a file keeps every tensor aligned).
_SAFETENSORS_DTYPES = {torch.bool: "BOOL", torch.uint8: "U8", torch.int8: "I8", torch.int16: "I16", torch.float16: "F16", torch.bfloat16: "BF16",
                       torch.int32: "I32", torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}
_DTYPE_ORDER = {dtype: i for i, dtype in enumerate(_SAFETENSORS_DTYPES)}


def safetensors_chunks(tensors: Mapping[str, torch.Tensor]) -> Iterator[bytes | memoryview]:
    """The bytes of a safetensors file, a tensor at a time, without building the file in memory
    (`safetensors.torch.save` does, an order of magnitude slower than save_file). The layout and
    order are the library's: an 8-byte little-endian header size, the JSON header padded with
    spaces to 8 bytes, the tensors' bytes (larger dtypes first, then by name)."""
    cpu = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    if sys.byteorder != "little" or any(t.dtype not in _SAFETENSORS_DTYPES for t in cpu.values()):
        yield safetensors_bytes(cpu)  # the library's own writer for what this one does not cover
        return
    names = sorted(cpu, key=lambda k: (-_DTYPE_ORDER[cpu[k].dtype], k))
    header: dict[str, Any] = {}
    offset = 0
    for name in names:
        t = cpu[name]
        nbytes = t.numel() * t.element_size()
        header[name] = {"dtype": _SAFETENSORS_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf8")
    text += b" " * (-len(text) % 8)
    yield struct.pack("<Q", len(text)) + text
    for name in names:
        yield memoryview(cpu[name].reshape(-1).view(torch.uint8).numpy())


class Writer:
    """Writes the files of one checkpoint and records each one's size and SHA-256 from the bytes
    it writes: the manifest then lists them without reading a byte back."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: dict[str, dict[str, Any]] = {}

    def write(self, name: str, chunks: Iterable[bytes | memoryview]) -> None:
        """`name` (relative to the root, "/"-separated) from its bytes in order, hashed as they go."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        with open(path, "wb") as fh:
            for chunk in chunks:
                digest.update(chunk)
                fh.write(chunk)
                size += memoryview(chunk).nbytes
        self.files[name] = {"size": size, "sha256": digest.hexdigest()}

    def tensors(self, name: str, tensors: Mapping[str, torch.Tensor]) -> None:
        self.write(name, safetensors_chunks(tensors))

    def json(self, name: str, obj: Any) -> None:
        self.write(name, [json.dumps(obj).encode("utf8")])


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
