"""Writing artifacts: a folder appears whole or not at all, and JSON is saved and loaded one way."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_folder(target: str | Path, carry: Iterable[str] = ()) -> Iterator[Path]:
    """Yield an empty staging folder beside `target`; when the block succeeds it replaces `target`, else it is removed.

    Files named in `carry` that the old folder has and the block did not write are copied over first (e.g. a
    decision log that outlives each model). The old folder is renamed aside before the new one is renamed in, so
    a reader sees the old folder or the new one, never half of either; the retired one is then deleted.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A unique name beside the target: same file system (so renames are atomic) and no clash between writers.
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".staging", dir=target.parent))
    retired = staging.with_suffix(".retired")
    try:
        yield staging
        for name in carry:
            if (target / name).is_file() and not (staging / name).exists():
                shutil.copyfile(target / name, staging / name)
        if target.exists():
            os.replace(target, retired)
        os.replace(staging, target)
        shutil.rmtree(retired, ignore_errors=True)
    except BaseException:
        if retired.exists() and not target.exists():
            os.replace(retired, target)  # the swap failed halfway: put the old folder back
        shutil.rmtree(staging, ignore_errors=True)
        raise


def save_json(path: str | Path, payload: Any, indent: int | None = 1) -> Path:
    """Write `payload` as UTF-8 JSON (non-ASCII kept readable; dates and other objects as their str)."""
    path = Path(path)
    path.write_text(json.dumps(payload, indent=indent, ensure_ascii=False, default=str), encoding="utf-8")
    return path


def load_json(path: str | Path) -> Any:
    """Read a JSON file written by `save_json` (or any UTF-8 JSON)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
