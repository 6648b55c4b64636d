"""Tok2Vec = MultiHashEmbed >> MaxoutWindowEncoder (distnlp.models.tok2vec)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from distnlp.data.doc import Doc
from distnlp.errors import ConfigError
from distnlp.models.encoder import MaxoutWindowEncoder
from distnlp.models.layers import HashEmbed, Maxout
from distnlp.models.tok2vec import Tok2Vec, features_to
from distnlp.registry import architectures, resolve

ROOT = Path(__file__).resolve().parents[2]
ATTRS = ["NORM", "PREFIX", "SUFFIX", "SHAPE"]


def _doc(text: str) -> Doc:
    words = text.split()
    return Doc(words=words, spaces=[True] * len(words))


def _cfg(width: int = 32, depth: int = 2, window: int = 1, static: bool = False, embed: Any = None) -> dict:
    return {
        "_use_": "distnlp.Tok2Vec.v1",
        "embed": embed or {"_use_": "distnlp.MultiHashEmbed.v1", "width": width, "attrs": ATTRS,
                           "rows": [500, 100, 250, 250], "include_static_vectors": static},
        "encode": {"_use_": "distnlp.MaxoutWindowEncoder.v1", "width": width, "depth": depth,
                   "window_size": window, "maxout_pieces": 3},
    }


def _model(**kw: Any) -> Tok2Vec:
    torch.manual_seed(0)
    model = resolve(_cfg(**kw))
    model.eval()
    return model


DOCS = [_doc("The quick brown fox jumps ."), _doc("Hello"), _doc("Dogs bark at 3 AM !")]


def test_shapes_and_width() -> None:
    model = _model(width=32)
    feats = model.featurize(DOCS)
    assert feats["lengths"].tolist() == [6, 1, 6]
    assert feats["embed"]["keys"].shape == (13, 4)
    out = model(feats)
    assert out.shape == (13, 32) and model.width == 32
    assert isinstance(model.embed, torch.nn.Module) and isinstance(model.encode, MaxoutWindowEncoder)
    assert [t.shape[0] for t in model.predict(DOCS)] == [6, 1, 6]


def test_empty_docs_and_empty_batch() -> None:
    model = _model()
    assert model(model.featurize([_doc(""), _doc("a b"), _doc("")])).shape == (2, 32)
    assert model(model.featurize([])).shape == (0, 32)


def test_rows_must_match_attrs() -> None:
    cfg = _cfg()
    cfg["embed"]["rows"] = [500, 100]
    with pytest.raises(ConfigError) as err:
        resolve(cfg)
    assert err.value.path == "rows"


def test_bad_encoder_args_name_the_key() -> None:
    cfg = _cfg()
    cfg["encode"]["depth"] = 0
    with pytest.raises(ConfigError, match="depth"):
        resolve(cfg)
    with pytest.raises(ConfigError, match="width"):
        Tok2Vec(_model(width=32).embed, MaxoutWindowEncoder(16, 1, 1, 3))


def test_hash_rows_in_range_and_deterministic() -> None:
    emb = HashEmbed(8, rows=7, seed=3)
    keys = torch.tensor([0, -1, 2**63 - 1, -(2**63), 12345678901234], dtype=torch.int64)
    idx = emb.indices(keys)
    assert idx.shape == (5, 4) and int(idx.min()) >= 0 and int(idx.max()) < 7
    assert torch.equal(idx, HashEmbed(8, rows=7, seed=3).indices(keys))
    assert not torch.equal(HashEmbed(8, 5000, seed=3).indices(keys), HashEmbed(8, 5000, seed=4).indices(keys))


def test_hash_spreads_over_rows() -> None:
    emb = HashEmbed(4, rows=1000, seed=8)
    keys = torch.from_numpy(np.random.default_rng(0).integers(-(2**63), 2**63 - 1, 20000, dtype=np.int64))
    counts = torch.bincount(emb.indices(keys).flatten(), minlength=1000).float()
    assert counts.min() > 40 and counts.max() < 130  # mean 80


def test_outputs_identical_across_processes() -> None:
    code = (
        "import torch; from distnlp.registry import resolve; from distnlp.data.doc import Doc\n"
        "torch.manual_seed(0)\n"
        f"m = resolve({_cfg()!r}); m.eval()\n"
        "d = Doc(words=['Hello', 'world', '!'], spaces=[True] * 3)\n"
        "f = m.featurize([d]); print(f['embed']['keys'].tolist()); print(m.embed.embeds[0].indices(f['embed']['keys'][:, 0]).tolist())"
    )
    outs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                           env={"PYTHONHASHSEED": s, "PATH": ""}).stdout for s in ("0", "7")]
    assert outs[0] == outs[1] and outs[0].strip()


@pytest.mark.parametrize("window", [1, 2])
def test_no_leakage_across_docs(window: int) -> None:
    model = _model(depth=3, window=window)
    a, b, c = _doc("one two three four"), _doc("five six seven"), _doc("eight nine")
    out1 = model(model.featurize([a, b, c]))
    b2 = _doc("FIVE Six sev3n")
    out2 = model(model.featurize([a, b2, c]))
    torch.testing.assert_close(out1[:4], out2[:4])
    torch.testing.assert_close(out1[7:], out2[7:])
    assert not torch.allclose(out1[4:7], out2[4:7])
    # and a doc's output does not depend on its batch neighbours at all
    alone = model(model.featurize([c]))
    torch.testing.assert_close(out1[7:], alone, rtol=1e-5, atol=1e-5)


def test_encoder_matches_per_doc_reference() -> None:
    torch.manual_seed(0)
    enc = MaxoutWindowEncoder(8, depth=2, window_size=1, maxout_pieces=3)
    x = torch.randn(7, 8)
    lengths = torch.tensor([3, 4])

    def ref(xd: torch.Tensor) -> torch.Tensor:
        for block in enc.blocks:
            pad = torch.nn.functional.pad(xd, (0, 0, 1, 1))
            win = torch.cat([pad[:-2], pad[1:-1], pad[2:]], dim=-1)
            xd = xd + block(win)
        return xd

    expected = torch.cat([ref(x[:3]), ref(x[3:])])
    torch.testing.assert_close(enc(x, lengths), expected)


def test_maxout_is_max_of_pieces() -> None:
    torch.manual_seed(0)
    m = Maxout(4, 6, nP=3, normalize=False)
    x = torch.randn(5, 6)
    y = m.linear(x).view(5, 3, 4)
    torch.testing.assert_close(m(x), y.max(dim=1).values)


def test_gradient_flows_to_every_parameter() -> None:
    model = _model()
    model.train()
    out = model(model.featurize(DOCS))
    out.square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.fixture
def one_thread():
    # tiny batches gain nothing from threads, and OpenMP threads crawl when CI shares the cores
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_tiny_overfit_tagger(one_thread: None) -> None:
    """tok2vec + linear tagger learns a toy task (tag depends on the word and its left neighbour)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    vocab = ["dog", "cat", "runs", "sleeps", "the", "a", "big", "small", "Paris", "Rome", "eats", "fast"]
    docs = []
    for _ in range(40):
        docs.append(_doc(" ".join(rng.choice(vocab, size=int(rng.integers(3, 9))))))

    def gold(doc: Doc) -> list[int]:
        # label = (word index + previous word index) mod 5: needs the window, not just the word
        ids = [vocab.index(w) for w in doc.words]
        return [(ids[i] + (ids[i - 1] if i else 7)) % 5 for i in range(len(ids))]

    model = resolve(_cfg(width=32, depth=2))
    head = torch.nn.Linear(32, 5)
    opt = torch.optim.Adam(list(model.parameters()) + list(head.parameters()), lr=5e-3)
    feats = model.featurize(docs)
    y = torch.tensor([t for d in docs for t in gold(d)])
    model.train()
    for _ in range(100):
        loss = torch.nn.functional.cross_entropy(head(model(feats)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (head(model(feats)).argmax(-1) == y).float().mean().item()
    assert acc > 0.98, acc


class _CharCountEmbed(torch.nn.Module):
    """A user embed: featurize + forward + width, nothing else."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.width = width
        self.proj = torch.nn.Linear(2, width)

    def featurize(self, docs: list[Doc]) -> torch.Tensor:
        return torch.tensor([[len(w), sum(c.isupper() for c in w)] for d in docs for w in d.words], dtype=torch.float32)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.proj(feats)


def test_user_registered_embed() -> None:
    name = "test.CharCountEmbed.v1"
    if name not in architectures:
        architectures(name)(lambda width: _CharCountEmbed(width))
    cfg = _cfg(width=16, embed={"_use_": name, "width": 16})
    model = resolve(cfg)
    feats = model.featurize(DOCS)
    out = model(features_to(feats, "cpu"))
    assert out.shape == (13, 16)
    out.sum().backward()
    assert model.embed.proj.weight.grad is not None


class _ComputedTable:
    """A VectorsLike that computes a vector for any word (like a subword model would)."""

    dim = 6

    def get(self, word: str) -> np.ndarray:
        return np.array([len(word), word.count("o"), 1, 0, -1, word[:1].isupper()], dtype=np.float32)

    def has(self, word: str) -> bool:
        return True

    def get_batch(self, words: list[str]) -> np.ndarray:
        return np.stack([self.get(w) for w in words]) if words else np.zeros((0, self.dim), np.float32)


class _SmallTable(_ComputedTable):
    """Dense, indexable table (rows + data), like distnlp.vectors.Vectors."""

    def __init__(self) -> None:
        self.words = ["the", "fox", "dogs"]
        self.data = np.arange(18, dtype=np.float32).reshape(3, 6) + 1

    def rows(self, words: list[str]) -> np.ndarray:
        return np.array([self.words.index(w) if w in self.words else -1 for w in words], dtype=np.int64)

    def get_batch(self, words: list[str]) -> np.ndarray:
        r = self.rows(words)
        return np.where((r >= 0)[:, None], self.data[np.maximum(r, 0)], 0).astype(np.float32)


def test_static_vectors_missing_table_raises() -> None:
    model = _model(static=True)
    with pytest.raises(ConfigError, match="no vectors table is attached"):
        model.featurize(DOCS)


@pytest.mark.parametrize("table_cls", [_ComputedTable, _SmallTable])
def test_static_vectors(table_cls: type) -> None:
    model = _model(static=True)
    table = table_cls()
    model.embed.attach_vectors(table)
    feats = model.featurize(DOCS)
    out = model(feats)
    assert out.shape == (13, 32)
    proj = model.embed.static_proj
    assert proj is not None and proj.weight.shape == (32, 6)
    assert "static_proj.weight" in dict(model.embed.named_parameters())
    # the table is never part of the saved state
    assert not any("vectors" in k and "proj" not in k for k in model.state_dict())
    vecs = model.embed._static(feats["embed"])
    words = [w for d in DOCS for w in d.words]
    torch.testing.assert_close(vecs, proj(torch.from_numpy(table.get_batch(words))))
    if table_cls is _SmallTable:
        assert "vector_rows" in feats["embed"]
        assert vecs[1].abs().sum() == 0  # "quick" is OOV -> zero vector


def test_static_vectors_state_dict_round_trip() -> None:
    model = _model(static=True)
    model.embed.attach_vectors(_SmallTable())
    state = model.state_dict()
    fresh = _model(static=True)
    fresh.load_state_dict(state)  # works before attach_vectors: the projection is created
    fresh.embed.attach_vectors(_SmallTable())
    fresh.eval()
    torch.testing.assert_close(fresh(fresh.featurize(DOCS)), model(model.featurize(DOCS)))
