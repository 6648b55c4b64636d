"""Stop the local Ray that a launch script started, and nothing else.

`ray stop` stops every Ray process on the host that it can signal: another user's, another
job's, a second demo's. The launch scripts instead start their Ray with a temp dir of their own
(`--temp-dir`) and stop exactly the processes of this user whose command line names it (GCS,
raylet, monitors, client server), with every process those started (workers, agents):

    python -m distnlp.ray_backend.local_stop /tmp/distnlp-ray-6390-12345 6390

Reads /proc (Linux) or `ps` (elsewhere); no extra dependency.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path


def _table() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, uid, command line) of every process this user can see."""
    out: dict[int, tuple[int, int, str]] = {}
    if Path("/proc/self/stat").exists():
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                status = (entry / "status").read_text()
            except OSError:
                continue  # gone, or not ours to read
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            out[int(entry.name)] = (int(fields["PPid"]), int(fields["Uid"].split()[0]), cmdline)
        return out
    ps = subprocess.run(["ps", "-A", "-o", "pid=,ppid=,uid=,command="], capture_output=True, text=True, check=True)
    for line in ps.stdout.splitlines():
        pid, ppid, uid, command = line.split(None, 3) if len(line.split(None, 3)) == 4 else (*line.split(), "")[:4]
        out[int(pid)] = (int(ppid), int(uid), command)
    return out


def _ours(cmd: str, temp_dir: str, port: int | None) -> bool:
    # Ray's client server names neither the temp dir nor a session, only the GCS address, whose
    # host Ray may write as the machine's address even for a loopback head: match its port.
    gcs = port is not None and "ray" in cmd and re.search(rf"--(gcs[-_])?address=\S*:{port}(\s|$)", cmd) is not None
    return temp_dir in cmd or gcs


def ray_processes(temp_dir: str, port: int | None = None) -> list[int]:
    """This user's processes whose command line names `temp_dir` (or, for a Ray process, the GCS
    `port` it was started with), and all their descendants."""
    temp_dir = os.path.abspath(temp_dir)
    table = _table()
    me, uid = os.getpid(), os.getuid()
    found = {pid for pid, (_, owner, cmd) in table.items() if owner == uid and pid != me and _ours(cmd, temp_dir, port)}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    stack = list(found)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found and child != me:
                found.add(child)
                stack.append(child)
    return sorted(found)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop(temp_dir: str, port: int | None = None, grace_s: float = 10.0) -> int:
    """SIGTERM, then SIGKILL after `grace_s`; returns how many processes were signalled."""
    pids = ray_processes(temp_dir, port)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(pids)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2):
        print("usage: python -m distnlp.ray_backend.local_stop TEMP_DIR [GCS_PORT]", file=sys.stderr)
        return 2
    stop(args[0], int(args[1]) if len(args) == 2 else None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
