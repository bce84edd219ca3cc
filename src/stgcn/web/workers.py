"""Inference slots: one long-lived worker process each, so that requests run off the event loop and in
parallel, a slow one can be stopped, and the server keeps answering.

Each slot's process loads the model once, then answers jobs from a pipe. A request takes a free slot
or is refused at once (:class:`Busy`, HTTP 503): the number of slots bounds the concurrency. A job
running past the time limit is ended by killing its process (:class:`JobTimeout`, HTTP 504), which a
thread cannot be; the slot starts a fresh process. Processes are started with ``spawn``: torch and
MediaPipe hold threads that a ``fork`` would copy in a broken state.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

READY_TIMEOUT_S = 300.0  # loading torch, the model and MediaPipe on a busy 2-core machine


class Busy(Exception):
    """Every slot is running a job."""


class JobTimeout(Exception):
    """A job ran past the time limit and was stopped."""


class WorkerFailed(Exception):
    """A worker process died or could not load the model."""


@dataclass(frozen=True)
class ModelSource:
    """What the workers load: a checkpoint path (``official`` for the official format)."""

    checkpoint: str
    official: bool = False
    threads: int = 1


def _worker_main(conn: Connection, source: ModelSource) -> None:
    """A worker process: load the model, say ``ready`` (with the model's description), answer jobs."""
    try:
        import torch

        torch.set_num_threads(max(1, source.threads))
        from ..inference.predictor import Predictor

        predictor = Predictor.from_checkpoint(source.checkpoint, official=source.official)
        from .. import plots

        plots._plt()  # import matplotlib now, not in the first job's time
        conn.send(("ready", describe_model(predictor, source.checkpoint)))
    except BaseException as exc:  # noqa: BLE001 - reported to the server, which names it
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    from ..errors import StgcnError
    from .jobs import run_job

    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        try:
            conn.send(("ok", run_job(predictor, job)))
        except StgcnError as exc:  # bad input: the client's to fix
            conn.send(("refused", str(exc)))
        except Exception as exc:  # noqa: BLE001 - a bug: logged by the server, the worker lives on
            conn.send(("error", "".join(traceback.format_exception(exc))))


def describe_model(predictor: Any, checkpoint: str) -> dict:
    c = predictor.contract
    meta = predictor.meta
    return {"checkpoint": os.path.basename(checkpoint), "pretrained": meta.get("pretrained"),
            "layout": c.layout.name, "persons": c.num_persons, "channels": list(c.channels),
            "clip_len": c.clip_len, "classes": list(predictor.class_names)}


class Slot:
    """One worker process and the pipe to it."""

    def __init__(self, ctx: Any, source: ModelSource) -> None:
        self.ctx, self.source = ctx, source
        self.model: dict | None = None
        self._start()

    def _start(self) -> None:
        self.conn, child = self.ctx.Pipe()
        self.process = self.ctx.Process(target=_worker_main, args=(child, self.source), daemon=True,
                                        name="stgcn-serve-worker")
        self.process.start()
        child.close()
        self._ready = False

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> dict:
        """Block until the worker has loaded the model (its description), or raise WorkerFailed."""
        if not self._ready:
            status, value = self._receive(timeout, "loading the model")
            if status != "ready":
                raise WorkerFailed(f"the worker could not load the model: {value}")
            self._ready, self.model = True, value
        return self.model

    def _receive(self, timeout: float, what: str) -> tuple[str, Any]:
        if not self.conn.poll(timeout):
            raise JobTimeout(f"{what} took longer than {timeout:.0f} s")
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            raise WorkerFailed(f"the worker process ended while {what} (exit code "
                               f"{self.process.exitcode})") from None

    def run(self, job: dict, timeout: float) -> tuple[str, Any]:
        """Run ``job``; ``(status, value)``. On a timeout or a dead worker the process is replaced."""
        try:
            self.wait_ready()
            self.conn.send(job)
            return self._receive(timeout, "running the job")
        except (JobTimeout, WorkerFailed, BrokenPipeError):
            self.restart()
            raise

    def restart(self) -> None:
        self.stop()
        self._start()

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=10)
        self.conn.close()


class WorkerPool:
    """``slots`` worker processes; :meth:`reserve` takes a free one or raises :class:`Busy`."""

    def __init__(self, source: ModelSource, slots: int = 1) -> None:
        if slots < 1:
            raise ValueError("at least one inference slot is needed")
        ctx = mp.get_context("spawn")
        self.slots = [Slot(ctx, source) for _ in range(slots)]
        self._free = list(self.slots)
        self._lock = threading.Lock()
        self.model: dict = {}

    @property
    def capacity(self) -> int:
        return len(self.slots)

    @property
    def running(self) -> int:
        with self._lock:
            return len(self.slots) - len(self._free)

    @contextlib.contextmanager
    def reserve(self) -> Iterator[Slot]:
        with self._lock:
            if not self._free:
                raise Busy(f"all {len(self.slots)} inference slot(s) are busy; retry in a moment")
            slot = self._free.pop()
        try:
            yield slot
        finally:
            with self._lock:
                self._free.append(slot)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> dict:
        """Wait until every worker has loaded the model (before the server takes requests); the
        model's description."""
        self.model = [s.wait_ready(timeout) for s in self.slots][0]
        return self.model

    def close(self) -> None:
        for s in self.slots:
            s.stop()
