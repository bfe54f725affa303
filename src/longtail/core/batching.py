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
    """Runs `work` once on the inputs of concurrent callers. A caller that finds fewer than `concurrency` batches
    running takes the oldest queued inputs (at most `max_batch`; when it is alone it first waits `window_seconds` for
    company) and runs them; the others wait. Each caller leaves as soon as its own results are in, and another waiting
    caller takes the next batch, so no caller keeps working for requests that came after it. `work` takes a list of
    inputs and returns one result per input, in order, and must be safe to run from `concurrency` threads at once
    (model calls in C release the interpreter lock, so a second batch uses a second core); an error in `work` is
    raised to every caller of that batch. The queue holds inputs of callers that wait, so it is bounded by them."""

    def __init__(self, work: Callable[[list[T]], Sequence[R]], window_seconds: float = 0.002, max_batch: int = 32, concurrency: int = 1) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1 (got {max_batch})")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1 (got {concurrency})")
        self.work = work
        self.window_seconds = window_seconds
        self.max_batch = max_batch
        self.concurrency = concurrency
        self.batches = 0  # calls of `work` so far
        self.most_running = 0  # the most batches that ran at once so far
        self._condition = threading.Condition()
        self._queue: list[tuple[T, Future[R]]] = []
        self._running = 0  # batches being run by callers now

    def __call__(self, item: T) -> R:
        """The result of `work` for this input, computed in a batch with whatever other threads asked meanwhile."""
        return self.many([item])[0]

    def many(self, items: Sequence[T]) -> list[R]:
        """Results for several inputs of one caller, all queued at once."""
        futures: list[Future[R]] = [Future() for _ in items]
        with self._condition:
            self._queue.extend(zip(items, futures, strict=True))
        while not all(future.done() for future in futures):
            with self._condition:
                # An empty queue with our results still out means a running batch holds our inputs: wait for it.
                while (self._running >= self.concurrency or not self._queue) and not all(future.done() for future in futures):
                    self._condition.wait()
                if all(future.done() for future in futures):
                    break
                self._running += 1
                self.most_running = max(self.most_running, self._running)
                alone = len(self._queue) == 1
            try:
                if alone and self.window_seconds > 0:
                    time.sleep(self.window_seconds)
                self._run_batch()
            finally:
                with self._condition:
                    self._running -= 1
                    self._condition.notify_all()
        return [future.result() for future in futures]

    def _run_batch(self) -> None:
        with self._condition:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            if not batch:  # another caller took the queue while this one waited for company
                return
            self.batches += 1
        try:
            results = self.work([item for item, _ in batch])
        except Exception as error:  # each caller of this batch sees the error
            for _, future in batch:
                future.set_exception(error)
            return
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)
