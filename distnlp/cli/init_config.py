"""`distnlp init config --from-spacy config.cfg DIR/experiment/NAME.yaml`: a spaCy training config
as a distnlp experiment overlay, trained with `distnlp train --config-dir DIR experiment=NAME`.

Every spaCy setting without a distnlp equivalent is listed (config path and why) on stderr and
in the overlay's header, never dropped silently. Needs the `spacy` extra (thinc parses the file).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..interop.spacy_config import load_spacy_config, translate
from .compose import conf_dir

MARKER = "# distnlp experiment overlay translated from a spaCy config"
HELP = "translate a spaCy config.cfg into a distnlp experiment overlay"


def add_parser(subparsers: Any) -> None:
    """Register `config` on the `init` command's subparsers."""
    p = subparsers.add_parser("config", help=HELP, description=HELP)
    p.add_argument("--from-spacy", required=True, metavar="CONFIG_CFG", help="the spaCy training config (config.cfg)")
    p.add_argument("output", help="where to write the overlay: DIR/experiment/NAME.yaml (train with --config-dir DIR experiment=NAME)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if out.suffix != ".yaml" or out.parent.name != "experiment":
        raise ConfigError(str(out), "the overlay must be DIR/experiment/NAME.yaml", "e.g. myconf/experiment/ner.yaml, then: distnlp train --config-dir myconf experiment=ner")
    if out.exists() and MARKER not in out.read_text(encoding="utf-8", errors="replace").splitlines()[:2]:
        raise ConfigError(str(out), "exists and was not written by distnlp init config", "choose another NAME, or remove the file yourself")
    translation = translate(load_spacy_config(args.from_spacy))
    complete_groups(translation.overlay, translation.bases)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(out, render(translation, Path(args.from_spacy).name, out))
    for path, why in translation.untranslated:
        print(f"not translated: {path}: {why}", file=sys.stderr)
    print(f"wrote {out} ({len(translation.untranslated)} setting(s) not translated, listed above and in its header); "
          f"train with: distnlp train --config-dir {out.parent.parent} experiment={out.stem}")
    return 0


def render(translation: Any, source: str, out: Path) -> str:
    import yaml

    lines = ["# @package _global_", MARKER, f"# source: {source}",
             f"# train: distnlp train --config-dir {out.parent.parent} experiment={out.stem} corpus.train=DIR corpus.dev=DIR"]
    if translation.untranslated:
        lines.append("# not translated (spaCy config path: why):")
        lines += [f"#   {path}: {why}".replace("\n", " ") for path, why in translation.untranslated]
    # the overlay holds these groups whole (complete_groups), so their options are switched off
    entries: list[Any] = [{f"override /{group}": None} for group in translation.bases]
    body: dict[str, Any] = {"defaults": entries + ["_self_"]} if entries else {}
    body.update(translation.overlay)
    return "\n".join(lines) + "\n" + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, default_flow_style=None)


def complete_groups(overlay: dict[str, Any], bases: dict[str, str]) -> None:
    """Each translated group node completed from distnlp's own option (conf/GROUP/OPTION.yaml).

    Hydra merges mappings key by key, so a translated `batch_by_padded` merged onto the default
    `batch_by_words` node would keep its `tolerance`; the overlay therefore switches the group
    off (`override /GROUP: null`) and holds the whole node, where a registered callable the
    translation names replaces the option's one instead of merging into it.
    """
    import yaml

    for group, option in bases.items():
        base = yaml.safe_load((conf_dir() / group / f"{option}.yaml").read_text(encoding="utf-8")) or {}
        base.pop("defaults", None)
        overlay[group] = _replace_merge(base, overlay[group])


def _replace_merge(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in new.items():
        old = out.get(key)
        same_callable = isinstance(value, dict) and isinstance(old, dict) and value.get("_use_", old.get("_use_")) == old.get("_use_")
        out[key] = _replace_merge(old, value) if same_callable else value
    return out


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
