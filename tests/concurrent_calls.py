"""Call a function from one thread per argument, all released at once, for tests of shared caches and batchers."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

Arg = TypeVar("Arg")
Result = TypeVar("Result")


def call_at_once(call: Callable[[Arg], Result], args: Sequence[Arg]) -> dict[Arg, Result]:
    """`call(arg)` for every arg, each on its own thread, started together behind a barrier; results keyed by arg."""
    start = threading.Barrier(len(args))
    results: dict[Arg, Result] = {}

    def run(arg: Arg) -> None:
        start.wait()
        results[arg] = call(arg)

    threads = [threading.Thread(target=run, args=(arg,)) for arg in args]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
