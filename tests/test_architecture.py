"""The layers contract in pyproject.toml: import-linter rejects an upward import and accepts the package as it is."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason=f"import-linter not installed beside {sys.executable}; pip install -e '.[dev]'")


def _copy_package(destination: Path) -> Path:
    """A copy of src/longtail and the contract, so edits and grimp's view never touch the working tree."""
    shutil.copytree(REPO_ROOT / "src" / "longtail", destination / "longtail", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", destination / "pyproject.toml")
    return destination


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run lint-imports on the package copied under root, with only that copy importable."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache", "--no-logo"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _broken_layers(output: str) -> set[tuple[str, str]]:
    """(importer, imported) folder pairs that import-linter reports as breaking the layers."""
    return set(re.findall(r"^(longtail\.\w+) is not allowed to import (longtail\.\w+):", output, flags=re.MULTILINE))


def test_an_upward_import_from_core_breaks_the_contract(tmp_path: Path) -> None:
    root = _copy_package(tmp_path)
    errors = root / "longtail" / "core" / "errors.py"
    errors.write_text(errors.read_text(encoding="utf-8") + "\nimport longtail.serve\n", encoding="utf-8")
    result = _lint_imports(root)
    assert result.returncode != 0
    assert ("longtail.core", "longtail.serve") in _broken_layers(result.stdout)
    assert "longtail.core.errors -> longtail.serve" in result.stdout


def test_the_package_as_it_is_keeps_its_layers(tmp_path: Path) -> None:
    result = _lint_imports(_copy_package(tmp_path))
    assert _broken_layers(result.stdout) == set(), result.stdout
    assert result.returncode == 0, result.stdout + result.stderr
