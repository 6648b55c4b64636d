"""Reading a spaCy config while remembering which settings were used or explained, so the
ones without a distnlp equivalent can all be listed with their config paths."""
from __future__ import annotations

from collections.abc import Container
from typing import Any

from .registered import EXACT


class Tracker:
    """Reads the spaCy config and remembers which leaves were used or explained."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.used: set[str] = set()
        self.notes: dict[str, str] = {}
        self.listed: list[tuple[str, str]] = []  # listed whatever the leaves (e.g. a name without a block)

    def get(self, path: str, default: Any = None) -> Any:
        node: Any = self.cfg
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def take(self, path: str, default: Any = None) -> Any:
        """The value at `path` (default when absent), marked as translated."""
        self.used.add(path)
        value = self.get(path, default)
        if isinstance(value, dict):  # a whole block taken: every leaf inside is used
            self.used.update(f"{path}.{leaf}" for leaf, _ in leaves(value))
        return value

    def registered(self, path: str, accepted: Container[str], default: Any = None) -> Any:
        """The registered name at `path` (a `NODE.@registry` leaf; default when absent), marked as
        translated only when this place translates it (`accepted`): any other name stays listed."""
        missing = object()
        value = self.get(path, missing)
        if value is missing:
            self.used.add(path)  # absent: nothing to list
            return default
        if isinstance(value, str) and value in accepted:
            self.used.add(path)  # read and translated here
        else:
            self.used.discard(path)
        return value

    def block(self, path: str) -> dict[str, Any]:
        value = self.get(path)
        return value if isinstance(value, dict) else {}

    def note(self, path: str, why: str) -> None:
        """`path` (a leaf or a whole block) is not translated, for this reason."""
        self.notes.setdefault(path, why)

    def neutral(self, path: str, value: Any) -> None:
        """Used when it has spaCy's default (distnlp's only behaviour), listed otherwise."""
        if self.get(path) == value or self.get(path, value) == value:
            self.used.add(path)
        else:
            self.note(path, f"{self.get(path)!r}: distnlp has only spaCy's default behaviour ({value!r})")

    def why(self, path: str) -> str | None:
        return next((w for p, w in self.notes.items() if path == p or path.startswith(p + ".")), None)

    def untranslated(self) -> list[tuple[str, str]]:
        """Every setting not translated, (config path, why). A registered-function node (a block
        with an `@registry` key) is listed by its own path and registered name unless this place
        translated it exactly (its name read here and in `registered.EXACT`), whatever else in
        the translation read or replaced it."""
        out: list[tuple[str, str]] = list(self.listed)
        for path, value in leaves(self.cfg):
            node, _, key = path.rpartition(".")
            if key.startswith("@"):
                if path in self.used and (key, value) in EXACT:
                    continue
                why = self.notes.get(path) or self.why(node or path) or "no distnlp equivalent"
                out.append((node or path, why if str(value) in why else f"{key} {value!r}: {why}"))
                continue
            if path in self.used or value in (None, [], {}, ""):
                continue
            out.append((path, self.why(path) or f"{value!r}: no distnlp equivalent"))
        return out


def leaves(node: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.extend(leaves(value, path + "."))
        else:
            out.append((path, value))
    return out
