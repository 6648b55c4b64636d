"""The compiled batch decoder returns the numpy reference decoder's trees (models/mst.py, itself
checked against brute force) on every sentence: random scores of every difficulty, padded batches
of mixed lengths, several roots preferred, and sentences whose greedy heads are already a tree."""
from __future__ import annotations

import numpy as np
import pytest

from distnlp.models.mst import decode_tree, is_tree
from distnlp.models.mst_batch import decode_batch


def _batch(rng: np.random.Generator, n_sents: int, max_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    lens = rng.integers(1, max_len + 1, size=n_sents)
    logp = np.full((n_sents, max_len, max_len + 1), -np.inf, dtype=np.float32)
    for s, n in enumerate(lens):
        x = rng.normal(size=(n, n + 1)) * scale
        x[np.arange(n), np.arange(1, n + 1)] = -np.inf  # no word heads itself
        logp[s, :n, : n + 1] = x
    return logp, lens


def _reference(logp: np.ndarray, n: int) -> np.ndarray:
    tree = np.full((n + 1, n + 1), -np.inf)
    tree[1:] = logp[:n, : n + 1]
    return decode_tree(tree)[1:]


@pytest.mark.parametrize("max_len", [1, 2, 4, 9, 30, 80])
@pytest.mark.parametrize("scale", [0.3, 3.0, 30.0])
def test_every_sentence_equals_the_reference_decoder(max_len: int, scale: float) -> None:
    rng = np.random.default_rng(max_len * 100 + int(scale * 10))
    logp, lens = _batch(rng, 60, max_len, scale)
    heads = decode_batch(logp, lens)
    for s, n in enumerate(lens):
        np.testing.assert_array_equal(heads[s, :n], _reference(logp[s], n))
        assert (heads[s, n:] == -1).all()  # padding stays unset
        assert is_tree(np.concatenate([[-1], heads[s, :n]]))


def test_every_word_preferring_root_still_gives_one_root() -> None:
    logp = np.full((1, 5, 6), -5.0, dtype=np.float32)
    logp[0, :, 0] = 10.0
    logp[0, np.arange(5), np.arange(1, 6)] = -np.inf
    heads = decode_batch(logp, np.array([5]))[0]
    assert int((heads == 0).sum()) == 1 and is_tree(np.concatenate([[-1], heads]))


def test_a_greedy_tree_is_returned_as_it_is() -> None:
    gold = np.array([2, 0, 2, 3])  # 1 <- 2, 2 <- ROOT, 3 <- 2, 4 <- 3
    logp = np.full((1, 4, 5), -9.0, dtype=np.float32)
    logp[0, np.arange(4), gold] = -0.1
    np.testing.assert_array_equal(decode_batch(logp, np.array([4]))[0], gold)


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="T \\+ 1"):
        decode_batch(np.zeros((2, 3, 3)), np.array([3, 3]))
    with pytest.raises(ValueError, match="1..T"):
        decode_batch(np.zeros((1, 3, 4)), np.array([4]))
