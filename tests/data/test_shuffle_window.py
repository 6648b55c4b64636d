"""Shuffle windows (data/shuffle_window.py, corpus.shuffle_words): a corpus stored sorted by label
reaches the batcher mixed across row groups, every doc still once per epoch, and a run resumed
from a checkpoint taken mid-window batches exactly as the uninterrupted one."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from distnlp.data.convert import write_corpus
from distnlp.data.doc import Doc
from distnlp.data.shuffle_window import shuffled_windows
from distnlp.data.stream import DocStream
from distnlp.registry import resolve
from distnlp.training.batches import ResumableBatches

LABELS = [f"label{i}" for i in range(8)]


@pytest.fixture(scope="module")
def sorted_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 four-word docs stored sorted by label (50 per label), in row groups of 25: every row
    group holds one label, as banking77's CSV converted in file order."""
    docs = [Doc(words=["w", str(i), "x", "y"], spaces=[True, True, True, False], doc_id=f"d{i}",
                cats={lab: float(lab == LABELS[i // 50]) for lab in LABELS}) for i in range(400)]
    out = tmp_path_factory.mktemp("sorted") / "corpus"
    write_corpus(docs, out, shard_size=200, row_group_size=25, fmt="test")
    return out


def _batches(corpus: Path, shuffle_words: int, *, infinite: bool = True, rank: int = 0, world: int = 1) -> ResumableBatches:
    batcher = resolve({"_use_": "distnlp.batch_by_words.v1", "size": 80, "tolerance": 0.2})  # ~20 docs a batch
    return ResumableBatches(DocStream(corpus, seed=3, infinite=infinite, rank=rank, world_size=world), batcher, shuffle_words=shuffle_words)


def _label(doc: Doc) -> str:
    return max(doc.cats, key=doc.cats.get)


def test_windows_permute_their_docs_only() -> None:
    docs = [Doc(words=["a"] * (1 + i % 3), spaces=[True] * (1 + i % 3), doc_id=str(i)) for i in range(50)]
    out = list(shuffled_windows(iter(docs), 20, [1, 2]))
    assert sorted(d.doc_id for d in out) == sorted(d.doc_id for d in docs) and [d.doc_id for d in out] != [d.doc_id for d in docs]
    # a window is a permutation of consecutive docs: no doc overtakes a whole window
    first_window = {d.doc_id for d in out[:11]}
    assert first_window == {str(i) for i in range(11)}  # 11 docs (21 words) are the first window of >= 20
    assert [d.doc_id for d in shuffled_windows(iter(docs), 20, [1, 2])] == [d.doc_id for d in out]
    assert [d.doc_id for d in shuffled_windows(iter(docs), 20, [1, 3])] != [d.doc_id for d in out]


def test_a_label_sorted_corpus_reaches_the_batcher_mixed(sorted_corpus: Path) -> None:
    """Row groups alone give batches of one label (what kept a banking77 textcat at chance)."""
    plain = [len({_label(d) for d in _batches(sorted_corpus, 0).take()}) for _ in range(10)]
    windowed = [len({_label(d) for d in _batches(sorted_corpus, 10_000).take()}) for _ in range(10)]
    assert max(plain) <= 2
    assert min(windowed) >= 5, windowed


def test_every_doc_once_per_epoch_across_ranks(sorted_corpus: Path) -> None:
    seen: Counter = Counter()
    for rank in range(2):
        replica = _batches(sorted_corpus, 300, infinite=False, rank=rank, world=2)
        while batch := replica.take():
            seen.update(d.doc_id for d in batch)
    assert seen == Counter(f"d{i}" for i in range(400))


def test_resume_mid_window_equals_the_uninterrupted_run(sorted_corpus: Path) -> None:
    straight = _batches(sorted_corpus, 500)
    before = [[d.doc_id for d in straight.take()] for _ in range(7)]
    state = json.loads(json.dumps(straight.state_dict()))  # a checkpoint, mid-window
    assert state["skip"], "the checkpoint should fall inside a window"
    straight.restart()  # as the loop does at every checkpoint
    after = [[d.doc_id for d in straight.take()] for _ in range(40)]  # past the epoch's end
    resumed = _batches(sorted_corpus, 500)
    resumed.load_state_dict(state)
    assert [[d.doc_id for d in resumed.take()] for _ in range(40)] == after
    first_epoch = Counter(i for batch in before + after for i in batch)
    assert all(first_epoch[f"d{i}"] >= 1 for i in range(400))


def test_a_window_never_mixes_epochs(sorted_corpus: Path) -> None:
    """A window larger than the corpus shuffles one epoch at a time; it does not read on into
    later epochs of an infinite stream."""
    replica = _batches(sorted_corpus, 10**9)
    first_epoch = [d for _ in range(20) for d in replica.take()][:400]
    assert Counter(d.doc_id for d in first_epoch) == Counter(f"d{i}" for i in range(400))
    assert {d.user_data["_distnlp_cursor"][0] for d in first_epoch} == {0}


def test_a_negative_window_is_a_one_line_error() -> None:
    from distnlp.errors import ConfigError
    from distnlp.config.settings import CorpusSettings

    with pytest.raises(ConfigError, match=r"corpus\.shuffle_words: must be >= 0"):
        CorpusSettings.from_config({"corpus": {"train": "x", "shuffle_words": -5}})


def test_a_checkpoint_mid_window_with_length_filtered_docs_resumes_on_more_ranks_each_doc_once(tmp_path: Path) -> None:
    """Rows a length filter drops come between docs; a doc emitted after one must be saved by its
    own row, not by the dropped row before it: an elastic re-split reads the saved rows as rows
    (else the resumed run trains that doc twice, and drops the dropped row's neighbour)."""
    docs = [Doc(words=["w"] * (1 + i % 7), spaces=[True] * (1 + i % 7), doc_id=f"d{i}") for i in range(300)]
    corpus = tmp_path / "corpus"
    write_corpus(docs, corpus, shard_size=150, row_group_size=30, fmt="test")
    kept = Counter(d.doc_id for d in docs if len(d) >= 3)
    batcher = resolve({"_use_": "distnlp.batch_by_words.v1", "size": 40, "tolerance": 0.2})

    def replica(rank: int = 0, world: int = 1) -> ResumableBatches:
        return ResumableBatches(DocStream(corpus, seed=3, min_length=3, rank=rank, world_size=world), batcher, shuffle_words=400)

    first = replica()
    seen = Counter(d.doc_id for _ in range(6) for d in first.take())
    state = json.loads(json.dumps(first.state_dict()))
    assert state["skip"], "the checkpoint should fall inside a window"
    for rank in range(2):
        resumed = replica(rank, 2)
        resumed.load_resplit([state])
        while batch := resumed.take():
            seen.update(d.doc_id for d in batch)
    assert seen == kept
