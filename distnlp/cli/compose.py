"""Compose `conf/` with Hydra and hand the rest of distnlp a plain, resolved dict.

Hydra's own errors (a typo in an override, a missing group option, a `???` value) are turned
into `ConfigError`s that name the dotted path and the fix.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue, OmegaConfBaseException

from ..errors import ConfigError, did_you_mean

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
DEMO_DATA = Path(__file__).resolve().parents[1] / "demo_data"


def _register_resolvers() -> None:
    if not OmegaConf.has_resolver("demo_data"):
        # Absolute path of a shard directory shipped in the package, whatever the working directory.
        OmegaConf.register_new_resolver("demo_data", lambda name: str(DEMO_DATA / name))


def conf_dir() -> Path:
    if not CONF_DIR.is_dir():
        raise ConfigError("conf", f"config directory not found at {CONF_DIR}", "run distnlp from a source checkout (pip install -e .)")
    return CONF_DIR


def compose_config(overrides: list[str] | None = None, config_name: str = "config") -> dict[str, Any]:
    """The fully composed and resolved config as plain Python data."""
    cfg = compose_dictconfig(overrides or [], config_name)
    return to_plain(cfg)


def compose_dictconfig(overrides: list[str], config_name: str = "config") -> DictConfig:
    _register_resolvers()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3", job_name="distnlp"):
            return compose(config_name=config_name, overrides=list(overrides))
    except (ConfigCompositionException, MissingConfigException) as exc:
        raise _explain_composition_error(exc, overrides) from None
    except OmegaConfBaseException as exc:
        raise ConfigError(_key_of(exc), str(exc).splitlines()[0], "check the override") from None


def to_plain(cfg: DictConfig) -> dict[str, Any]:
    """Resolve interpolations; a `???` left anywhere is reported by its dotted path."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        key = missing[0]
        raise ConfigError(key, "value is missing (???)", f"set it on the command line: {key}=VALUE")
    try:
        data = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as exc:
        key = _key_of(exc)
        raise ConfigError(key, "value is missing (???)", f"set it on the command line: {key}=VALUE") from None
    except InterpolationResolutionError as exc:
        raise ConfigError(_key_of(exc), f"cannot resolve interpolation: {str(exc).splitlines()[0]}", "fix the ${...} reference") from None
    assert isinstance(data, dict)
    return data  # type: ignore[return-value]


def _key_of(exc: OmegaConfBaseException) -> str:
    key = getattr(exc, "full_key", None)
    return str(key) if key else ""


_NOT_IN_STRUCT = re.compile(r"Could not override '([^']+)'")
_APPEND_EXISTS = re.compile(r"Could not append to config. An item is already at '([^']+)'")
_GROUP_OPTION = re.compile(r"Could not find '([^']+)'")


def _explain_composition_error(exc: Exception, overrides: list[str]) -> ConfigError:
    text = str(exc)
    m = _NOT_IN_STRUCT.search(text)
    if m:
        key = m.group(1)
        parent, _, leaf = key.rpartition(".")
        siblings = _siblings(parent, overrides)
        hint = did_you_mean(leaf, siblings) if siblings else "check the key"
        return ConfigError(key, "unknown key", f"{hint}; to add a new key use +{key}=VALUE")
    m = _GROUP_OPTION.search(text)
    if m:
        missing = m.group(1)
        group = missing.split("/")[0]
        options = [p.stem for p in (conf_dir() / group).glob("*.yaml")] if (conf_dir() / group).is_dir() else []
        return ConfigError(group, f"no config option {missing!r}", did_you_mean(missing.split("/")[-1], options) if options else "check the group name")
    m = _APPEND_EXISTS.search(text)
    if m:
        return ConfigError(m.group(1), "already exists", f"override it without '+': {m.group(1)}=VALUE")
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return ConfigError("", first, "check the overrides (key=value, group=option)")


def _siblings(parent: str, overrides: list[str]) -> list[str]:
    """The keys that do exist next to a mistyped one (composed without the offending overrides)."""
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3", job_name="distnlp"):
            group_overrides = [o for o in overrides if "=" in o and "." not in o.split("=")[0]]
            cfg = compose(config_name="config", overrides=group_overrides)
        node = OmegaConf.select(cfg, parent) if parent else cfg
        return [str(k) for k in node.keys()] if isinstance(node, DictConfig) else []
    except Exception:
        return []


def to_yaml(config: dict[str, Any]) -> str:
    return OmegaConf.to_yaml(OmegaConf.create(config))
