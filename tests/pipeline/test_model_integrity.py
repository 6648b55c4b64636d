"""A saved model carries its integrity: meta.json lists each file's size and SHA-256, loading checks
them and refuses non-finite weights, each time with one line naming the file (and the tensor).
The same holds for `distnlp pretrain`'s .bin files (checksums inside the file), which
`initialize.init_tok2vec` loads."""
from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load, load_file, save, save_file

import distnlp
from distnlp.cli.compose import compose_config
from distnlp.cli.main import main
from distnlp.errors import CheckpointError, ConfigError, DistnlpError, ModelError
from distnlp.pipeline.integrity import check_finite, check_finite_array
from distnlp.pipeline.pipeline import WEIGHTS_FILE, Pipeline
from distnlp.pretrain.loop import tok2vec_bytes
from distnlp.pipeline.pretrained_weights import load_pretrained_tok2vec, weights_metadata
from distnlp.hashed_files import file_sha256

OVERRIDES = ["nlp.pipeline=[tagger]", "encoder.width=16"]
LABELS = {"tagger": ["A", "B"]}


@pytest.fixture(scope="module")
def nlp() -> Pipeline:
    torch.manual_seed(0)
    return Pipeline(compose_config(OVERRIDES), LABELS)


@pytest.fixture
def model(nlp: Pipeline, tmp_path: Path) -> Path:
    nlp.to_disk(tmp_path / "model-best")
    return tmp_path / "model-best"


def _meta(model: Path) -> dict:
    return json.loads((model / "meta.json").read_text())


def _rehash(model: Path, name: str) -> None:
    """meta.json made to match `name` as it is now (as if it had been saved so)."""
    meta = _meta(model)
    meta["checksums"][name] = {"size": (model / name).stat().st_size, "sha256": file_sha256(model / name)}
    (model / "meta.json").write_text(json.dumps(meta))


def _one_line_error(exc: pytest.ExceptionInfo, *fragments: str) -> str:
    text = str(exc.value)
    assert "\n" not in text, text
    for fragment in fragments:
        assert fragment in text, text
    return text


def test_meta_lists_size_and_sha256_of_every_file_written(nlp: Pipeline, model: Path) -> None:
    meta = _meta(model)
    assert sorted(meta["checksums"]) == ["config.json", "labels.json", "model.safetensors"]
    for name, entry in meta["checksums"].items():
        assert entry == {"size": (model / name).stat().st_size, "sha256": file_sha256(model / name)}
    # hashed while writing: the streamed weights are the bytes save_file writes
    save_file({k: v.detach().cpu().contiguous() for k, v in nlp.state_dict().items()}, str(model.parent / "ref.safetensors"))
    assert (model.parent / "ref.safetensors").read_bytes() == (model / WEIGHTS_FILE).read_bytes()
    assert distnlp.load(model).pipe_names == ["tagger"]


