"""Reading source files line by line, with `file:line` positions for every error.

Files are read as bytes and decoded per line, so invalid UTF-8 is reported at the line where it
occurs instead of as a bare UnicodeDecodeError somewhere in a large file.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ...errors import CorpusError


def where(path: str | Path, line: int | None = None) -> str:
    """The `file:line` prefix of an error message."""
    return f"{path}:{line}" if line is not None else str(path)


def iter_lines(path: str | Path, *, keepends: bool = False) -> Iterator[tuple[int, str]]:
    """(1-based line number, decoded line) for every line; line terminators removed unless keepends."""
    p = Path(path)
    try:
        f = open(p, "rb")
    except FileNotFoundError:
        raise CorpusError(str(path), "file not found", "check the path") from None
    except IsADirectoryError:
        raise CorpusError(str(path), "is a directory, not a file", "pass the files inside it") from None
    with f:
        for lineno, raw in enumerate(f, 1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # UTF-8 byte order mark, as written by some Windows editors
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise CorpusError(
                    where(path, lineno),
                    f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})",
                    "re-encode the file as UTF-8, e.g. with iconv -f latin1 -t utf-8",
                ) from None
            if not keepends:
                line = line.rstrip("\r\n")
            yield lineno, line
