"""Config composition, registry references and validation errors (`<path>: <problem> (<fix>)`)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from distnlp import registry
from distnlp.cli.compose import compose_config
from distnlp.config import validate_config
from distnlp.errors import ConfigError

CONF = Path(__file__).resolve().parents[2] / "conf"


def compose_and_validate(overrides: list[str]) -> dict:
    config = compose_config(overrides)
    validate_config(config)
    return config


def test_default_config_composes_and_validates() -> None:
    config = compose_and_validate([])
    assert config["encoder"]["model"]["_use_"] == "distnlp.Tok2Vec.v1"
    assert config["components"]["tagger"]["listen"] == "encoder"
    assert Path(config["corpus"]["train"]).is_absolute()


@pytest.mark.parametrize(
    "overrides",
    [
        ["pipeline=independent"],
        ["debug=default"],
        ["experiment=ewt_cnn"],
        ["training.optimizer.learn_rate={_use_: distnlp.warmup_linear.v1, initial_rate: 0.001, warmup_steps: 10, total_steps: 100}"],
        ["components.ner.grad_factor={_use_: distnlp.frozen_then.v1, frozen_steps: 100, value: 1.0}"],
    ],
)
def test_shipped_variants_validate(overrides: list[str]) -> None:
    compose_and_validate(overrides)


def test_every_shipped_group_option_composes() -> None:
    for group_dir in sorted(p for p in CONF.iterdir() if p.is_dir()):
        for option in sorted(group_dir.glob("*.yaml")):
            compose_and_validate([f"{group_dir.name}={option.stem}"])


def test_independent_setup_gives_each_head_its_own_embedding() -> None:
    config = compose_and_validate(["pipeline=independent"])
    for name in ("tagger", "lemmatizer", "ner"):
        comp = config["components"][name]
        assert comp["listen"] is None
        assert comp["embed"]["_use_"] == "distnlp.Tok2Vec.v1"


@pytest.mark.parametrize(
    ("overrides", "path", "words"),
    [
        (["training.max_stpes=5"], "training.max_stpes", ["unknown key", "max_steps"]),
        (["encoder=tok2vek"], "encoder", ["tok2vec"]),
        (["training.max_steps=abc"], "training.max_steps", ["expected int"]),
        (["training.optimizer.learn_rate=???"], "training.optimizer.learn_rate", ["missing"]),
        (["encoder.model.embed._use_=distnlp.MultiHashEmbd.v1"], "encoder.model.embed._use_", ["distnlp.MultiHashEmbed.v1"]),
        (["encoder.model.encode.dept=3"], "", ["unknown"]),
        (["components.ner.listen=tok2vec"], "components.ner.listen", ["no embedding component", "listen: encoder"]),
        (["components.ner.factory=nerr"], "components.ner.factory", ["'ner'"]),
        (["components.tagger.grad_factor=high"], "components.tagger.grad_factor", ["number or a schedule"]),
        (["components.lemmatizer.backoff=lemma"], "components.lemmatizer.backoff", ["unknown backoff", "orth"]),
        (["components.lemmatizer.top_k=0"], "components.lemmatizer.top_k", ["at least 1"]),
    ],
)
def test_errors_name_the_path_and_fix(overrides: list[str], path: str, words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        compose_and_validate(overrides)
    message = str(info.value)
    if path:
        assert message.startswith(f"{path}:"), message
    for word in words:
        assert word in message, message
    assert "(" in message and message.endswith(")"), message


def test_unknown_registered_argument_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^encoder\.model\.encode\.dept: unknown argument .*depth"):
        compose_and_validate(["+encoder.model.encode.dept=3"])


def test_code_file_registers_user_names(tmp_path: Path) -> None:
    code = tmp_path / "my_code.py"
    code.write_text(
        "from distnlp.registry import schedules\n"
        "@schedules('my.half.v1')\n"
        "def half(value: float):\n"
        "    return lambda step: value / 2\n"
    )
    config = compose_and_validate([f"code={code}", "components.ner.grad_factor={_use_: my.half.v1, value: 1.0}"])
    schedule = registry.resolve(config["components"]["ner"]["grad_factor"])
    assert schedule(0) == 0.5


def test_missing_code_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^code: file not found"):
        compose_and_validate([f"code={tmp_path / 'nope.py'}"])


def test_cli_config_show_and_validate() -> None:
    out = subprocess.run([sys.executable, "-m", "distnlp.cli.main", "config", "show", "training.max_steps=7"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "max_steps: 7" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "distnlp.cli.main", "config", "validate", "training.max_stpes=7"], capture_output=True, text=True)
    assert bad.returncode == 1
    assert "training.max_stpes: unknown key" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_pipeline_package_does_not_import_ray_or_hydra() -> None:
    code = "import sys, distnlp.pipeline.pipeline, distnlp.training.loop; bad=[m for m in ('ray','hydra','omegaconf') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
