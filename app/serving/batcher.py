"""Dynamic batching: requests that arrive within a short window share one batched generation, run on a
single worker thread (the model is never used by two threads at once)."""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from medzoo.core.inference import Completion, InferenceEngine, InvalidSettings, RowRequest


@dataclass(frozen=True)
class BatchingSettings:
    #: how long the worker waits for more requests after the first one of a batch arrives
    window_s: float = 0.010
    #: after the window, keep waiting (up to this long in all) while requests are still being prepared
    max_wait_s: float = 0.050
    max_batch_size: int = 32
    #: requests waiting beyond this many are refused (503)
    max_pending: int = 256


class Job(Protocol):
    """A request for the batcher: the row to generate plus where its result goes."""

    row: RowRequest

    def on_done(self, completion: Completion) -> None: ...

    def on_error(self, message: str, status: int = 500) -> None: ...


class QueueFull(RuntimeError):
    """More requests are waiting than the batcher accepts."""


class DynamicBatcher:
    """Collects jobs for up to ``window_s`` (or ``max_batch_size`` jobs) and answers them in one batch."""

    def __init__(self, engine: InferenceEngine, settings: BatchingSettings | None = None) -> None:
        self.engine = engine
        self.settings = settings or BatchingSettings()
        self._queue: queue.Queue[Job] = queue.Queue(maxsize=self.settings.max_pending)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        #: sizes of the most recent batches, oldest first
        self.batch_sizes: deque[int] = deque(maxlen=1000)
        self.requests_done = 0
        self._preparing = 0
        self._preparing_lock = threading.Lock()

    @contextmanager
    def preparing(self) -> Iterator[None]:
        """Mark a request as on its way (images being decoded): a batch being gathered waits for it."""
        with self._preparing_lock:
            self._preparing += 1
        try:
            yield
        finally:
            with self._preparing_lock:
                self._preparing -= 1

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._work, name="medzoo-batcher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the running batch, then fail the jobs still waiting."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        while True:
            try:
                self._queue.get_nowait().on_error("the server is shutting down", 503)
            except queue.Empty:
                break

    def submit(self, job: Job) -> None:
        if self._stopping.is_set() or self._thread is None:
            raise QueueFull("the server is not accepting requests")
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise QueueFull(f"{self.settings.max_pending} requests are already waiting; retry later") from None

    def _collect(self) -> list[Job]:
        try:
            first = self._queue.get(timeout=0.1)
        except queue.Empty:
            return []
        batch = [first]
        start = time.monotonic()
        window_end, wait_end = start + self.settings.window_s, start + max(self.settings.max_wait_s, 0.0)
        while len(batch) < self.settings.max_batch_size:
            now = time.monotonic()
            remaining = window_end - now
            if remaining <= 0:
                if self._preparing == 0 or now >= wait_end:
                    break
                remaining = min(0.002, wait_end - now)
            try:
                batch.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                continue
        return batch

    def _work(self) -> None:
        while not self._stopping.is_set():
            jobs = [job for job in self._collect() if not job.row.cancelled.is_set()]
            if not jobs:
                continue
            self.batch_sizes.append(len(jobs))
            self._answer(jobs)

    def _answer(self, jobs: list[Job]) -> None:
        """One batch; when it fails, its rows again one by one, so only the row at fault fails.

        A row that has already streamed part of its answer cannot start over: it gets the batch's error.
        """
        try:
            completions = self.engine.run([job.row for job in jobs])
        except Exception as error:  # one failed batch must not stop the worker
            if len(jobs) == 1:
                jobs[0].on_error(*failure(error))
                return
            for job in jobs:
                if job.row.streamed:
                    job.on_error(*failure(error))
                elif not job.row.cancelled.is_set():
                    self._answer([job])
            return
        self.requests_done += len(jobs)
        for job, completion in zip(jobs, completions, strict=True):
            job.on_done(completion)


def failure(error: Exception) -> tuple[str, int]:
    """A one-line message and HTTP status for a row that could not be generated (400 for bad settings)."""
    if isinstance(error, InvalidSettings):
        return str(error).splitlines()[0], 400
    lines = f"{type(error).__name__}: {error}".splitlines()
    return f"generation failed: {lines[0] if lines else type(error).__name__}", 500
