"""Connecting to Ray with a deadline: `driver.connect` uses these so that no connection attempt
can hang a run forever (a stale cluster address, a firewall dropping packets, a head that is
still starting), and the error names the address and what to do.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import DistnlpError

__all__ = ["host_port", "loopback_only", "probe", "run_with_deadline"]

LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray uses 127.0.0.1 as the node address


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """A Ray started inside binds to 127.0.0.1, unreachable from other machines.

    Ray reads LOOPBACK_ENV once, when it is imported (before any distnlp code can set it), so the
    constant it derived is switched too; the env var reaches the workers the raylet starts.
    """
    from ray._private import ray_constants

    os.environ.setdefault(LOOPBACK_ENV, "0")
    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = os.environ[LOOPBACK_ENV] not in ("0", "false", "False")
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


def host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of "host:port" or "ray://host:port"; None for "auto" or anything else."""
    rest = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def probe(address: str, timeout_s: float, fix: str) -> None:
    """Fail fast, naming the address, when nothing accepts TCP connections there."""
    hp = host_port(address)
    if hp is None:
        return
    try:
        with socket.create_connection(hp, timeout=min(timeout_s, 10.0)):
            pass
    except OSError as exc:
        raise DistnlpError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc} ({fix})") from None


class _NoThreadWarning(logging.Filter):
    # ray.init off the main thread warns that it set no SIGTERM handler; we set the same one.
    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


def run_with_deadline(fn: Callable[[], Any], timeout_s: float, what: str, fix: str) -> Any:
    """Run `fn` (a ray.init call) in a daemon thread; raise DistnlpError naming `what` if it
    fails, or if it has not returned after `timeout_s` seconds (the thread is abandoned). After a
    success the thread stays parked: processes it started must outlive it (see `attempt`)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))  # as ray.init does
    result: dict[str, Any] = {}
    done = threading.Event()

    def attempt() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:  # reported in the caller's thread
            result["error"] = exc
            done.set()
            return
        done.set()
        # Ray starts a private Ray's GCS and raylet with PR_SET_PDEATHSIG, which Linux ties to the
        # *thread* that started them: were this thread to end, they would be killed at once (and the
        # run would fail a minute later with "Failed to connect to GCS"). So it stays, idle, for
        # the life of the process (a daemon thread: it never holds up the exit).
        threading.Event().wait()

    ray_log = logging.getLogger("ray._private.worker")
    quiet = _NoThreadWarning()
    ray_log.addFilter(quiet)
    try:
        threading.Thread(target=attempt, name="distnlp-ray-connect", daemon=True).start()
        if not done.wait(timeout_s):
            raise DistnlpError(f"connecting to {what} did not finish within {timeout_s:g}s ({fix})")
    finally:
        ray_log.removeFilter(quiet)
    if "error" in result:
        exc = result["error"]
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DistnlpError(f"cannot connect to {what}: {first} ({fix})") from exc
    return result.get("value")
