"""`distnlp init config --from-spacy`: spaCy's guide configs and `spacy init config` outputs
translate into overlays that `distnlp train --config-dir DIR experiment=NAME` trains; settings
without an equivalent are listed with their config path."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

pytest.importorskip("spacy")

from distnlp.cli.compose import DEMO_DATA  # noqa: E402
from distnlp.cli.main import main  # noqa: E402
from distnlp.data.convert import write_corpus  # noqa: E402
from distnlp.data.stream import read_docs  # noqa: E402
from tests.pipeline.conftest import first_sentences  # noqa: E402

CONFIGS = Path(__file__).parent / "spacy_configs"
TRANSFORMER = ("transformer", "transformer_sent_spans", "init_ner_gpu", "init_tagger_parser_ner_gpu", "curated_transformer")
# small and fast on a shared CPU: the overlay's structure is what is under test, not its widths
SMALL_TOK2VEC = ["encoder.width=16", "encoder.model.embed.width=16", "encoder.model.encode.width=16",
                 "encoder.model.encode.depth=1", "encoder.model.embed.rows=[64,64,64,64]"]
SMALL_TRF = ["encoder.name=distnlp:tiny-bert", "encoder.model.from_config=true"]


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    docs = [d for d in (first_sentences(d, 2) for d in read_docs(DEMO_DATA / "train")) if d.ent_spans and len(d) <= 60][:4]
    for i, doc in enumerate(docs):  # for textcat and textcat_multilabel
        doc.cats = {"POS": float(i % 2), "NEG": float(1 - i % 2)}
    out = tmp_path_factory.mktemp("corpus") / "tiny"
    write_corpus(docs, out, fmt="conllu", sources=[])
    return out


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _translate(name: str, conf: Path, capsys: pytest.CaptureFixture[str]) -> tuple[dict, str]:
    out = conf / "experiment" / f"{name}.yaml"
    assert main(["init", "config", "--from-spacy", str(CONFIGS / f"{name}.cfg"), str(out)]) == 0
    return yaml.safe_load(out.read_text()), capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIGS.glob("*.cfg") if not p.stem.startswith("pretraining")))
def test_spacy_config_translates_and_trains(name: str, tmp_path: Path, tiny_corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "conf"
    overlay, _ = _translate(name, conf, capsys)
    overrides = [f"corpus.train={tiny_corpus}", f"corpus.dev={tiny_corpus}", f"training.output_dir={tmp_path / 'out'}",
                 "training.max_steps=2", "training.eval_frequency=2", "training.checkpoints_to_keep=0"]
    encoder = overlay.get("encoder")
    if name in TRANSFORMER:
        pooling = "distnlp.reduce_max.v1" if name == "curated_transformer" else "distnlp.reduce_mean.v1"
        assert encoder["factory"] == "transformer" and encoder["model"]["pooling"] == {"_use_": pooling}
        overrides += SMALL_TRF
    elif encoder is not None:
        overrides += SMALL_TOK2VEC
    listening = {n: c.get("listen") for n, c in overlay["components"].items()}
    if name == "independent_tok2vec" or name == "static_vectors":
        assert set(listening.values()) == {None}  # each head owns its embedding
        comp = next(iter(overlay["components"].values()))
        overrides += [f"components.{next(iter(overlay['components']))}.embed.embed.rows=[64,64,64,64]"]
        if name == "static_vectors":
            assert comp["embed"]["embed"]["include_static_vectors"] is True and comp["embed"]["embed"]["width"] == 128
            overrides.append(f"initialize.vectors={_vectors(tmp_path)}")
    elif name.startswith(("init_all", "init_textcat")):
        # spaCy's CPU textcat is a bag of words, without an embedding: distnlp gives it its own
        textcats = {n for n, c in overlay["components"].items() if c["factory"].startswith("textcat")}
        assert textcats and all(listening[n] is None for n in textcats)
        overrides += [f"components.{n}.embed.embed.rows=[64,64,64,64]" for n in textcats]
        own = set(textcats)
        if name == "init_all_components_cpu":
            # spaCy's default senter has its own small HashEmbedCNN (width 12, depth 1)
            senter = overlay["components"]["senter"]["embed"]
            assert senter["encode"]["width"] == 12 and senter["encode"]["depth"] == 1 and senter["embed"]["rows"] == [2000, 1000, 1000, 1000]
            own.add("senter")
            assert overlay["nlp"]["pipeline"] == ["tagger", "morphologizer", "senter", "parser", "trainable_lemmatizer", "ner", "textcat"]
            assert overlay["components"]["trainable_lemmatizer"]["factory"] == "lemmatizer"
        assert all((listening[n] is None) == (n in own) for n in listening)
    else:
        assert set(listening.values()) == {"encoder"}
    if name == "transformer":
        assert encoder["model"]["get_spans"] == {"_use_": "distnlp.doc_spans.v1"} and encoder["model"]["max_batch_items"] == 4096
    if name == "curated_transformer":
        assert encoder["name"] == "roberta-base" and overlay["components"]["ner"]["grad_factor"] == 0.5
        assert encoder["model"]["get_spans"] == {"_use_": "distnlp.strided_spans.v1", "window": 96, "stride": 64}
    if name == "init_tagger_parser_ner_gpu":
        assert overlay["training"]["accumulate_gradient"] == 3 and overlay["training"]["batcher"]["_use_"] == "distnlp.batch_by_padded.v1"
        assert "tolerance" not in overlay["training"]["batcher"]
        assert overlay["training"]["optimizer"]["learn_rate"]["_use_"] == "distnlp.warmup_linear.v1"
    assert main(["train", "--config-dir", str(conf), f"experiment={name}", *overrides]) == 0
    trained = list(json.loads((tmp_path / "out" / "model-last" / "labels.json").read_text()))
    assert trained == overlay["nlp"]["pipeline"]  # every translated component had labels and trained


def _vectors(tmp_path: Path) -> Path:
    from distnlp.vectors import init_vectors

    words = ["the", "a", "of", ",", ".", "and", "to", "in"]
    table = tmp_path / "vec.txt"
    table.write_text("".join(f"{w} {' '.join(str((i + j) % 5 / 5) for j in range(4))}\n" for i, w in enumerate(words)))
    init_vectors(table, tmp_path / "vectors")
    return tmp_path / "vectors"


@pytest.mark.parametrize("name,objective", [("pretraining", "characters"), ("pretraining_vectors", "vectors")])
def test_pretraining_block_translates_and_pretrains(name: str, objective: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import spacy
    from spacy.tokens import DocBin

    conf = tmp_path / "conf"
    overlay, _ = _translate(name, conf, capsys)
    pre = overlay["pretrain"]
    assert pre["objective"] == objective and pre["component"] == "encoder"
    assert pre["min_length"] == 5 and pre["max_length"] == 500 and pre["optimizer"]["use_averages"] is True
    assert pre["batcher"] == {"_use_": "distnlp.batch_by_words.v1", "size": 3000.0, "tolerance": 0.2, "discard_oversize": False}
    nlp = spacy.blank("en")
    raw = tmp_path / "raw.spacy"
    DocBin(docs=[nlp(f"This is raw sentence number {i} for pretraining a tok2vec .") for i in range(6)]).to_disk(raw)
    overrides = [f"corpus.raw_text={raw}", f"pretrain.output_dir={tmp_path / 'pre'}", "pretrain.max_steps=2", "pretrain.max_epochs=0",
                 "pretrain.batcher.size=40", *SMALL_TOK2VEC]
    if objective == "vectors":
        overrides.append(f"initialize.vectors={_vectors(tmp_path)}")
    assert main(["pretrain", "--config-dir", str(conf), f"experiment={name}", *overrides]) == 0
    assert (tmp_path / "pre" / "model-last.bin").exists()


UNTRANSLATABLE = """
[paths]
train = "corpus/train.spacy"

