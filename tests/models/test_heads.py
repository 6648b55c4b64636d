from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from distnlp import registry
from distnlp.data.doc import Doc
from distnlp.models.biluo import biluo_tags_from_spans, spans_from_biluo_tags
from distnlp.models.heads import (
    IGNORE,
    NERHead,
    TaggerHead,
    TextcatHead,
    encode_token_labels,
    morph_label,
    pad_flat,
    pool_docs,
    senter_labels_from_sent_starts,
    split_morph_label,
)


def doc(n: int, **kw) -> Doc:
    return Doc(words=[f"w{i}" for i in range(n)], spaces=[True] * n, **kw)


def build(name: str, **kw):
    return registry.resolve({"_use_": name, **kw})


def overfit(head, X, lengths, targets, steps=150, lr=0.05):
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss, n = head.loss(head(X, lengths), targets)
        (loss / n).backward()
        opt.step()
    head.eval()
    return head(X, lengths)


# --- registry / two-step build -----------------------------------------------------------------
@pytest.mark.parametrize("name", ["distnlp.TaggerHead.v1", "distnlp.NERHead.v1", "distnlp.TextcatHead.v1", "distnlp.TextcatMultilabelHead.v1"])
def test_registered_and_two_step(name):
    head = build(name, hidden_width=4, dropout=0.1)
    assert not head.is_initialized and len(list(head.parameters())) == 0
    with pytest.raises(RuntimeError, match="initialize"):
        head(torch.zeros(2, 3), [2])
    head.initialize(3, ["A", "B"])
    assert head.is_initialized and len(list(head.parameters())) > 0
    with pytest.raises(ValueError, match="shape"):
        head(torch.zeros(2, 5), [2])


def test_state_dict_round_trip():
    a = TaggerHead(hidden_width=8).initialize(6, ["X", "Y", "Z"])
    torch.nn.init.normal_(a.output.weight)
    b = TaggerHead(hidden_width=8).initialize(6, ["X", "Y", "Z"])
    b.load_state_dict(a.state_dict())
    X = torch.randn(5, 6)
    assert torch.equal(a.eval()(X), b.eval()(X))


# --- tagger ------------------------------------------------------------------------------------
def test_tagger_shapes_and_loss_is_sum_over_labelled():
    head = TaggerHead().initialize(4, ["A", "B", "C"])
    torch.nn.init.normal_(head.output.weight)
    X = torch.randn(6, 4)
    logits = head(X, [2, 4])
    assert logits.shape == (6, 3)
    targets = torch.tensor([0, IGNORE, 2, 1, IGNORE, 0])
    loss, n = head.loss(logits, targets)
    assert n == 4
    keep = targets != IGNORE
    expected = torch.nn.functional.cross_entropy(logits[keep], targets[keep], reduction="sum")
    assert torch.allclose(loss, expected)
    # sums add up: two halves == whole
    l1, n1 = head.loss(logits[:3], targets[:3])
    l2, n2 = head.loss(logits[3:], targets[3:])
    assert n1 + n2 == n and torch.allclose(l1 + l2, loss)


def test_tagger_loss_without_labels_is_attached_zero():
    head = TaggerHead().initialize(4, ["A", "B"])
    logits = head(torch.randn(3, 4))
    loss, n = head.loss(logits, torch.full((3,), IGNORE))
    assert n == 0 and loss.item() == 0.0
    loss.backward()
    assert head.output.weight.grad is not None and torch.all(head.output.weight.grad == 0)


def test_label_smoothing_changes_loss():
    X, t = torch.randn(4, 3), torch.tensor([0, 1, 0, 1])
    a = TaggerHead().initialize(3, ["A", "B"])
    torch.nn.init.normal_(a.output.weight)
    b = TaggerHead(label_smoothing=0.2).initialize(3, ["A", "B"])
    b.load_state_dict(a.state_dict())
    assert not torch.allclose(a.loss(a(X), t)[0], b.loss(b(X), t)[0])


