"""The tree decoder: always a valid one-root tree, the exact maximum (brute force on small
sentences), non-projective when that scores best, one-word and long sentences."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from distnlp.models.mst import decode_tree, is_tree


def _random_scores(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.normal(size=(n + 1, n + 1))


def _brute_force(S: np.ndarray) -> np.ndarray:
    """Every head assignment, vectorised: keep the one-root acyclic ones, take the best."""
    n = S.shape[0] - 1
    choices = np.array(list(itertools.product(range(n + 1), repeat=n)), dtype=np.int64)
    heads = np.concatenate([np.zeros((len(choices), 1), dtype=np.int64), choices], axis=1)  # ROOT -> itself
    ok = (heads[:, 1:] != np.arange(1, n + 1)).all(axis=1) & ((heads[:, 1:] == 0).sum(axis=1) == 1)
    f = heads.copy()
    for _ in range(n):  # after n steps an acyclic node has reached ROOT
        f = np.take_along_axis(f, f, axis=1)
    ok &= (f == 0).all(axis=1)
    scores = S[np.arange(1, n + 1), choices].sum(axis=1)
    scores[~ok] = -np.inf
    best = heads[int(np.argmax(scores))].copy()
    best[0] = -1
    assert is_tree(best)
    return best


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_equals_brute_force_on_small_sentences(n: int) -> None:
    rng = np.random.default_rng(n)
    for _ in range(40 if n < 6 else 20):
        S = _random_scores(n, rng)
        np.testing.assert_array_equal(decode_tree(S), _brute_force(S))


def test_one_root_even_when_every_word_prefers_root() -> None:
    S = np.zeros((5, 5))
    S[1:, 0] = 10.0  # greedy would attach all four words to ROOT
    heads = decode_tree(S)
    assert is_tree(heads) and int((heads[1:] == 0).sum()) == 1


def test_non_projective_tree_is_kept() -> None:
    # 1 <- ROOT, 3 <- 1, 2 <- 4, 4 <- 1: arcs (1,3) and (4,2) cross
    gold = np.array([-1, 0, 4, 1, 1])
    S = np.full((5, 5), -5.0)
    S[np.arange(1, 5), gold[1:]] = 5.0
    np.testing.assert_array_equal(decode_tree(S), gold)


def test_cycles_in_the_greedy_heads_are_broken() -> None:
    S = np.full((4, 4), -10.0)
    S[1, 2], S[2, 1] = 5.0, 5.0  # 1 <-> 2: a cycle the greedy step takes
    S[3, 2], S[1, 0], S[2, 0], S[3, 0] = 4.0, 1.0, 0.5, 0.0
    heads = decode_tree(S)
    assert is_tree(heads)
    np.testing.assert_array_equal(heads, _brute_force(S))


@pytest.mark.parametrize("n", [1, 7, 60, 250])
def test_valid_trees_on_random_matrices(n: int) -> None:
    rng = np.random.default_rng(100 + n)
    for _ in range(5):
        S = _random_scores(n, rng)
        heads = decode_tree(S)
        assert heads.shape == (n + 1,) and is_tree(heads)


def test_long_sentence_recovers_a_planted_tree() -> None:
    # Too long for brute force: plant a clearly best tree (heads point left, word 1 is the root).
    n = 300
    rng = np.random.default_rng(7)
    gold = np.array([-1, 0] + [int(rng.integers(1, d)) for d in range(2, n + 1)])
    S = rng.normal(scale=0.1, size=(n + 1, n + 1))
    S[np.arange(1, n + 1), gold[1:]] += 3.0
    assert is_tree(gold)
    np.testing.assert_array_equal(decode_tree(S), gold)


def test_is_tree_rejects_bad_structures() -> None:
    assert not is_tree(np.array([-1, 0, 0]))  # two root children
    assert not is_tree(np.array([-1, 2, 1]))  # cycle, no root
    assert not is_tree(np.array([-1, 0, 3, 2]))  # a cycle beside a root
    assert not is_tree(np.array([-1, 0, 2]))  # self loop
    assert is_tree(np.array([-1, 0, 1, 1]))