def test_a_flipped_byte_in_the_weights_is_refused_in_one_line(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = model / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01  # inside a tensor: the file still parses, one weight is different
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError) as exc:
        distnlp.load(model)
    _one_line_error(exc, f"{weights}: SHA-256 differs from meta.json", "re-save the model")
    # the CLI prints it as one line too
    assert main(["evaluate", str(model), str(tmp_path / "no-corpus")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model.safetensors: SHA-256 differs" in err


def test_non_finite_weights_are_refused_naming_the_tensor(model: Path) -> None:
    weights = model / WEIGHTS_FILE
    state = load_file(str(weights))
    name = next(k for k, v in sorted(state.items()) if v.is_floating_point() and v.numel() > 1)
    state[name].view(-1)[1] = float("nan")
    save_file(state, str(weights))
    _rehash(model, WEIGHTS_FILE)  # checksums agree: only the finite check can catch it
    with pytest.raises(ModelError) as exc:
        Pipeline.from_disk(model)
    _one_line_error(exc, str(weights), f"tensor {name!r} holds 1 non-finite value(s)")
    state[name].view(-1)[1] = float("inf")
    save_file(state, str(weights))
    _rehash(model, WEIGHTS_FILE)
    with pytest.raises(ModelError, match="non-finite"):
        distnlp.load(model)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_the_finite_check_finds_every_nan_and_inf(dtype: torch.dtype) -> None:
    """The check's fast path (min/max, no boolean copy) misses none, wherever it sits."""
    check_finite({"empty": torch.empty(0, dtype=dtype), "ints": torch.arange(5), "ok": torch.randn(300).to(dtype)}, "f")
    for bad in (float("nan"), float("inf"), -float("inf")):
        for pos in (0, 137, 299):
            t = torch.randn(3, 100).to(dtype)
            t.view(-1)[pos] = bad
            with pytest.raises(ModelError, match=r"f: tensor 'w' holds 1 non-finite"):
                check_finite({"ok": torch.zeros(2, dtype=dtype), "w": t.t()}, "f")  # transposed: not contiguous
            arr = t.float().numpy()
            with pytest.raises(ModelError, match=r"vectors.safetensors: tensor 'vectors' holds 1 non-finite"):
                check_finite_array(arr, "vectors.safetensors", "vectors")
    check_finite_array(np.zeros((0, 4), dtype=np.float32), "v", "vectors")


def test_a_truncated_file_is_refused_by_its_size(model: Path) -> None:
    for name in ("model.safetensors", "labels.json"):
        path = model / name
        full = path.read_bytes()
        path.write_bytes(full[: len(full) - 7])
        with pytest.raises(ModelError) as exc:
            distnlp.load(model)
        _one_line_error(exc, f"{path}: {len(full) - 7:,} bytes, meta.json says {len(full):,}", "truncated")
        path.write_bytes(full)
    (model / "labels.json").unlink()  # a listed file missing altogether
    with pytest.raises(CheckpointError, match="labels.json is missing"):
        distnlp.load(model)


def test_models_saved_before_checksums_still_load(nlp: Pipeline, model: Path) -> None:
    meta = _meta(model)
    del meta["checksums"]
    (model / "meta.json").write_text(json.dumps(meta))
    loaded = distnlp.load(model)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in nlp.state_dict().items())
    (model / "meta.json").unlink()  # older still: no meta.json at all
    assert distnlp.load(model).pipe_names == ["tagger"]
    # still refused without checksums: non-finite weights
    state = load_file(str(model / WEIGHTS_FILE))
    next(v for v in state.values() if v.is_floating_point()).view(-1)[0] = float("nan")
    save_file(state, str(model / WEIGHTS_FILE))
    with pytest.raises(ModelError, match="non-finite"):
        distnlp.load(model)


def test_a_saved_vectors_table_is_checked_too(tmp_path: Path) -> None:
    from distnlp.vectors import Vectors

    words = ["the", "cat", "sat"]
    data = np.arange(24, dtype=np.float32).reshape(3, 8) / 24
    config = compose_config(OVERRIDES + ["encoder.model.embed.include_static_vectors=true"])
    Pipeline(config, LABELS, Vectors(words, data)).to_disk(tmp_path / "m")
    model = tmp_path / "m"
    assert {"vectors/vectors.safetensors", "vectors/words.txt", "vectors/vectors.json"} <= set(_meta(model)["checksums"])
    assert distnlp.load(model).vectors.words == words
    table = model / "vectors" / "vectors.safetensors"
    tensors = load_file(str(table))
    tensors["vectors"][1, 2] = float("nan")
    save_file(tensors, str(table))
    with pytest.raises(ModelError, match=r"vectors\.safetensors: SHA-256 differs"):
        distnlp.load(model)
    _rehash(model, "vectors/vectors.safetensors")
    with pytest.raises(ModelError) as exc:
        distnlp.load(model)
    _one_line_error(exc, f"{table}: tensor 'vectors' holds 1 non-finite value(s)")


def _mutations(rng: random.Random, data: bytes, n: int) -> list[bytes]:
    """n copies of `data`, each with one change at a random offset: a flipped bit or a new byte."""
    out = []
    for i in range(n):
        buf = bytearray(data)
        pos = rng.randrange(len(buf))
        if i % 2:
            buf[pos] ^= 1 << rng.randrange(8)
        else:
            buf[pos] = rng.choice([b for b in range(256) if b != buf[pos]])
        out.append(bytes(buf))
    return out


def test_fuzz_every_change_to_a_saved_file_is_refused_or_harmless(nlp: Pipeline, model: Path) -> None:
    """60 seeded one-byte changes to each file meta.json lists: each load raises a one-line
    DistnlpError or loads exactly the saved model (a change to meta.json that no check depends
    on, e.g. in `distnlp_version`); never another exception, never different weights."""
    rng = random.Random(1234)
    expected = {k: v.clone() for k, v in nlp.state_dict().items()}
    refused = harmless = 0
    for name in _meta(model)["files"]:
        path = model / name
        original = path.read_bytes()
        for changed in _mutations(rng, original, 60):
            path.write_bytes(changed)
            try:
                loaded = Pipeline.from_disk(model)
            except DistnlpError as exc:
                assert "\n" not in str(exc), f"{name}: {exc!r}"
                refused += 1
                continue
            # only meta.json may change without being refused, and only where the weights are the same
            assert name == "meta.json", f"{name}: a changed file loaded"
            state = loaded.state_dict()
            assert state.keys() == expected.keys() and all(torch.equal(state[k], v) for k, v in expected.items())
            assert loaded.labels == nlp.labels
            harmless += 1
        path.write_bytes(original)
    assert refused >= 3 * 60 and refused + harmless == 4 * 60


# --- pretrain .bin files (initialize.init_tok2vec) ---------------------------------------------


@pytest.fixture
def tok2vec_bin(nlp: Pipeline, tmp_path: Path) -> Path:
    path = tmp_path / "model-last.bin"
    path.write_bytes(tok2vec_bytes(SimpleNamespace(tok2vec=nlp.encoder), None))
    return path


def _fresh() -> Pipeline:
    return Pipeline(compose_config(OVERRIDES), LABELS)


def test_pretrain_bin_carries_and_checks_its_checksum(nlp: Pipeline, tok2vec_bin: Path) -> None:
    target = _fresh()
    assert load_pretrained_tok2vec(target, tok2vec_bin, {})
    assert all(torch.equal(target.encoder.state_dict()[k], v) for k, v in nlp.encoder.state_dict().items())
    data = bytearray(tok2vec_bin.read_bytes())
    data[len(data) // 2] ^= 0x10
    tok2vec_bin.write_bytes(bytes(data))
    with pytest.raises(ConfigError) as exc:
        load_pretrained_tok2vec(_fresh(), tok2vec_bin, {})
    _one_line_error(exc, "initialize.init_tok2vec", f"{tok2vec_bin}: SHA-256 of the weights differs")
    tok2vec_bin.write_bytes(bytes(data[:-5]))  # truncated: safetensors refuses it, in one line
    with pytest.raises(ConfigError) as exc:
        load_pretrained_tok2vec(_fresh(), tok2vec_bin, {})
    _one_line_error(exc, str(tok2vec_bin), "truncated or damaged")


def test_pretrain_bin_with_non_finite_weights_is_refused(tok2vec_bin: Path) -> None:
    state = load(tok2vec_bin.read_bytes())
    name = sorted(k for k, v in state.items() if v.is_floating_point())[0]
    state[name].view(-1)[0] = float("nan")
    # the checksum agrees with the NaN: only the finite check can catch it
    tok2vec_bin.write_bytes(save(state, metadata={"format": "distnlp.tok2vec", "version": "1", **weights_metadata(state)}))
    with pytest.raises(ConfigError) as exc:
        load_pretrained_tok2vec(_fresh(), tok2vec_bin, {})
    _one_line_error(exc, str(tok2vec_bin), f"tensor {name!r} holds 1 non-finite value(s)")


def test_pretrain_bin_written_before_checksums_still_loads(nlp: Pipeline, tok2vec_bin: Path) -> None:
    state = load(tok2vec_bin.read_bytes())
    tok2vec_bin.write_bytes(save(state, metadata={"format": "distnlp.tok2vec", "version": "1"}))
    target = _fresh()
    load_pretrained_tok2vec(target, tok2vec_bin, {})
    assert all(torch.equal(target.encoder.state_dict()[k], v) for k, v in nlp.encoder.state_dict().items())


def test_fuzz_pretrain_bin(nlp: Pipeline, tok2vec_bin: Path) -> None:
    rng = random.Random(4321)
    expected = nlp.encoder.state_dict()
    target = _fresh()
    refused = 0
    for changed in _mutations(rng, tok2vec_bin.read_bytes(), 80):
        tok2vec_bin.write_bytes(changed)
        try:
            load_pretrained_tok2vec(target, tok2vec_bin, {})
        except DistnlpError as exc:
            assert "\n" not in str(exc), repr(exc)
            refused += 1
            continue
        # loaded: only where the change left the weights as written (e.g. the header's padding)
        assert all(torch.equal(target.encoder.state_dict()[k], v) for k, v in expected.items())
    assert refused >= 60
