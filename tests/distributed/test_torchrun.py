"""launch/torchrun.sh: torchrun starts 2 CPU ranks with gloo, each running the same worker as
one process and the Ray replicas; rank 0 claims the output directory and the run trains,
checkpoints and saves a model that loads."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.multiprocess

REPO = Path(__file__).resolve().parents[2]


def test_torchrun_two_cpu_ranks(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["bash", str(REPO / "launch" / "torchrun.sh"), f"training.output_dir={out}", "encoder.width=32", "training.max_steps=6",
            "training.eval_frequency=3", "training.log_every=1", "training.max_eval_docs=4", "distributed.num_threads=1"]
    env = {**os.environ, "DISTNLP_CPU_WORKERS": "2", "PATH": f"{Path(os.sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "torchrun: 2 ranks on cpu" in done.stdout and "replicas: 2" in done.stdout
    run = json.loads((out / "run.json").read_text())
    manifest = json.loads((out / "checkpoints" / "step-00000006" / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["run_id"] == run["run_id"]
    assert (out / "checkpoints" / "step-00000006" / "rank-00001" / "state.json").exists()
    steps = [json.loads(l)["step"] for l in (out / "metrics.jsonl").read_text().splitlines() if '"event": "step"' in l]
    assert steps == [1, 2, 3, 4, 5, 6]  # rank 0 alone logs, once per step
    import distnlp

    nlp = distnlp.load(out / "model-last")
    assert [t.tag_ for t in nlp("The cat sat on the mat .")]
