"""`distnlp annotate ... distributed=ray`: 2 CPU actors on a local Ray write the same corpus, row
for row and byte for byte, as one process; a job killed under Ray resumes on one process."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.annotate.fixtures import _one_thread, inputs, tiny_model  # noqa: F401  (fixtures)

pytestmark = pytest.mark.ray

ray = pytest.importorskip("ray")


def _annotate(model: Path, inputs: dict[str, Path], out: Path, *overrides: str) -> dict[str, Any]:  # noqa: F811
    from distnlp.annotate.run import annotate
    from distnlp.annotate.settings import parse_overrides
    from distnlp.ray_backend.annotate import annotate_on_ray

    paths = [str(inputs["text"]), str(inputs["jsonl"]), str(inputs["corpus"])]
    settings = parse_overrides(["rows_per_shard=4", *overrides])
    return annotate(str(model), paths, str(out), settings, copy_format="jsonl",
                    run_splits=annotate_on_ray if settings.distributed == "ray" else None)


def _shards(out: Path) -> list[tuple[str, Any]]:
    meta = json.loads((out / "meta.json").read_text())
    return [(s["file"], pq.read_table(out / s["file"])) for s in meta["shards"]]


def test_ray_actors_equal_one_process_row_for_row(local_ray: Any, tiny_model: Path, inputs: dict[str, Path], tmp_path: Path) -> None:  # noqa: F811
    single = _annotate(tiny_model, inputs, tmp_path / "single")
    on_ray = _annotate(tiny_model, inputs, tmp_path / "ray", "distributed=ray", "distributed.num_workers=2", "distributed.use_gpu=false")
    assert on_ray["annotate"] == single["annotate"] and on_ray["counts"] == single["counts"]
    a, b = _shards(tmp_path / "single"), _shards(tmp_path / "ray")
    assert [name for name, _ in a] == [name for name, _ in b]
    for (name, ta), (_, tb) in zip(a, b):
        assert ta.equals(tb), name
        assert (tmp_path / "single" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes()
    for f in single["annotate"]["copies"]:
        assert (tmp_path / "single" / f).read_text() == (tmp_path / "ray" / f).read_text()
    assert (tmp_path / "single" / "rejects.jsonl").read_text() == (tmp_path / "ray" / "rejects.jsonl").read_text()


def test_ray_job_stopped_midway_resumes_without_duplicates(local_ray: Any, tiny_model: Path, inputs: dict[str, Path], tmp_path: Path) -> None:  # noqa: F811
    from distnlp.annotate.output import OutputDir
    from distnlp.annotate.inputs import plan_inputs

    single = _annotate(tiny_model, inputs, tmp_path / "single")
    out = tmp_path / "ray"
    _annotate(tiny_model, inputs, out, "distributed=ray", "distributed.num_workers=2", "distributed.use_gpu=false")
    # as if the job had been killed: drop meta.json and the records of three splits
    (out / "meta.json").unlink()
    for n in (0, 4, 7):
        (out / ".annotate" / f"split-{n:05d}.json").unlink()
    plan = plan_inputs([str(inputs["text"]), str(inputs["jsonl"]), str(inputs["corpus"])], 4)
    assert sorted(OutputDir(out).finished(plan)) == [1, 2, 3, 5, 6]
    resumed = _annotate(tiny_model, inputs, out, "distributed=ray", "distributed.num_workers=2", "distributed.use_gpu=false")
    assert resumed["annotate"] == single["annotate"]
    assert [(n, t.to_pylist()) for n, t in _shards(out)] == [(n, t.to_pylist()) for n, t in _shards(tmp_path / "single")]


def test_an_actor_error_reaches_the_driver_as_one_line(local_ray: Any, tiny_model: Path, tmp_path: Path) -> None:  # noqa: F811
    from distnlp.annotate.inputs import plan_inputs
    from distnlp.annotate.output import OutputDir
    from distnlp.annotate.progress import Progress
    from distnlp.annotate.settings import parse_overrides
    from distnlp.errors import DistnlpError
    from distnlp.ray_backend.annotate import annotate_on_ray

    text = tmp_path / "texts.txt"
    text.write_text("One line.\nTwo lines.\n")
    plan = plan_inputs([str(text)], 1)
    text.write_text("One line.\n")  # shrinks after planning: the second split cannot be read
    out = OutputDir(tmp_path / "out")
    out.claim({"job": 1}, [str(text)])
    settings = parse_overrides(["distributed=ray", "distributed.num_workers=1", "distributed.use_gpu=false"])
    with pytest.raises(DistnlpError) as err:
        annotate_on_ray(str(tiny_model), plan, list(plan.splits), out, settings, copy_format=None, trust_code=False, progress=Progress(2))
    message = str(err.value)
    assert "\n" not in message and "texts.txt: ended at line 1 but had 2 lines when planned" in message, message
