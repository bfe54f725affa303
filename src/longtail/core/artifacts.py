"""Writing artifacts: a folder appears whole or not at all, JSON is saved and loaded one way, and a manifest proves a folder intact."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from longtail.core.errors import InputDataError


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


MANIFEST_FILE = "manifest.json"


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _entry(path: Path) -> dict[str, Any]:
    return {"bytes": path.stat().st_size, "sha256": _digest(path)}


def _listed_files(folder: Path) -> Iterator[Path]:
    # Hidden files are a library's locks and bookkeeping (tantivy's), rewritten by readers; they are not the artifact.
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and relative.as_posix() != MANIFEST_FILE and not any(part.startswith(".") for part in relative.parts):
            yield path


def write_manifest(folder: str | Path) -> Path:
    """Record every file of an artifact folder with its size and SHA-256 in `manifest.json`, for `verify_manifest`."""
    folder = Path(folder)
    return save_json(folder / MANIFEST_FILE, {"files": {path.relative_to(folder).as_posix(): _entry(path) for path in _listed_files(folder)}})


def update_manifest(folder: str | Path, names: Iterable[str]) -> None:
    """Re-record files of a folder rewritten in place after it was built (no-op for a folder without a manifest)."""
    folder = Path(folder)
    if not (folder / MANIFEST_FILE).is_file():
        return
    manifest = load_json(folder / MANIFEST_FILE)
    manifest["files"].update({name: _entry(folder / name) for name in names})
    staging = folder / f"{MANIFEST_FILE}.tmp"
    save_json(staging, manifest)
    os.replace(staging, folder / MANIFEST_FILE)


def verify_manifest(folder: str | Path) -> bool:
    """Check every file `manifest.json` lists: present, same size, same SHA-256; False when the folder has no manifest.

    Raises InputDataError naming the first file that does not match, so a truncated or emptied file is reported
    as such instead of failing somewhere inside the library that reads it."""
    folder = Path(folder)
    if not (folder / MANIFEST_FILE).is_file():
        return False
    try:
        listed = load_json(folder / MANIFEST_FILE)["files"]
    except (ValueError, KeyError, TypeError) as error:
        raise InputDataError(folder / MANIFEST_FILE, f"unreadable manifest ({error})") from None
    rebuild = "rebuild it (e.g. `longtail index`) or restore the folder from a backup"
    for name, expected in listed.items():
        path = folder / name
        if not path.is_file():
            raise InputDataError(path, f"missing; the manifest lists it; {rebuild}")
        size = path.stat().st_size
        if size != expected["bytes"]:
            raise InputDataError(path, f"is {size:,} bytes but was written as {expected['bytes']:,} (truncated or replaced); {rebuild}")
        if _digest(path) != expected["sha256"]:
            raise InputDataError(path, f"its SHA-256 differs from the one recorded when it was written (corrupted); {rebuild}")
    return True
