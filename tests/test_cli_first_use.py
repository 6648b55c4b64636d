"""What a user meets first: `distnlp --version`, and progress bars on long commands that show on
a terminal and stay out of logs (no \\r-redrawn lines in a file or a CI job)."""
from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

import distnlp
from distnlp.cli.compose import DEMO_DATA
from distnlp.progress import progress_enabled

ROOT = Path(__file__).resolve().parents[1]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from distnlp.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"distnlp {distnlp.__version__}"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("ci, stream, shown", [("", _Terminal(), True), ("true", _Terminal(), False), ("", io.StringIO(), False)])
def test_progress_only_on_a_terminal_outside_ci(monkeypatch: pytest.MonkeyPatch, ci: str, stream: io.StringIO, shown: bool) -> None:
    monkeypatch.setenv("CI", ci)
    assert progress_enabled(stream) is shown


def _convert(out: Path, stderr: int | None) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "distnlp.cli.main", "convert", str(DEMO_DATA / "demo-dev.conllu"), str(out)],
                          stdout=subprocess.PIPE, stderr=stderr, env=env, timeout=120)


def test_convert_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0 columns wide
    try:
        done = _convert(tmp_path / "tty", stderr=secondary)
    finally:
        os.close(secondary)
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # EIO: the terminal's other end is closed
            break
        if not chunk:
            break
        seen += chunk
    os.close(primary)
    assert done.returncode == 0 and b"convert:" in seen and b"doc" in seen
    logged = _convert(tmp_path / "log", stderr=subprocess.PIPE)
    assert logged.returncode == 0 and b"convert:" not in logged.stderr and b"\r" not in logged.stderr
    docs = json.loads((DEMO_DATA / "dev" / "meta.json").read_text())["counts"]["docs"]  # the shipped dev is that file converted
    assert f"converted {docs} docs".encode() in logged.stdout