def test_encode_token_labels_ignores_missing():
    docs = [doc(3, tags=["A", None, "Q"]), doc(2), doc(1, tags=["B"])]
    ids = encode_token_labels(docs, lambda d: d.tags, ["A", "B"])
    assert ids.tolist() == [0, IGNORE, IGNORE, IGNORE, IGNORE, 1]
    with pytest.raises(ValueError, match="labels for"):
        encode_token_labels([doc(2, tags=["A"])], lambda d: d.tags, ["A"])


@pytest.mark.parametrize("hidden", [0, 16])
def test_tagger_overfits(hidden):
    torch.manual_seed(0)
    # 30 random points in 32 dimensions: linearly separable, so even the bare softmax fits
    X = torch.randn(30, 32)
    targets = torch.randint(0, 5, (30,))
    targets[::7] = IGNORE
    head = TaggerHead(hidden_width=hidden).initialize(32, list("ABCDE"))
    pred = head.predict(overfit(head, X, [12, 18], targets, steps=200))
    keep = targets != IGNORE
    assert torch.equal(pred[keep], targets[keep])


def test_senter_forces_first_token():
    head = TaggerHead().initialize(3, ["I", "S"])
    with torch.no_grad():
        head.output.bias.copy_(torch.tensor([5.0, 0.0]))  # always "I"
    logits = head(torch.randn(7, 3))
    pred = head.predict(logits, [3, 0, 4], first_label="S")
    assert pred.tolist() == [1, 0, 0, 1, 0, 0, 0]
    assert senter_labels_from_sent_starts([True, False, None]) == ["S", "I", None]


def test_morph_labels():
    assert morph_label("NOUN", "Number=Sing") == "POS=NOUN|Number=Sing"
    assert morph_label("PUNCT", "_") == "POS=PUNCT"
    assert morph_label("", "Case=Nom") == "Case=Nom"
    assert split_morph_label("POS=NOUN|Number=Sing|Case=Nom") == ("NOUN", "Number=Sing|Case=Nom")


# --- NER -----------------------------------------------------------------------------------------
def test_ner_targets_and_loss():
    head = NERHead().initialize(4, ["PER", "LOC"])
    assert head.labels[0] == "O" and head.entity_labels == ["LOC", "PER"]
    docs = [doc(3, ent_spans=[(0, 2, "PER")]), doc(2), doc(2, ent_spans=[(1, 2, "MISC")])]
    t = head.targets(docs)
    ix = head.label_to_id
    assert t.tolist() == [ix["B-PER"], ix["L-PER"], ix["O"], IGNORE, IGNORE, ix["O"], IGNORE]
    scores = head(torch.randn(7, 4), [3, 2, 2])
    loss, n = head.loss(scores, t)
    assert n == 4 and loss.shape == ()
    with pytest.raises(ValueError, match="entity labels"):
        NERHead().initialize(4, ["B-PER"])


def test_pad_flat():
    X = torch.arange(10.0).reshape(5, 2)
    out = pad_flat(X, [2, 0, 3], fill=-1.0)
    assert out.shape == (3, 3, 2)
    assert out[0, :2].tolist() == [[0, 1], [2, 3]] and out[0, 2].tolist() == [-1, -1]
    assert out[2].tolist() == [[4, 5], [6, 7], [8, 9]]


def test_ner_overfits():
    torch.manual_seed(0)
    docs = [
        doc(6, ent_spans=[(0, 2, "PER"), (3, 4, "LOC")]),
        doc(5, ent_spans=[(1, 4, "LOC")]),
        doc(4, ent_spans=[]),
        doc(3, ent_spans=None),
    ]
    lengths = [len(d) for d in docs]
    X = torch.randn(sum(lengths), 12)
    head = NERHead(hidden_width=16).initialize(12, ["PER", "LOC"])
    scores = overfit(head, X, lengths, head.targets(docs), steps=200)
    pred = head.predict(scores, lengths)
    assert pred[:3] == [d.ent_spans for d in docs[:3]]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=1, max_size=6), st.integers(0, 2**31 - 1), st.floats(0.1, 20.0))
