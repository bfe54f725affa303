"""Micro-batching: concurrent callers share calls of the work function, each gets its own result, errors reach them."""

from __future__ import annotations

import threading

import pytest

from concurrent_calls import call_at_once
from longtail.core.batching import MicroBatcher


def run_together(batcher: MicroBatcher[int, int], inputs: list[int]) -> dict[int, int | Exception]:
    def call(value: int) -> int | Exception:
        try:
            return batcher(value)
        except ValueError as error:
            return error

    return call_at_once(call, inputs)


def test_concurrent_calls_share_batches_and_each_gets_its_own_result() -> None:
    seen: list[list[int]] = []

    def squares(values: list[int]) -> list[int]:
        seen.append(values)
        return [value * value for value in values]

    batcher = MicroBatcher(squares, window_seconds=0.2, max_batch=4)
    got = run_together(batcher, list(range(10)))
    assert got == {value: value * value for value in range(10)}
    assert sorted(value for batch in seen for value in batch) == list(range(10))
    assert all(len(batch) <= 4 for batch in seen) and batcher.batches == len(seen) < 10
    assert batcher.many([3, 4]) == [9, 16]


def test_an_error_reaches_every_caller_of_its_batch_and_later_batches_still_run() -> None:
    def fails_on_seven(values: list[int]) -> list[int]:
        if 7 in values:
            raise ValueError("seven")
        return values

    batcher = MicroBatcher(fails_on_seven, window_seconds=0.2, max_batch=100)
    got = run_together(batcher, [5, 6, 7])
    assert isinstance(got[7], ValueError)
    # A caller that made the same batch as 7 shares its error; one that came too late for it gets its value.
    assert all(isinstance(got[value], ValueError) or got[value] == value for value in (5, 6))
    assert batcher(8) == 8


def test_a_batch_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(lambda values: values, max_batch=0)


def test_up_to_concurrency_batches_run_at_once_with_the_same_results_as_one_at_a_time() -> None:
    both_running = threading.Barrier(2, timeout=5)
    calls = 0
    lock = threading.Lock()

    def cubes(values: list[int]) -> list[int]:
        nonlocal calls
        with lock:
            calls += 1
            first_two = calls <= 2
        if first_two:  # passes only when two batches run together: one batch at a time would break the barrier
            both_running.wait()
        return [value**3 for value in values]

    concurrent = MicroBatcher(cubes, window_seconds=0.0, max_batch=2, concurrency=2)
    got = run_together(concurrent, list(range(12)))
    serial = MicroBatcher(lambda values: [value**3 for value in values], window_seconds=0.0, max_batch=2)
    assert got == {value: serial(value) for value in range(12)} == {value: value**3 for value in range(12)}
    assert concurrent.most_running == 2 and not both_running.broken


def test_no_more_than_concurrency_batches_run_at_once() -> None:
    running = 0
    most = 0
    lock = threading.Lock()

    def slow_identity(values: list[int]) -> list[int]:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        threading.Event().wait(0.02)
        with lock:
            running -= 1
        return values

    batcher = MicroBatcher(slow_identity, window_seconds=0.0, max_batch=1, concurrency=3)
    assert run_together(batcher, list(range(16))) == {value: value for value in range(16)}
    assert most <= 3 and batcher.most_running <= 3 and batcher.batches == 16


def test_a_concurrency_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        MicroBatcher(lambda values: values, concurrency=0)