[corpora]

[corpora.train]
@readers = "spacy.Corpus.v1"
path = ${paths.train}
max_length = 300

[nlp]
lang = "de"
pipeline = ["tok2vec", "tagger", "morphologizer", "entity_ruler", "ner"]

[components]

[components.tok2vec]
factory = "tok2vec"

[components.tok2vec.model]
@architectures = "spacy.Tok2Vec.v2"

[components.tok2vec.model.embed]
@architectures = "spacy.MultiHashEmbed.v2"
width = 64
attrs = ["ORTH", "SHAPE"]
rows = [3000, 500]
include_static_vectors = false

[components.tok2vec.model.encode]
@architectures = "spacy.MishWindowEncoder.v2"
width = 64
depth = 2
window_size = 1

[components.tagger]
factory = "tagger"
label_smoothing = 0.1
neg_prefix = "NOT_"

[components.tagger.model]
@architectures = "spacy.Tagger.v2"

[components.tagger.model.tok2vec]
@architectures = "spacy-transformers.TransformerListener.v1"
grad_factor = 0.5

[components.morphologizer]
factory = "morphologizer"

[components.morphologizer.model]
@architectures = "spacy.Tagger.v2"

[components.morphologizer.model.tok2vec]
@architectures = "spacy.Tok2VecListener.v1"
width = 64

