"""A `distnlp tune` search space, written with Hydra's sweep syntax and run by Ray Tune.

    training.optimizer.learn_rate=tag(log,interval(1e-4,1e-2))   -> tune.loguniform
    encoder.width=choice(64,96,128)  or  encoder.width=64,96,128  -> tune.choice (grid: grid_search)
    training.batcher.size=range(1000,3001,1000)                   -> the range's values, as a choice
    components.ner.grad_factor=interval(0.2,1.0)                  -> tune.uniform

With `tune.search=grid` every choice and range is enumerated (Tune's grid_search; num_samples
repeats the grid) and an interval is refused. Values travel as the override text they came
from, so a trial's override is exactly what `distnlp train` would be given.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

SEARCHES = ("random", "grid")


@dataclass
class SearchSpace:
    fixed: list[str]  # the overrides every trial gets (training.output_dir excluded)
    swept: dict[str, Any] = field(default_factory=dict)  # key as written (with +/~) -> Hydra's sweep

    @classmethod
    def parse(cls, overrides: list[str], output_key: str) -> "SearchSpace":
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from hydra.errors import HydraException

        space = cls(fixed=[])
        for text in overrides:
            try:
                parsed = OverridesParser.create().parse_overrides([text])[0]
            except HydraException as exc:
                raise ConfigError(text, str(exc).strip().splitlines()[0], "check the override; see Hydra's sweep syntax: choice(...), range(...), interval(...)") from None
            key = parsed.get_key_element()
            if key.lstrip("+~") == output_key:
                if parsed.is_sweep_override():
                    raise ConfigError(output_key, "cannot be swept", f"give one {output_key}=DIR; trial N trains in DIR/N")
                continue
            if parsed.is_sweep_override():
                space.swept[key] = parsed.value()
            else:
                space.fixed.append(text)
        return space

    def domains(self, search: str) -> dict[str, tuple[Any, ...]]:
        """Each swept key's values: ("choice", [override texts]) | ("uniform" | "loguniform", low, high)."""
        from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

        if search not in SEARCHES:
            raise ConfigError("tune.search", f"unknown search {search!r}", f"use one of {', '.join(SEARCHES)}")
        out: dict[str, tuple[Any, ...]] = {}
        for key, sweep in self.swept.items():
            if isinstance(sweep, IntervalSweep):
                if search == "grid":
                    raise ConfigError(key, "an interval has no grid", "give its values with choice(...) or range(...), or use tune.search=random")
                low, high = float(sweep.start), float(sweep.end)
                if "log" in sweep.tags and low <= 0:
                    raise ConfigError(key, "tag(log, interval(...)) needs a lower bound above 0", "e.g. tag(log,interval(1e-5,1e-2))")
                out[key] = ("loguniform" if "log" in sweep.tags else "uniform", low, high)
            elif isinstance(sweep, (ChoiceSweep, RangeSweep)):
                values = [_as_text(v) for v in _discrete_values(sweep)]
                if not values:
                    raise ConfigError(key, "the sweep has no values", "check the range's start, stop and step")
                out[key] = ("choice", values)
            else:
                raise ConfigError(key, f"{type(sweep).__name__} is not supported by distnlp tune", "use choice(...), range(...) or interval(...)")
        return out

    def example_overrides(self) -> list[str]:
        """One trial's overrides (each sweep's first value or lower bound): to check the config
        before any trial starts."""
        from hydra.core.override_parser.types import IntervalSweep

        out = list(self.fixed)
        for key, sweep in self.swept.items():
            value = repr(float(sweep.start)) if isinstance(sweep, IntervalSweep) else _as_text(_discrete_values(sweep)[0])
            out.append(f"{key}={value}")
        return out

    def grid_size(self) -> int:
        from hydra.core.override_parser.types import IntervalSweep

        size = 1
        for sweep in self.swept.values():
            size *= 1 if isinstance(sweep, IntervalSweep) else len(_discrete_values(sweep))
        return size


def trial_overrides(params: dict[str, Any]) -> list[str]:
    """A trial's sampled values as overrides (a float from an interval as Python writes it)."""
    return [f"{key}={value!r}" if isinstance(value, float) else f"{key}={value}" for key, value in params.items()]


def _discrete_values(sweep: Any) -> list[Any]:
    from hydra.core.override_parser.types import ChoiceSweep, RangeSweep

    if isinstance(sweep, ChoiceSweep):
        return list(sweep.list)
    assert isinstance(sweep, RangeSweep)
    values, value = [], sweep.start
    step = sweep.step or 1
    while (value < sweep.stop) if step > 0 else (value > sweep.stop):
        values.append(round(value, 12) if isinstance(value, float) else value)  # 0.1+0.2 as 0.3
        value += step
    return values


def _as_text(value: Any) -> str:
    """A Hydra value as override text (lists and dicts in Hydra's own grammar)."""
    from hydra.core.override_parser.types import Override

    return Override._get_value_element_as_str(value)
