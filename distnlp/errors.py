"""User-facing errors. Each says what is wrong, where (file/line, shard/row or config path) and how to fix it.

The CLI prints `str(error)` for any `DistnlpError` and exits non-zero, so these never reach the
user as a traceback.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class DistnlpError(Exception):
    """Base class: an error the user can act on."""


class ConfigError(DistnlpError, ValueError):
    """A config value is missing, unknown, of the wrong type or inconsistent.

    Rendered as `<dotted.path>: <problem> (<fix>)`.
    """

    def __init__(self, path: str, problem: str, fix: str = "") -> None:
        self.path, self.problem, self.fix = path, problem, fix
        msg = f"{path}: {problem}" if path else problem
        if fix:
            msg += f" ({fix})"
        super().__init__(msg)


class LocatedError(DistnlpError):
    """An error about one place (a file, a line, a shard). Rendered as `<where>: <problem> (<fix>)`."""

    def __init__(self, where: str, problem: str, fix: str = "") -> None:
        self.where, self.problem, self.fix = where, problem, fix
        msg = f"{where}: {problem}"
        if fix:
            msg += f" ({fix})"
        super().__init__(msg)


class CorpusError(LocatedError, ValueError):
    """Malformed input data. `where` is `file:line`, `shard row N`, or a file name."""


class CheckpointError(DistnlpError):
    """A checkpoint or saved model is missing, corrupt or incompatible."""


class ModelError(LocatedError, CheckpointError):
    """A saved model's file is damaged or unusable. `where` is the file (model-best/model.safetensors)."""


def closest(name: str, options: Iterable[str], n: int = 3) -> list[str]:
    """The closest valid names, for "did you mean" hints."""
    return difflib.get_close_matches(name, list(options), n=n, cutoff=0.5)


def did_you_mean(name: str, options: Iterable[str]) -> str:
    options = sorted(options)
    near = closest(name, options)
    if near:
        return "did you mean " + " or ".join(repr(x) for x in near) + "?"
    shown = ", ".join(options[:12]) + (", ..." if len(options) > 12 else "")
    return f"valid names: {shown}"
