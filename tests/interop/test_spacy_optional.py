"""spaCy stays optional: importing distnlp, its CLI, converters, training and loading code never
imports spacy (it is imported only when a .spacy file, to_spacy, the component or config
translation is used)."""
from __future__ import annotations

import subprocess
import sys


def test_distnlp_does_not_import_spacy() -> None:
    code = (
        "import sys, distnlp, distnlp.cli.main, distnlp.data.convert, distnlp.pretrain.text_stream, "
        "distnlp.pipeline.pipeline, distnlp.training.loop, distnlp.interop.to_spacy, distnlp.interop.spacy_config; "
        "[distnlp.cli.main.build_parser(c) for c in distnlp.cli.main.COMMANDS]; print('spacy' in sys.modules, 'thinc' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


def test_spacy_features_without_spacy_say_how_to_install_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "train.spacy").write_bytes(b"\x00")
    code = (
        "import sys; sys.modules['spacy'] = None; from distnlp.cli.main import main; "
        f"sys.exit(main(['convert', {str(tmp_path / 'train.spacy')!r}, {str(tmp_path / 'out')!r}]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1
    assert "needs spaCy, which is not installed (pip install 'distnlp[spacy]')" in done.stderr
    assert "Traceback" not in done.stderr
