"""Named, versioned registries of pluggable callables.

A config node references a registered callable with the key `_use_`; its other keys are the
callable's arguments:

    embed:
      _use_: distnlp.MultiHashEmbed.v1
      width: 96

The same works from the command line (`components.tok2vec.model.embed._use_=my.Embed.v1`).
Names are versioned (`.v1`) and unique across registries, so saved configs keep resolving after
code moves, and only registered callables can ever be built from a config.
User code registers its own names and is imported with `code=path/to/file.py`.
"""
from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError, did_you_mean

F = TypeVar("F", bound=Callable[..., Any])

USE_KEY = "_use_"
USER_MODULE_PREFIX = "distnlp_user_code_"

KINDS = (
    "architectures",
    "components",
    "span_getters",
    "poolers",
    "annotation_setters",
    "schedules",
    "objectives",
    "batchers",
    "vectors",
    "loggers",
)


class Registry:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, Callable[..., Any]] = {}

    def __call__(self, name: str) -> Callable[[F], F]:
        def register(fn: F) -> F:
            _check_unique(name, self.kind, fn)
            self._items[name] = fn
            return fn

        return register

    def register(self, name: str, fn: Callable[..., Any]) -> None:
        self(name)(fn)

    def get(self, name: str, path: str = "") -> Callable[..., Any]:
        _ensure_builtins()
        if name not in self._items:
            raise ConfigError(
                path or self.kind,
                f"unknown {self.kind} name {name!r}",
                did_you_mean(name, self._items),
            )
        return self._items[name]

    def names(self) -> list[str]:
        _ensure_builtins()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        _ensure_builtins()
        return name in self._items


_REGISTRIES: dict[str, Registry] = {kind: Registry(kind) for kind in KINDS}
architectures = _REGISTRIES["architectures"]
components = _REGISTRIES["components"]
span_getters = _REGISTRIES["span_getters"]
poolers = _REGISTRIES["poolers"]
annotation_setters = _REGISTRIES["annotation_setters"]
schedules = _REGISTRIES["schedules"]
objectives = _REGISTRIES["objectives"]
batchers = _REGISTRIES["batchers"]
vectors = _REGISTRIES["vectors"]
loggers = _REGISTRIES["loggers"]


def _check_unique(name: str, kind: str, fn: Callable[..., Any]) -> None:
    for other in _REGISTRIES.values():
        existing = other._items.get(name)
        if existing is None:
            continue
        # The same user code imported again (e.g. the copy saved inside a model) may re-register.
        if other.kind == kind and getattr(existing, "__qualname__", None) == getattr(fn, "__qualname__", "") and str(getattr(existing, "__module__", "")).startswith(USER_MODULE_PREFIX):
            continue
        raise ValueError(f"registry name {name!r} is already registered in {other.kind!r}; pick another name (bump its .vN)")


def find(name: str, path: str = "") -> tuple[str, Callable[..., Any]]:
    """Look a name up in every registry; returns (kind, callable)."""
    _ensure_builtins()
    for reg in _REGISTRIES.values():
        if name in reg._items:
            return reg.kind, reg._items[name]
    every = [n for reg in _REGISTRIES.values() for n in reg._items]
    raise ConfigError(path, f"unknown registered name {name!r}", did_you_mean(name, every))


def is_reference(node: Any) -> bool:
    return isinstance(node, Mapping) and USE_KEY in node


def resolve(node: Any, path: str = "", **runtime: Any) -> Any:
    """Build a config node: every mapping with `_use_` becomes the result of its callable.

    Nested references are built first (children before parents), as spaCy's registry does.
    Arguments are checked against the callable's signature so a typo names the key.
    """
    if isinstance(node, Mapping):
        if USE_KEY in node:
            name = node[USE_KEY]
            _, fn = find(str(name), f"{path}.{USE_KEY}" if path else USE_KEY)
            kwargs = {
                k: resolve(v, f"{path}.{k}" if path else k)
                for k, v in node.items()
                if k != USE_KEY
            }
            check_arguments(fn, kwargs, path, name)
            return fn(**kwargs)
        return {k: resolve(v, f"{path}.{k}" if path else k) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v, f"{path}[{i}]") for i, v in enumerate(node)]
    return node


def check_arguments(fn: Callable[..., Any], kwargs: Mapping[str, Any], path: str, name: str) -> None:
    """Unknown or missing arguments of a registered callable, reported by config path."""
    sig = inspect.signature(fn)
    params = sig.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    for key in kwargs:
        if key not in params:
            raise ConfigError(
                f"{path}.{key}" if path else key,
                f"unknown argument for {name}",
                did_you_mean(key, [p for p in params if not p.startswith("_")]),
            )
    for pname, p in params.items():
        if p.default is inspect.Parameter.empty and p.kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        ) and pname not in kwargs:
            raise ConfigError(
                f"{path}.{pname}" if path else pname,
                f"missing argument for {name}",
                "set it in the config",
            )


def import_code(path: str | Path | None) -> None:
    """Import a user file that registers new names (the `code=` option)."""
    if not path:
        return
    p = Path(path)
    if not p.exists():
        raise ConfigError("code", f"file not found: {p}", "pass an existing Python file with code=path/to/file.py")
    digest = hashlib.sha1(str(p.resolve()).encode()).hexdigest()[:12]
    mod_name = f"{USER_MODULE_PREFIX}{digest}"
    if mod_name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(mod_name, p)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # user code: report where it broke, in the user's file, not ours
        del sys.modules[mod_name]
        raise ConfigError("code", _user_error(p, exc), "fix the user code file") from None


def _user_error(path: Path, exc: BaseException) -> str:
    """`file:line: Type: message`, at the deepest line of the user's file in the traceback (a
    SyntaxError names its own line)."""
    what = f"{type(exc).__name__}: {exc.msg if isinstance(exc, SyntaxError) else exc}"
    target = os.path.realpath(path)
    if isinstance(exc, SyntaxError) and exc.filename:
        shown = path if os.path.realpath(exc.filename) == target else exc.filename
        return f"{shown}:{exc.lineno}: {what}"
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if os.path.realpath(f.filename) == target]
    return f"{path}:{lines[-1]}: {what}" if lines else f"importing {path} failed: {what}"


_BUILTINS_LOADED = False


def _ensure_builtins() -> None:
    """Import the modules whose import registers the built-in names (lazily, to keep imports light)."""
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    from . import registrations  # noqa: F401  # lazy: registers every built-in on the first lookup, not at import
