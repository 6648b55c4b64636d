"""Several corpora as one training stream: this rank's share of each, interleaved by weight.

Each corpus is its own infinite `DocStream` (this rank's disjoint, shuffled share, epoch after
epoch on its own). Which corpus the k-th draw comes from is a smooth weighted round robin: the
corpus i with the largest `(k + 1) * p_i - drawn_i` (ties: the first listed), where `drawn_i`
counts its draws since the run began. No RNG: after k draws every corpus has had its share to
within a doc or so, every window of draws follows the weights, and the whole schedule is a
function of the weights and k alone, the same on every rank and for every seed (the seed still
shuffles each corpus). The state is small integers, so a checkpoint restores it exactly. The
counts run on across epochs: restarting them at each epoch would round every corpus's share
per epoch, a bias that adds up.

An epoch of the mixture is as many draws as this rank's shares hold rows together (MaChAmp's
convention): a small corpus with a large weight is read several times over, a large one with a
small weight only partly. The cursor (epoch, position = draws so far this epoch) increases along
the stream, as `training/batches.py` needs; the state also holds each corpus's own cursor.
Each doc says where it came from in `doc.user_data["corpus"]`.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..config.corpora import CorpusEntry
from ..errors import CheckpointError, CorpusError
from .cursor import CursorStream
from .doc import Doc
from .stream import DocStream

CORPUS_KEY = "corpus"  # doc.user_data key naming the doc's training corpus


def mixture_probabilities(weights: Sequence[float | None], docs: Sequence[int], temperature: float) -> list[float]:
    """Draw probabilities: the given weights normalised, else p_i ~ docs_i ** temperature
    (1 = proportional to size, 0 = uniform; MaChAmp's sampling smoothing)."""
    if all(w is not None for w in weights):
        raw = [float(w) for w in weights]  # type: ignore[arg-type]
    else:
        raw = [float(n) ** float(temperature) for n in docs]
    total = sum(raw)
    return [r / total for r in raw]


def next_corpus(draws: int, probabilities: Sequence[float], drawn: Sequence[int]) -> int:
    """The corpus of the next draw, after `draws` draws of which `drawn[i]` came from corpus i."""
    k = draws + 1
    best, best_credit = 0, float("-inf")
    for i, (p, n) in enumerate(zip(probabilities, drawn)):
        credit = k * p - n
        if credit > best_credit:  # strict: ties go to the first corpus
            best, best_credit = i, credit
    return best


class MixtureStream(CursorStream):
    """Named per-rank DocStreams interleaved by `probabilities` (see the module docstring)."""

    def __init__(self, streams: Mapping[str, DocStream], probabilities: Sequence[float], *, infinite: bool = True,
                 labels: Sequence[str] | None = None) -> None:
        """`labels`: the config key of each corpus (`corpus.train[1]`), for errors."""
        if len(streams) != len(probabilities) or not streams:
            raise ValueError("one probability per stream, and at least one stream")
        self.names = list(streams)
        self.streams = [streams[n] for n in self.names]
        self.probabilities = [float(p) for p in probabilities]
        self.labels = list(labels) if labels is not None else [f"corpus {n!r}" for n in self.names]
        first = self.streams[0]
        self.rank, self.world_size, self.seed = first.rank, first.world_size, first.seed
        self.infinite = bool(infinite)
        self.shuffle = first.shuffle
        self.epoch, self.position = 0, 0
        self.drawn = [0] * len(self.streams)  # draws per corpus since the run began
        for stream, label in zip(self.streams, self.labels):
            if len(stream) == 0:
                raise CorpusError(label, f"rank {self.rank} of {self.world_size} gets no document of this corpus",
                                  "use fewer replicas, or leave the corpus out")
        self._epoch_size = sum(len(s) for s in self.streams)  # share sizes do not change between epochs
        self._iters: list[Iterator[Doc] | None] = [None] * len(self.streams)

    @property
    def skipped(self) -> int:
        return sum(s.skipped for s in self.streams)

    def __len__(self) -> int:
        """Draws in one epoch: the rows of this rank's shares of every corpus together."""
        return self._epoch_size

    # --- cursor --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["corpora"] = {name: {"drawn": n, "stream": s.state_dict()} for name, n, s in zip(self.names, self.drawn, self.streams)}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state.get("corpora")
        if not isinstance(saved, Mapping) or list(saved) != self.names:
            had = "one corpus" if not isinstance(saved, Mapping) else f"corpora {list(saved)}"
            raise CheckpointError(f"the saved data cursor reads {had}, this run reads corpora {self.names}; "
                                  "resume with the corpus.train it was saved with")
        super().load_state_dict(state)
        self.drawn = [int(saved[n]["drawn"]) for n in self.names]
        for name, stream in zip(self.names, self.streams):
            stream.load_state_dict(saved[name]["stream"])
        self._iters = [None] * len(self.streams)  # a fresh iterator continues from each cursor

    # --- iteration -----------------------------------------------------------------------------
    def _next_doc(self, i: int) -> Doc:
        it = self._iters[i]
        if it is None:
            it = self._iters[i] = iter(self.streams[i])
        doc = next(it, None)
        if doc is None:  # an infinite DocStream ends only when a whole epoch gave nothing
            raise CorpusError(self.labels[i], f"no document left on rank {self.rank} after corpus.min_length / corpus.max_length",
                              "loosen the length limits")
        return doc

    def _rest_of_epoch(self) -> Iterator[Doc]:
        epoch = self.epoch
        while self.epoch == epoch and self._epoch_size:
            i = next_corpus(sum(self.drawn), self.probabilities, self.drawn)
            doc = self._next_doc(i)
            # Move the cursor before handing the doc out (data/cursor.py).
            self.drawn[i] += 1
            if self.position + 1 >= self._epoch_size:
                self.set_epoch(epoch + 1)
            else:
                self.position += 1
            doc.user_data[CORPUS_KEY] = self.names[i]
            yield doc


def open_training_stream(
    entries: Sequence[CorpusEntry],
    *,
    temperature: float,
    rank: int,
    world_size: int,
    seed: int,
    shuffle: bool = True,
    min_length: int = 0,
    max_length: int = 0,
    first_batch_words: float | None = None,
    split_length: int = 0,
) -> DocStream | MixtureStream:
    """One corpus: its DocStream, exactly as before (same checkpoints). Several: a mixture.

    `first_batch_words`: the batch size the schedule starts at. Ranks' shares are balanced by
    words, unless the corpus's documents are longer than that on average: a batcher then yields
    most documents alone, steps follow documents, and shares of equal words would leave the rank
    with more, shorter documents training while the others wait (28.9% empty replica-steps for the
    demo corpus's 380-word documents and batches from 100 words, against 1.3% by documents).
    `split_length`: training documents are cut to at most about that many words (corpus.split_length):
    when that fits the first batch, batches follow words again, and so do the shares (the demo
    corpus cut at 100 words: 1.2% empty replica-steps by words, 25.7% by documents)."""
    several = len(entries) > 1
    labels = [f"corpus.train[{i}]" if several else "corpus.train" for i in range(len(entries))]
    streams = {
        e.name: DocStream(e.path, rank=rank, world_size=world_size, seed=seed, shuffle=shuffle, infinite=True,
                          min_length=min_length, max_length=max_length, label=label, balance_by_words=not several)
        for e, label in zip(entries, labels)
    }
    if not several and first_batch_words:
        only = next(iter(streams.values()))
        info = only.info
        if info.n_docs == 0:
            only.balance_by_words = True
        else:
            typical = info.n_words / info.n_docs
            only.balance_by_words = typical < float(first_batch_words) or 0 < split_length <= float(first_batch_words)
    if not several:
        return next(iter(streams.values()))
    docs = [s.info.n_docs for s in streams.values()]
    for n, label in zip(docs, labels):
        if n == 0:
            raise CorpusError(label, "the corpus holds no document", "leave it out of corpus.train")
    probabilities = mixture_probabilities([e.weight for e in entries], docs, temperature)
    return MixtureStream(streams, probabilities, infinite=True, labels=labels)


__all__ = ["CORPUS_KEY", "MixtureStream", "mixture_probabilities", "next_corpus", "open_training_stream"]
