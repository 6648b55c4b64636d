"""Fixtures for the annotate tests (in fixtures.py so tests/ray can use them too)."""
from .fixtures import _one_thread, inputs, tiny_model  # noqa: F401  (fixtures, shared with tests/ray)
