"""`--config-dir DIR`: Hydra's own way to add a user config directory to the search path, so
its groups (e.g. DIR/experiment/NAME.yaml, written by `distnlp init config --from-spacy`) are
selectable as `experiment=NAME`. Kept apart from compose.py so building the CLI parser does not
import Hydra."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError


def add_config_dir_argument(parser: Any) -> None:
    parser.add_argument("--config-dir", action="append", default=[], metavar="DIR",
                        help="also look for config groups here, e.g. DIR/experiment/NAME.yaml for experiment=NAME")


def config_dir_overrides(config_dirs: list[str] | None) -> list[str]:
    """The Hydra override that adds the user's config directories to the search path."""
    if not config_dirs:
        return []
    for d in config_dirs:
        if not Path(d).is_dir():
            raise ConfigError("--config-dir", f"{d}: directory not found", "pass the directory that holds experiment/NAME.yaml")
    return ["hydra.searchpath=[" + ",".join(f"file://{Path(d).resolve()}" for d in config_dirs) + "]"]
