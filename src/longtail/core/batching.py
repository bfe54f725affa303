"""Micro-batching: calls made at about the same time by several threads are answered by one call on all their inputs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """Runs `work` once on the inputs of concurrent callers: the first caller waits `window_seconds` for company, then
    runs batches of at most `max_batch` inputs until none is left; the others wait for their own result. `work` takes a
    list of inputs and returns one result per input, in order. An error in `work` is raised to every caller of that
    batch, and later batches still run."""

    def __init__(self, work: Callable[[list[T]], Sequence[R]], window_seconds: float = 0.002, max_batch: int = 32) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1 (got {max_batch})")
        self.work = work
        self.window_seconds = window_seconds
        self.max_batch = max_batch
        self.batches = 0  # calls of `work` so far
        self._lock = threading.Lock()
        self._queue: list[tuple[T, Future[R]]] = []
        self._running = False  # a caller is draining the queue

    def __call__(self, item: T) -> R:
        """The result of `work` for this input, computed in a batch with whatever other threads asked meanwhile."""
        return self.many([item])[0]

    def many(self, items: Sequence[T]) -> list[R]:
        """Results for several inputs of one caller, all queued at once."""
        futures: list[Future[R]] = [Future() for _ in items]
        with self._lock:
            self._queue.extend(zip(items, futures, strict=True))
            lead = bool(futures) and not self._running
            self._running = self._running or lead
        if lead:
            self._drain()
        return [future.result() for future in futures]

    def _drain(self) -> None:
        if self.window_seconds > 0:
            time.sleep(self.window_seconds)
        while True:
            with self._lock:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                if not batch:
                    self._running = False
                    return
                self.batches += 1
            try:
                results = self.work([item for item, _ in batch])
            except Exception as error:  # each caller of this batch sees the error
                for _, future in batch:
                    future.set_exception(error)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                future.set_result(result)
