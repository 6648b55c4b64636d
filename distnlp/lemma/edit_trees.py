"""Edit trees: how a form turns into its lemma, as spaCy's trainable_lemmatizer learns them.

A tree splits the form at the longest substring it shares with the lemma (kept as is) and
recurses on the parts before and after it; a part with nothing in common is a substitution
leaf (this exact string becomes that string). The tree keeps the lengths of the kept prefix
and suffix parts, never their letters, so one tree ("drop a final 's'") covers many words.
A tree applies to a form only if every leaf's string is found where the tree expects it.

Trees are canonical strings (compact JSON), so they serve as a classifier's labels:

    match node:  ["m", prefix_len, suffix_len, prefix_tree | null, suffix_tree | null]
    leaf:        ["s", orig, subst]
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, Union

__all__ = ["apply_tree", "build_tree", "count_trees", "parse_tree", "tree_for", "trees_of_pair_counts"]

Tree = Union[tuple, None]  # ("m", pre, suf, prefix, suffix) | ("s", orig, subst) | None


def _lcs(a: str, b: str) -> tuple[int, int, int]:
    """(start in a, start in b, length) of the first longest common substring."""
    best = (0, 0, 0)
    prev = [0] * (len(b) + 1)
    for i in range(1, len(a) + 1):
        cur = [0] * (len(b) + 1)
        ai = a[i - 1]
        for j in range(1, len(b) + 1):
            if ai == b[j - 1]:
                n = prev[j - 1] + 1
                cur[j] = n
                if n > best[2]:
                    best = (i - n, j - n, n)
        prev = cur
    return best


def _build(form: str, lemma: str) -> Tree:
    if not form and not lemma:
        return None
    fs, ls, n = _lcs(form, lemma)
    if n == 0:
        return ("s", form, lemma)
    prefix = _build(form[:fs], lemma[:ls])
    suffix = _build(form[fs + n :], lemma[ls + n :])
    return ("m", fs, len(form) - fs - n, prefix, suffix)


def _apply(tree: Tree, form: str) -> str | None:
    if tree is None:
        return "" if form == "" else None
    if tree[0] == "s":
        return tree[2] if form == tree[1] else None
    _, pre, suf, prefix, suffix = tree
    if pre + suf >= len(form):
        return None  # the kept middle part must be non-empty, as when the tree was built
    head = _apply(prefix, form[:pre])
    if head is None:
        return None
    tail = _apply(suffix, form[len(form) - suf :])
    if tail is None:
        return None
    return head + form[pre : len(form) - suf] + tail


def _to_json(tree: Tree) -> Any:
    if tree is None or tree[0] == "s":
        return None if tree is None else list(tree)
    return ["m", tree[1], tree[2], _to_json(tree[3]), _to_json(tree[4])]


def _from_json(obj: Any) -> Tree:
    if obj is None:
        return None
    if obj[0] == "s" and len(obj) == 3:
        return ("s", str(obj[1]), str(obj[2]))
    if obj[0] == "m" and len(obj) == 5:
        return ("m", int(obj[1]), int(obj[2]), _from_json(obj[3]), _from_json(obj[4]))
    raise ValueError(f"not an edit tree: {obj!r}")


IDENTITY = '["m",0,0,null,null]'  # the whole form kept: what _build makes of form == lemma


@lru_cache(maxsize=200_000)
def tree_for(form: str, lemma: str) -> str:
    """The canonical string of the tree that turns `form` into `lemma` (cached: corpora repeat pairs)."""
    if form == lemma and form:
        return IDENTITY  # most distinct pairs (60% in EWT), 3/4 of the tree-building time if searched
    return json.dumps(_to_json(_build(form, lemma)), ensure_ascii=False, separators=(",", ":"))


build_tree = tree_for


@lru_cache(maxsize=20_000)
def parse_tree(tree: str) -> Tree:
    try:
        return _from_json(json.loads(tree))
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise ValueError(f"not an edit tree string: {tree!r} ({exc})") from None


@lru_cache(maxsize=500_000)
def apply_tree(tree: str, form: str) -> str | None:
    """The lemma the tree makes of `form`, or None when the tree does not fit the form."""
    return _apply(parse_tree(tree), form)


def count_trees(pairs: Iterable[tuple[str, str | None]]) -> Counter[str]:
    """How often each tree occurs over (form, lemma) pairs; a None lemma (missing) is skipped."""
    return trees_of_pair_counts(Counter(pairs))


def trees_of_pair_counts(pair_counts: Mapping[tuple[str, str | None], int]) -> Counter[str]:
    """`count_trees` from (form, lemma) -> n already counted (a corpus writer counts pairs while
    the docs go by and builds each distinct pair's tree once at the end)."""
    trees: Counter[str] = Counter()
    for (form, lemma), n in pair_counts.items():
        if lemma is not None:
            trees[tree_for(form, lemma)] += n
    return trees
