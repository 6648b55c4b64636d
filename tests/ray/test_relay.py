"""Without starting Ray: the failure line names the worker that died (not its peers' broken
collectives) and whether it restarts; distributed.ray_log_level decides what Ray may print."""
from __future__ import annotations

import logging
from typing import Any

import pytest

pytest.importorskip("ray")

from distnlp.errors import ConfigError  # noqa: E402
from distnlp.ray_backend.logging_setup import RayLogging  # noqa: E402
from distnlp.ray_backend.relay import FailureNotice, RelayProgress, one_line  # noqa: E402
from distnlp.config.settings import DistributedSettings  # noqa: E402


class FakeQueue:
    def __init__(self) -> None:
        self.items: list[Any] = []

    def put_nowait(self, item: Any) -> None:
        self.items.append(item)


class WorkerHealthCheckFailedError(Exception):  # the name Ray Train gives a worker it lost
    pass


def test_failure_line_names_the_dead_worker_and_the_restart() -> None:
    queue = FakeQueue()
    notice = FailureNotice(queue, max_failures=1)  # type: ignore[arg-type]
    broken_peer = RuntimeError("[gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:15253: Connection reset by peer")
    notice.after_exception(None, {0: broken_peer, 1: WorkerHealthCheckFailedError("A worker health check failed.\n\tdetails")})
    notice.after_exception(None, {0: ValueError("Traceback (most recent call last):\n  File x\nValueError: bad shard")})
    (first,), (second,) = [item[1:] for item in queue.items]
    assert first == ("ray: worker 1 died: A worker health check failed.; restarting the workers from the last committed "
                     "checkpoint (restart 1 of 1)")
    assert second == "ray: worker 0 failed: ValueError: bad shard; no restarts left (distributed.max_failures=1)"


def test_one_line_is_short() -> None:
    assert one_line(RuntimeError("x" * 500)).endswith("...") and len(one_line(RuntimeError("x" * 500))) == 200
    assert one_line(RuntimeError("")) == "RuntimeError"


def test_progress_is_sent_in_batches_not_per_step() -> None:
    sent: list[Any] = []
    bar = RelayProgress(sent.append, 200)
    for _ in range(100):
        bar.update(1, 50)  # fast steps: within PROGRESS_INTERVAL_S of each other
    bar.close()
    assert sent[0] == ("open", 200) and sent[-1] == ("close",)
    advances = [e for e in sent if e[0] == "advance"]
    assert len(advances) < 5 and sum(e[1] for e in advances) == 100 and sum(e[2] for e in advances) == 5000


def test_ray_log_level(monkeypatch: pytest.MonkeyPatch) -> None:
    def level(**dist: Any) -> RayLogging:
        return RayLogging.from_settings(DistributedSettings.from_config({"distributed": dist}))

    root = logging.getLogger()
    monkeypatch.setattr(root, "level", logging.INFO)
    quiet = level()
    assert quiet.init_kwargs() == {"log_to_driver": False, "logging_level": logging.ERROR}
    assert level(ray_log_level="info").init_kwargs() == {"log_to_driver": True, "logging_level": logging.INFO}
    monkeypatch.setattr(root, "level", logging.DEBUG)  # distnlp --verbose
    assert level().init_kwargs() == {"log_to_driver": True, "logging_level": logging.INFO}
    assert level(ray_log_level="ERROR").init_kwargs()["log_to_driver"] is False
    with pytest.raises(ConfigError, match="distributed.ray_log_level"):
        level(ray_log_level="loud")
