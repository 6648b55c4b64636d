"""connect(): no address starts a truly private Ray (address="local", loopback), never the
cluster a stale ray_current_cluster file names; every attempt has a deadline and a clear error."""
from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")

from distnlp.config.settings import DistributedSettings  # noqa: E402
from distnlp.errors import DistnlpError  # noqa: E402
from distnlp.ray_backend import driver  # noqa: E402
from distnlp.ray_backend.connection import host_port  # noqa: E402


@pytest.fixture
def fake_init(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(driver.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(driver.ray, "init", lambda **kw: calls.append(kw))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return calls


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_address_starts_a_private_local_ray(fake_init: list[dict[str, Any]]) -> None:
    driver.connect(DistributedSettings(num_cpus=2))
    (kw,) = fake_init
    assert kw["address"] == "local" and kw["_node_ip_address"] == "127.0.0.1" and kw["num_cpus"] == 2


def test_unreachable_address_fails_fast_naming_it(fake_init: list[dict[str, Any]]) -> None:
    address = f"127.0.0.1:{_free_port()}"  # nothing listens there
    start = time.monotonic()
    with pytest.raises(DistnlpError, match=rf"cannot reach the Ray cluster at {address}.*distributed.address"):
        driver.connect(DistributedSettings(address=address))
    assert time.monotonic() - start < 10 and fake_init == []


def test_a_hanging_connection_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    never = threading.Event()
    monkeypatch.setattr(driver.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(driver.ray, "init", lambda **kw: never.wait())
    with socket.socket() as server:  # accepts TCP, never speaks Ray
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        with pytest.raises(DistnlpError, match=rf"connecting to the Ray cluster at {address} did not finish within 0.5s"):
            driver.connect(DistributedSettings(address=address, connect_timeout_s=0.5))
    never.set()


def test_a_failed_connection_names_the_address(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**kw: Any) -> None:
        raise ConnectionError("Could not find any running Ray instance.\nmore lines")

    monkeypatch.setattr(driver.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(driver.ray, "init", refuse)
    with pytest.raises(DistnlpError, match=r"cannot connect to the Ray cluster at auto: Could not find any running Ray instance\. \("):
        driver.connect(DistributedSettings(address="auto"))


def test_host_port() -> None:
    assert host_port("10.0.0.1:6379") == ("10.0.0.1", 6379)
    assert host_port("ray://head:10001") == ("head", 10001)
    assert host_port("auto") is None and host_port("local") is None


@pytest.mark.ray
def test_stale_current_cluster_file_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    # a bare ray.init() would try to join the dead cluster this file names
    from ray._common.utils import get_default_ray_temp_dir

    tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray puts unix sockets in there
    monkeypatch.setenv("RAY_TMPDIR", tmp)  # not the shared /tmp/ray of other Ray users
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    stale = Path(get_default_ray_temp_dir()) / "ray_current_cluster"
    stale.parent.mkdir(parents=True)
    stale.write_text(f"127.0.0.1:{_free_port()}")
    try:
        driver.connect(DistributedSettings(num_cpus=1, connect_timeout_s=90))
        assert ray.is_initialized()
        assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


def test_connect_timeout_is_a_valid_setting() -> None:
    from distnlp.cli.compose import compose_config
    from distnlp.config import validate_config

    config = compose_config(["distributed=ray", "distributed.connect_timeout_s=30"])
    validate_config(config)
    assert config["distributed"]["connect_timeout_s"] == 30
