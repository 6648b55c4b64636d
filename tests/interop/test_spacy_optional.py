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
        "distnlp.cli.main._build_parser(); print('spacy' in sys.modules, 'thinc' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
