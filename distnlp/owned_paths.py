"""Remove only what distnlp wrote (docs/architecture.md, decision 8). Every place that replaces or deletes a
directory goes through this module, so the rule lives in one place.

API (paths may be str or Path; `owned` is a collection of entry names directly inside the
directory, or a predicate on such a name; a listed subdirectory is owned with everything in it):

    check_replaceable(directory, owned, inputs=(), *, what, fix) -> None
        Raise NotOwnedError unless `directory` is absent, or an empty directory, or a directory
        holding nothing but owned entries, and no path in `inputs` is inside it (or is it), and
        it is not a symbolic link nor the current directory (or one containing it).
    remove_owned(directory, owned, *, what) -> None
        check_replaceable, then remove the owned entries and the directory itself. Refuses
        (removing nothing) when the directory holds anything else.
    make_temp_dir(parent, prefix) -> Path
        A new directory `parent/<prefix>XXXXXXXX` with a marker file naming this process (pid,
        host), so a later run can tell it was distnlp's and whether its writer is gone.
    publish_dir(tmp, target, owned, *, what) -> None
        Put a finished `make_temp_dir` directory in place of `target`: the old `target` (checked
        with check_replaceable first) is moved aside, the new one renamed in, then the old one's
        owned entries are removed.
    discard_temp_dir(tmp, owned) -> None
        After a failure: remove a `make_temp_dir` directory's owned entries, warning (not raising)
        when that is impossible, so the original error is the one the user sees.
    clean_stale_temps(parent, prefix, owned) -> list[Path]
        Remove the directories `parent/<prefix>*` that carry the marker of a process on this host
        that is no longer running (a run killed mid-way); one holding anything not owned is left.

Refusals raise NotOwnedError (a DistnlpError: the CLI prints it as one line).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import uuid
from collections.abc import Callable, Collection, Iterable
from pathlib import Path

from .errors import DistnlpError

__all__ = [
    "MARKER", "NotOwnedError", "Owned", "check_replaceable", "clean_stale_temps", "discard_temp_dir", "foreign_entries",
    "make_temp_dir", "publish_dir", "remove_owned",
]

log = logging.getLogger(__name__)

MARKER = ".distnlp-owner.json"  # inside every temporary directory distnlp makes
Owned = Collection[str] | Callable[[str], bool]
_SHOWN = 5  # foreign names shown in a message


class NotOwnedError(DistnlpError):
    """distnlp refused to replace or remove a path it did not write."""


def _is_owned(owned: Owned) -> Callable[[str], bool]:
    if callable(owned):
        return lambda name: name == MARKER or bool(owned(name))
    names = set(owned)
    return lambda name: name == MARKER or name in names


def foreign_entries(directory: str | os.PathLike[str], owned: Owned) -> list[str]:
    """Names directly inside `directory` that are not owned, sorted ([] if it does not exist)."""
    d = Path(directory)
    if not d.is_dir() or d.is_symlink():
        return []
    ok = _is_owned(owned)
    return sorted(e.name for e in os.scandir(d) if not ok(e.name))


def check_replaceable(
    directory: str | os.PathLike[str],
    owned: Owned,
    inputs: Iterable[str | os.PathLike[str]] = (),
    *,
    what: str = "directory",
    fix: str = "move them elsewhere or choose another directory",
) -> None:
    d = Path(directory)
    if not os.path.lexists(d):
        return
    if d.is_symlink():  # replacing it would replace the link, not what it points to
        raise NotOwnedError(f"{d}: is a symbolic link; refusing to replace this {what} (pass the directory it points to: {os.path.realpath(d)})")
    if not d.is_dir():
        raise NotOwnedError(f"{d}: exists and is not a directory; refusing to replace this {what} (choose another path)")
    here = d.resolve()
    try:
        cwd = Path.cwd().resolve()
    except OSError:  # the cwd was removed: nothing to protect
        cwd = None
    if cwd is not None and (cwd == here or here in cwd.parents):
        # swapping it out would leave the shell (and this process) in a deleted directory
        raise NotOwnedError(f"{d}: is the current directory or contains it; refusing to replace this {what} (write to a subdirectory or elsewhere)")
    for inp in inputs:
        p = Path(inp).resolve()
        if p == here or here in p.parents:
            raise NotOwnedError(f"{d}: the input {inp} is inside it; refusing to replace this {what} (write the output to another directory)")
    foreign = foreign_entries(d, owned)
    if foreign:
        shown = ", ".join(foreign[:_SHOWN]) + (f" and {len(foreign) - _SHOWN} more" if len(foreign) > _SHOWN else "")
        raise NotOwnedError(f"{d}: holds {shown}, which distnlp did not write; refusing to replace this {what} ({fix})")


def remove_owned(directory: str | os.PathLike[str], owned: Owned, *, what: str = "directory") -> None:
    d = Path(directory)
    check_replaceable(d, owned, what=what)
    if not d.exists():
        return
    for entry in os.scandir(d):  # all owned: checked just above
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)
    os.rmdir(d)


def make_temp_dir(parent: str | os.PathLike[str], prefix: str) -> Path:
    """A fresh directory (0o755: outputs are meant to be read by others) marked as this process's."""
    base = Path(parent)
    base.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = base / f"{prefix}{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir(mode=0o755)
            break
        except FileExistsError:
            continue
    _write_marker(tmp)
    return tmp


