"""`distnlp --help` and `--version` import only the command line, not the commands' modules:
torch, pyarrow and Hydra come in with the command being run (cli/main.py's table)."""
from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "pyarrow", "hydra", "ray")


def _imported_after(code: str) -> list[str]:
    probe = f"import sys; {code}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()


def test_listing_the_commands_imports_none_of_them() -> None:
    assert _imported_after("from distnlp.cli.main import build_parser; build_parser().format_help()") == []


def test_a_command_brings_its_own_imports() -> None:
    assert "torch" in _imported_after("from distnlp.cli.main import build_parser; build_parser('train')")
