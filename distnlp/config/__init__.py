"""Config validation on plain data (no Hydra here: the CLI composes, this checks)."""
from .validate import validate_config

__all__ = ["validate_config"]
