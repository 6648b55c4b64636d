"""Lemmatization: edit trees (form -> lemma edits) that the `lemmatizer` component classifies."""
from .edit_trees import apply_tree, count_trees, parse_tree, tree_for

__all__ = ["apply_tree", "count_trees", "parse_tree", "tree_for"]
