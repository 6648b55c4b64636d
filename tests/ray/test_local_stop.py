"""The launch scripts stop only the Ray they started (`ray stop` stops every Ray on the host)."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from distnlp.ray_backend.local_stop import stop

REPO = Path(__file__).resolve().parents[2]
SLEEP = "import time; time.sleep(60)"
PARENT = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"


def _spawn(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args])


def _alive(proc: subprocess.Popen) -> bool:
    return proc.poll() is None


def test_stops_the_processes_naming_its_temp_dir_and_their_children_only(tmp_path: Path) -> None:
    ours = _spawn(PARENT, f"--temp-dir={tmp_path / 'ours'}")  # a raylet, say, with a worker it started
    client = _spawn(SLEEP, "ray.util.client.server", "--address=192.0.2.2:6391")  # names only the GCS port
    other_job = _spawn(SLEEP, f"--temp-dir={tmp_path / 'other'}", "ray", "--address=127.0.0.1:6392")
    time.sleep(1.0)  # let the parent start its child
    try:
        from distnlp.ray_backend.local_stop import ray_processes

        found = ray_processes(str(tmp_path / "ours"), 6391)
        assert ours.pid in found and client.pid in found and other_job.pid not in found
        assert len(found) == 3  # the child of `ours` too
        assert stop(str(tmp_path / "ours"), 6391, grace_s=5) == 3
        ours.wait(5), client.wait(5)
        assert not _alive(ours) and not _alive(client) and _alive(other_job)
    finally:
        for proc in (ours, client, other_job):
            proc.kill()
            proc.wait()


def test_launch_scripts_never_run_ray_stop() -> None:
    for script in (REPO / "launch").glob("*.sh"):
        code = [line for line in script.read_text().splitlines() if not line.lstrip().startswith("#")]
        assert not any("ray stop" in line for line in code), script
    assert "local_stop" in (REPO / "launch" / "local_ray.sh").read_text()
