"""How much of Ray's own output a run shows (`distributed.ray_log_level`).

By default none: Ray's INFO/WARNING messages on the driver are filtered, and the workers' and
Ray Train controller's output is not forwarded to the driver (`log_to_driver=False`), because what
the user needs from them comes through the relay (relay.py): rank 0's table and progress,
distnlp's warnings from any rank, and one line per failed worker. `--verbose` (or
`distributed.ray_log_level=info|warning|debug`) brings Ray's messages and the workers' raw output
back, for debugging Ray itself.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..config.settings import DistributedSettings


@dataclass(frozen=True)
class RayLogging:
    level: int  # the level of Ray's own loggers on the driver

    @classmethod
    def from_settings(cls, dist: DistributedSettings) -> "RayLogging":
        if dist.ray_log_level is None:
            # `distnlp --verbose` sets the root logger to DEBUG (cli/main.py).
            verbose = logging.getLogger().getEffectiveLevel() <= logging.DEBUG
            return cls(logging.INFO if verbose else logging.ERROR)
        return cls(logging.getLevelName(dist.ray_log_level.upper()))  # a valid name (DistributedSettings checks it)

    @property
    def shows_workers(self) -> bool:
        """Forward the workers' own stdout/stderr (with Ray's prefixes) to the driver."""
        return self.level <= logging.WARNING

    def init_kwargs(self) -> dict[str, Any]:
        # logging_level configures only the driver's "ray" logger; LoggingConfig would also
        # replace the root logger's handlers, which belong to the CLI.
        return {"log_to_driver": self.shows_workers, "logging_level": self.level}
