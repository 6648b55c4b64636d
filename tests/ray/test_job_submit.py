"""End to end as a user runs it: `ray start --head` on loopback, `cluster/submit.sh` (ray job
submit -- distnlp train ..., then a `distnlp tune` sweep whose trial trains on its own Ray Train
replicas), `ray job logs`, the saved model loads, `ray stop`; and
`launch/local.sh`, which starts and stops its own local Ray."""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["encoder.width=32", "training.max_steps=6", "training.eval_frequency=3", "training.max_eval_docs=3", "distributed.num_workers=2", "distributed.use_gpu=false"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    return env


@pytest.fixture
def ray_cli() -> str:
    exe = shutil.which("ray", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("ray CLI not installed")
    return exe


def test_job_submit_end_to_end(tmp_path: Path, ray_cli: str) -> None:
    env = _env()
    gcs, dash = _free_port(), _free_port()
    # The job agent's own ports are fixed by default (52365, ...): a Ray still shutting down from
    # an earlier test holds them, the agent never starts, and every submit gets "No available
    # agent". Free ports keep this head's agent independent of anything else on the machine.
    agent_ports = [f"--dashboard-agent-listen-port={_free_port()}", f"--dashboard-agent-grpc-port={_free_port()}",
                   f"--runtime-env-agent-port={_free_port()}", f"--metrics-export-port={_free_port()}"]
    start = subprocess.run(
        [ray_cli, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={gcs}", "--num-cpus=4",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", "--disable-usage-stats", *agent_ports],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert start.returncode == 0, start.stderr
    try:
        env["RAY_ADDRESS"] = f"http://127.0.0.1:{dash}"
        env["DISTNLP_SUBMIT_FLAGS"] = "--submission-id distnlp-e2e"
        out = tmp_path / "run"
        submit = subprocess.run(
            ["bash", "cluster/submit.sh", *SMALL, "training.loggers=[tensorboard]", f"training.output_dir={out}"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
        )
        assert submit.returncode == 0, submit.stdout[-3000:] + submit.stderr[-3000:]
        assert "succeeded" in (submit.stdout + submit.stderr).lower()
        logs = subprocess.run([ray_cli, "job", "logs", "distnlp-e2e"], env=env, capture_output=True, text=True, timeout=120)
        assert logs.returncode == 0, logs.stderr
        assert re.search(r"stopped after 6 steps", logs.stdout), logs.stdout[-2000:]
        # the job's log reads like a local run: each table row once, none of Ray's chatter
        from tests.ray.test_console_output import CHATTER, table_rows

        for epoch, step in table_rows(out):
            assert len(re.findall(rf"^{epoch}\s+{step}\s", logs.stdout, flags=re.M)) == 1, logs.stdout[-3000:]
        # (less the lines of Ray's job tooling itself: `ray job logs`' server address, the job
        # manager's "Runtime env is setting up", which no run can change)
        run_lines = [line for line in logs.stdout.splitlines() if not re.search(r"\b(cli|job_manager)\.py:\d+ -- ", line)]
        assert not [line for line in run_lines if CHATTER.search(line)], logs.stdout[-3000:]

        import distnlp

        nlp = distnlp.load(out / "model-best")
        doc = nlp("Mary lives in Paris .")
        assert len(doc) == 5 and all(t.tag_ for t in doc)
        assert len(list((out / "tensorboard").rglob("events.out.tfevents.*"))) == 1  # the tracker's files are the run's

        # `submit.sh tune`: a Tune sweep as a Ray job, its trial on its own 2 replicas
        env["DISTNLP_SUBMIT_FLAGS"] = "--submission-id distnlp-e2e-tune"
        sweep = tmp_path / "sweep"
        tune = subprocess.run(["bash", "cluster/submit.sh", "tune", "seed=choice(1,2)", "tune.num_samples=1", *SMALL, f"training.output_dir={sweep}"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert tune.returncode == 0, tune.stdout[-3000:] + tune.stderr[-3000:]
        import json

        trial, = json.loads((sweep / "sweep.json").read_text())["trials"]
        assert (trial["status"], trial["evaluations"], trial["steps"]) == ("completed", 2, 6)
        # rank 0's checkpoint reports reached Tune as the trial's results, one per evaluation
        evals = [json.loads(line) for line in (sweep / "0" / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
        shown = re.findall(r"^trial 0: step (\d+) score ([\d.]+)$", tune.stdout, flags=re.M)
        assert shown == [(str(e["step"]), f"{100 * e['score']:.2f}") for e in evals], tune.stdout[-3000:]
        assert (sweep / "experiment" / "best.yaml").is_file()
    finally:
        subprocess.run([ray_cli, "stop"], env=env, capture_output=True, timeout=120)


def test_launch_local_script(tmp_path: Path, ray_cli: str) -> None:
    env = _env()
    env["DISTNLP_RAY_PORT"] = str(_free_port())
    out = tmp_path / "local"
    run = subprocess.run(
        ["bash", "launch/local.sh", *SMALL, f"training.output_dir={out}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (out / "model-best" / "model.safetensors").exists()
    from tests.ray.test_console_output import CHATTER, table_rows

    for epoch, step in table_rows(out):
        assert len(re.findall(rf"^{epoch}\s+{step}\s", run.stdout, flags=re.M)) == 1, run.stdout[-3000:]
    assert not [line for line in (run.stdout + run.stderr).splitlines() if CHATTER.search(line)], run.stdout[-3000:] + run.stderr[-3000:]
    status = subprocess.run([ray_cli, "status", "--address", f"127.0.0.1:{env['DISTNLP_RAY_PORT']}"], env=env, capture_output=True, text=True, timeout=60)
    assert status.returncode != 0  # the Ray it started was stopped again
