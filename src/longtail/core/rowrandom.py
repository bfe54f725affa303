"""Counter-based random draws per row: a row's draws depend only on (seed, stream name, row key, draw number).

Nothing is carried from one row to the next, so a table split into any number of batches, in any order,
on any executor, gets the same draws for the same rows (the reason the sampling components can run per partition).
"""

from __future__ import annotations

import hashlib

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MASK64 = (1 << 64) - 1


def mix64(values: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser over uint64 values: a bijection whose every output bit depends on every input bit."""
    x = np.asarray(values, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def stream_key(seed: int, stream: str) -> int:
    """One 64-bit key for a seed and a stream name (e.g. a component's name), so two components never share draws."""
    digest = hashlib.blake2b(f"{seed & _MASK64}:{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def combine_keys(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """A row key from two uint64 parts (e.g. a content hash and the occurrence among identical rows)."""
    with np.errstate(over="ignore"):
        return mix64(np.asarray(first, dtype=np.uint64) ^ mix64(np.asarray(second, dtype=np.uint64) + _GOLDEN))


def uniforms(stream: int, keys: np.ndarray, draw: int = 0) -> np.ndarray:
    """One uniform draw in [0, 1) per row key, the `draw`-th of the row's stream."""
    with np.errstate(over="ignore"):
        salt = mix64(np.asarray([stream], dtype=np.uint64) + np.uint64(draw + 1) * _GOLDEN)
        bits = mix64(mix64(np.asarray(keys, dtype=np.uint64) ^ salt))
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53


def row_generator(stream: int, key: int, draw: int = 0) -> np.random.Generator:
    """A generator of its own for one row (Philox keyed by stream and row, counter at `draw`), for draws a row needs many of."""
    return np.random.Generator(np.random.Philox(key=(int(key) << 64) | (stream & _MASK64), counter=draw))
