"""Rank 0's console, relayed to the driver: a run under Ray prints what a single-process run prints.

Rank 0 sends its console calls (table lines, progress) through a Ray queue; a thread on the driver
replays them on the driver's `TerminalConsole`. So the table comes once, without Ray's worker
prefixes, and the progress bar draws on the driver's terminal (and stays quiet in `ray job logs`).
Worker output itself is not shown unless asked for (logging_setup.py), so Ray's own chatter is
hidden; a failed worker still gets one line, from `FailureNotice` on Ray Train's controller.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import ray
from ray.train import UserCallback
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from ray.util.queue import Empty, Queue

from ..training.console import Console, Progress

Event = tuple[Any, ...]  # ("print", text) | ("open", total) | ("advance", steps, words) | ("close",)
MAX_LINE = 200  # characters of an error shown in a failure line
PROGRESS_INTERVAL_S = 0.5  # rank 0 sends progress at most this often: one queue call each, not one per step


class RelayConsole:
    """Rank 0's console on a Ray worker."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue

    def print(self, text: str) -> None:
        self.queue.put_nowait(("print", text))

    def progress(self, total: int) -> Progress:
        return RelayProgress(self.queue.put_nowait, total)


class RelayProgress:
    def __init__(self, send: Callable[[Event], None], total: int) -> None:
        self._send = send
        self._steps = self._words = 0
        self._last = time.monotonic()
        send(("open", total))

    def update(self, steps: int, words: int) -> None:
        self._steps += steps
        self._words += words
        if time.monotonic() - self._last >= PROGRESS_INTERVAL_S:
            self._flush()

    def close(self) -> None:
        self._flush()
        self._send(("close",))

    def _flush(self) -> None:
        if self._steps:
            self._send(("advance", self._steps, self._words))
        self._steps = self._words = 0
        self._last = time.monotonic()


class _LogRelay(logging.Handler):
    """distnlp's log records on a worker, as the CLI formats them, sent to the driver's console."""

    def __init__(self, queue: Queue, rank: int) -> None:
        # Rank 0 says what one process would say (INFO: e.g. a head left out for want of labels);
        # the other ranks only what goes wrong (WARNING and up: e.g. a skipped corrupt checkpoint).
        super().__init__(logging.INFO if rank == 0 else logging.WARNING)
        self.queue, self.rank = queue, rank

    def emit(self, record: logging.LogRecord) -> None:
        where = "" if self.rank == 0 else f" (worker {self.rank})"
        try:
            self.queue.put_nowait(("print", f"{record.levelname} {record.name}{where}: {record.getMessage()}"))
        except Exception:
            self.handleError(record)


def relay_logs(queue: Queue, rank: int) -> None:
    """Send distnlp's log records on this worker to the driver, whose console shows them (the
    worker's own stderr is hidden with the rest of Ray's output)."""
    logger = logging.getLogger("distnlp")
    logger.handlers = [h for h in logger.handlers if not isinstance(h, _LogRelay)]  # a reused worker process
    logger.addHandler(_LogRelay(queue, rank))
    if logger.getEffectiveLevel() > logging.INFO:  # a Ray worker's root logger passes WARNING and up only
        logger.setLevel(logging.INFO)


class DriverRelay:
    """The driver's end: a queue for rank 0, and a thread replaying its events on `console`."""

    def __init__(self, console: Console) -> None:
        self.console = console
        # num_cpus=0: the queue must not take a CPU the workers are waiting for. On the driver's
        # node, as Ray Train puts its controller: a lost worker node must not take the queue with
        # it (the controller's FailureNotice would fail, and with it the run, instead of restarting).
        # Hard: a soft affinity sometimes put it on another node (seen on a loaded 2-node cluster).
        here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
        self.queue = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": here})
        self._stop = threading.Event()
        self._bar: Progress | None = None
        self._thread = threading.Thread(target=self._run, name="distnlp-relay", daemon=True)

    def __enter__(self) -> "DriverRelay":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._close_bar()
        self.queue.shutdown()

    def _run(self) -> None:
        while True:
            try:
                event = self.queue.get(block=True, timeout=0.2)
            except Empty:
                if self._stop.is_set():
                    return  # everything sent before fit() returned has been shown
                continue
            except Exception:  # the queue's actor is gone (Ray shut down): nothing more will come
                return
            self._show(event)

    def _show(self, event: Event) -> None:
        kind = event[0]
        if kind == "print":
            self.console.print(event[1])
        elif kind == "open":
            self._close_bar()
            self._bar = self.console.progress(int(event[1]))
        elif kind == "advance" and self._bar is not None:
            self._bar.update(int(event[1]), int(event[2]))
        elif kind == "close":
            self._close_bar()

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class FailureNotice(UserCallback):
    """Runs on Ray Train's controller: one readable line on the driver for every failed worker,
    instead of Ray's multi-line tracebacks (which are hidden with the rest of its output)."""

    def __init__(self, queue: Queue, max_failures: int) -> None:
        self.queue = queue
        self.max_failures = max_failures
        self.failures = 0

    def after_exception(self, run_context: Any, worker_exceptions: dict[int, Exception]) -> None:
        self.failures += 1
        if self.max_failures < 0 or self.failures <= self.max_failures:
            then = f"restarting the workers from the last committed checkpoint (restart {self.failures} of {_limit(self.max_failures)})"
        else:
            then = f"no restarts left (distributed.max_failures={self.max_failures})"
        # A dead worker breaks its peers' collectives too: name the dead, not the errors that follow.
        dead = {rank: exc for rank, exc in worker_exceptions.items() if _is_death(exc)}
        failed = "; ".join(f"worker {rank} {'died' if _is_death(exc) else 'failed'}: {one_line(exc)}"
                           for rank, exc in sorted((dead or worker_exceptions).items()))
        self.queue.put_nowait(("print", f"ray: {failed}; {then}"))


def _is_death(exc: BaseException) -> bool:
    """The worker's process is gone (killed, crashed, unreachable), as opposed to an error it raised."""
    return any(word in type(exc).__name__ for word in ("HealthCheck", "ActorDied", "ActorUnavailable", "WorkerCrashed"))


def _limit(max_failures: int) -> str:
    return "unlimited" if max_failures < 0 else str(max_failures)


def one_line(exc: BaseException) -> str:
    """The readable core of a (Ray-wrapped) exception: the innermost cause; of a traceback its
    last line (the error itself), else the message's first line."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    line = lines[-1] if any(line.startswith("Traceback") for line in lines) else lines[0]
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 3] + "..."
