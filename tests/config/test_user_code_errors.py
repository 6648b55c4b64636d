"""A broken `code=` file is reported at its own line (file:line: message), not as a deep traceback."""
from __future__ import annotations

from pathlib import Path

import pytest

from distnlp import registry
from distnlp.errors import ConfigError


@pytest.mark.parametrize(
    "source, line, message",
    [
        ("import os\n\ndef f():\n    return undefined_name\n\nf()\n", 4, "NameError: name 'undefined_name' is not defined"),
        ("x = 1\ny = (\n", 2, "SyntaxError: '(' was never closed"),
        ("import json\njson.loads('{')\n", 2, "JSONDecodeError"),  # raised deep inside the stdlib
    ],
)
def test_import_error_names_the_user_line(tmp_path: Path, source: str, line: int, message: str) -> None:
    path = tmp_path / f"user_{line}_{len(source)}.py"
    path.write_text(source)
    with pytest.raises(ConfigError) as info:
        registry.import_code(path)
    text = str(info.value)
    assert text.startswith(f"code: {path}:{line}: ") and message in text, text
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no chained traceback