def _write_marker(directory: Path) -> None:
    info = {"pid": os.getpid(), "host": socket.gethostname()}
    (directory / MARKER).write_text(json.dumps(info) + "\n", encoding="utf-8")


def publish_dir(tmp: str | os.PathLike[str], target: str | os.PathLike[str], owned: Owned, *, what: str = "directory") -> None:
    tmp, target = Path(tmp), Path(target)
    check_replaceable(target, owned, what=what)
    (tmp / MARKER).unlink(missing_ok=True)
    if not os.path.lexists(target):
        os.rename(tmp, target)
        return
    # Move the old one aside first so a crash between the renames leaves both, never neither;
    # marked, so a later clean_stale_temps removes it once this process is gone.
    old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(target, old)
    _write_marker(old)
    os.rename(tmp, target)
    try:
        remove_owned(old, owned, what=what)
    except (NotOwnedError, OSError) as exc:  # appeared between the check and the swap: keep it
        log.warning("left the previous %s at %s: %s", what, old, exc)


def discard_temp_dir(tmp: str | os.PathLike[str], owned: Owned) -> None:
    try:
        remove_owned(tmp, owned, what="temporary directory")
    except (NotOwnedError, OSError) as exc:
        log.warning("left %s: %s", tmp, exc)


def clean_stale_temps(parent: str | os.PathLike[str], prefix: str, owned: Owned) -> list[Path]:
    """Remove the dead runs' marked directories `parent/<prefix>*`; returns those removed."""
    base = Path(parent)
    if not base.is_dir():
        return []
    removed: list[Path] = []
    for entry in sorted(base.glob(f"{prefix}*")):
        if entry.is_symlink() or not entry.is_dir() or not _owner_gone(entry / MARKER):
            continue
        try:
            remove_owned(entry, owned, what="temporary directory")
        except (NotOwnedError, OSError) as exc:
            log.warning("left %s: %s", entry, exc)
            continue
        log.info("removed %s, left behind by an interrupted run", entry)
        removed.append(entry)
    return removed


def _owner_gone(marker: Path) -> bool:
    """True only when the marker names a process on this host that no longer runs."""
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
        pid, host = int(info["pid"]), str(info["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return False  # no marker (not ours) or unreadable: leave it
    if host != socket.gethostname() or pid == os.getpid():
        return False  # another machine's run (shared filesystem) or our own: cannot tell / alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False