[components.entity_ruler]
factory = "entity_ruler"
overwrite_ents = true

[components.ner]
factory = "ner"
incorrect_spans_key = "incorrect"

[components.ner.model]
@architectures = "spacy.TransitionBasedParser.v2"
hidden_width = 64

[components.ner.model.tok2vec]
@architectures = "spacy.Tok2VecListener.v1"

[training]
frozen_components = ["tagger"]
max_steps = 0
max_epochs = -1
patience = 0

[training.optimizer]
@optimizers = "Adam.v1"
L2_is_weight_decay = false
L2 = 0.001

[training.optimizer.learn_rate]
@schedules = "cyclic_triangular.v1"
min_lr = 0.0001
max_lr = 0.001
period = 100

[training.score_weights]
tag_acc = 0.5
ents_f = 0.5
speed = 0.1
"""


def test_untranslatable_settings_are_listed_with_their_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "config.cfg"
    cfg.write_text(UNTRANSLATABLE)
    out = tmp_path / "conf" / "experiment" / "de.yaml"
    assert main(["init", "config", "--from-spacy", str(cfg), str(out)]) == 0
    err = capsys.readouterr().err
    header = out.read_text()
    for path in ("components.tok2vec.model.encode", "components.tagger.neg_prefix", "components.entity_ruler",
                 "components.ner.incorrect_spans_key", "components.ner.model.hidden_width", "training.frozen_components",
                 "training.optimizer.learn_rate", "training.score_weights.speed", "corpora.train.path", "training.max_epochs", "training.max_steps"):
        assert f"not translated: {path}" in err, path
        assert f"#   {path}" in header, path
    assert "distnlp convert corpus/train.spacy DIR" in err
    overlay = yaml.safe_load(header)
    assert overlay["nlp"] == {"lang": "de", "pipeline": ["tagger", "morphologizer", "ner"]}
    # spaCy splits longer training docs into sentences: distnlp cuts them at sentence boundaries
    assert overlay["corpus"] == {"split_length": 300} and "corpora.train.max_length" not in err
    assert overlay["encoder"]["model"]["embed"]["attrs"] == ["ORTH", "SHAPE"] and overlay["encoder"]["width"] == 64
    tagger = overlay["components"]["tagger"]
    assert tagger["grad_factor"] == 0.5 and tagger["model"]["label_smoothing"] == 0.1
    assert overlay["training"]["optimizer"]["algorithm"] == "adam" and overlay["training"]["optimizer"]["weight_decay"] == 0.001
    assert overlay["training"]["max_steps"] == 20000 and overlay["training"]["max_epochs"] == 0 and overlay["training"]["score_weights"] == {"tag_acc": 0.5, "ents_f": 0.5}


def test_unreadable_spacy_config_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "broken.cfg"
    cfg.write_text("[nlp\nlang = en\n")
    assert main(["init", "config", "--from-spacy", str(cfg), str(tmp_path / "c" / "experiment" / "x.yaml")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "broken.cfg" in err and "\n" not in err
    assert main(["init", "config", "--from-spacy", str(tmp_path / "missing.cfg"), str(tmp_path / "c" / "experiment" / "x.yaml")]) == 1
    assert "spaCy config file not found" in capsys.readouterr().err


def test_missing_config_dir_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--config-dir", str(tmp_path / "nope"), "experiment=x"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --config-dir:") and "nope" in err and "\n" not in err
