"""Corpora: the Doc type, Parquet shards, converters, the streaming reader and batchers."""
from .doc import Doc, Span, Token

__all__ = ["Doc", "Span", "Token"]