def test_ner_decoding_is_always_well_formed(lengths, seed, scale):
    head = NERHead().initialize(4, ["PER", "LOC", "ORG"])
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(sum(lengths), len(head.labels), generator=g) * scale
    decoded = head.decode(scores, lengths)
    for n, seq, spans in zip(lengths, decoded, head.predict(scores, lengths)):
        tags = [head.labels[i] for i in seq]
        assert spans_from_biluo_tags(tags, strict=True) == spans  # raises if ill formed
        assert biluo_tags_from_spans(n, spans) == tags


# --- textcat -------------------------------------------------------------------------------------
def test_pool_docs():
    X = torch.tensor([[1.0, 2.0], [3.0, -4.0], [5.0, 6.0]])
    assert pool_docs(X, [2, 0, 1]).tolist() == [[2.0, -1.0], [0.0, 0.0], [5.0, 6.0]]
    mm = pool_docs(X, [2, 0, 1], "mean_max")
    assert mm.tolist() == [[2.0, -1.0, 3.0, 2.0], [0.0, 0.0, 0.0, 0.0], [5.0, 6.0, 5.0, 6.0]]


def test_textcat_exclusive_loss():
    head = TextcatHead(pooling="mean_max").initialize(3, ["pos", "neg"])
    torch.nn.init.normal_(head.output.weight)
    docs = [doc(2, cats={"pos": 1.0, "neg": 0.0}), doc(1), doc(3, cats={"neg": 1.0})]
    t = head.targets(docs)
    assert t[0].tolist() == [1.0, 0.0] and all(math.isnan(v) for v in t[1].tolist()) and t[2].tolist() == [0.0, 1.0]
    logits = head(torch.randn(6, 3), [2, 1, 3])
    assert logits.shape == (3, 2)
    loss, n = head.loss(logits, t)
    assert n == 2
    expected = torch.nn.functional.cross_entropy(logits[[0, 2]], torch.tensor([0, 1]), reduction="sum")
    assert torch.allclose(loss, expected)
    probs = head.predict(logits)
    assert torch.allclose(probs.sum(1), torch.ones(3))
    assert set(head.cats(probs)[0]) == {"pos", "neg"}


def test_textcat_multilabel_loss_ignores_missing():
    head = build("distnlp.TextcatMultilabelHead.v1").initialize(3, ["a", "b", "c"])
    docs = [doc(2, cats={"a": 1.0, "b": 0.0}), doc(1), doc(1, cats={"c": 1.0, "a": None})]
    t = head.targets(docs)
    logits = torch.randn(3, 3, requires_grad=True)
    loss, n = head.loss(logits, t)
    assert n == 2
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected = bce(logits[0, :2], torch.tensor([1.0, 0.0]), reduction="sum") + bce(logits[2, 2], torch.tensor(1.0), reduction="sum")
    assert torch.allclose(loss, expected)
    loss.backward()
    assert torch.all(logits.grad[1] == 0) and logits.grad[0, 2] == 0 and logits.grad[2, 0] == 0
    assert head.loss(logits, torch.full((3, 3), math.nan))[1] == 0


@pytest.mark.parametrize("exclusive", [True, False])
def test_textcat_overfits(exclusive):
    torch.manual_seed(0)
    lengths = [3, 5, 2, 4, 6, 1]
    X = torch.randn(sum(lengths), 8)
    labels = ["a", "b", "c"]
    gold = [0, 1, 2, 1, 0, 2]
    docs = [doc(n, cats={lab: float(i == g) for i, lab in enumerate(labels)}) for n, g in zip(lengths, gold)]
    head = TextcatHead(hidden_width=16, exclusive_classes=exclusive).initialize(8, labels)
    probs = head.predict(overfit(head, X, lengths, head.targets(docs), steps=200))
    assert probs.argmax(1).tolist() == gold
    if not exclusive:
        assert torch.equal(probs > 0.5, torch.nn.functional.one_hot(torch.tensor(gold), 3).bool())
