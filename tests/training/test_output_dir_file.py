"""training.output_dir that is a file (or under one): one line naming the key, nothing written."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from distnlp.errors import ConfigError
from distnlp.training.run_identity import prepare_output_dir


@pytest.mark.parametrize("below", [False, True])
def test_output_dir_that_is_a_file(tmp_path: Path, below: bool) -> None:
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    target = file / "run" if below else file
    with pytest.raises(ConfigError, match=r"^training\.output_dir: .*notes\.txt.* not a directory"):
        prepare_output_dir({"training": {}}, "training", target, resume=False, overwrite=True)
    assert file.read_text() == "mine"  # untouched, even with overwrite


def test_the_cli_says_it_in_one_line(tmp_path: Path) -> None:
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    done = subprocess.run([sys.executable, "-m", "distnlp.cli.main", "train", f"training.output_dir={file}", "training.max_steps=1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: training.output_dir:") and "is a file" in lines[-1], done.stderr[-2000:]
    assert file.read_text() == "mine"
