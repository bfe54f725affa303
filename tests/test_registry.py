"""The generic registry: kebab-case names, one class per name, unknown names listed, complete in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from longtail.core.errors import ConfigError
from longtail.core.registry import Registry


class _Good:
    name = "tail-oversampling"


class _Snake:
    name = "weighted_sample"


def test_a_registry_rejects_snake_case_and_taken_names_and_lists_known_ones() -> None:
    registry: Registry = Registry("widget")
    assert registry.register(_Good) is _Good and registry.register(_Good) is _Good
    with pytest.raises(ConfigError, match="must be kebab-case"):
        registry.register(_Snake)
    taken = type("Other", (), {"name": "tail-oversampling"})
    with pytest.raises(ConfigError, match="is taken by _Good"):
        registry.register(taken)
    with pytest.raises(ConfigError, match="unknown widget 'nope'; known: tail-oversampling"):
        registry.get("nope")


def test_every_name_is_known_without_importing_its_module_first() -> None:
    # a fresh interpreter that imports only the balance interface and the recommender base
    code = (
        "from longtail.balance.component import COMPONENTS; from longtail.models.base import RECOMMENDERS; "
        "print(' '.join(COMPONENTS.names())); print(' '.join(RECOMMENDERS.names()))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ).stdout.split("\n")
    components, recommenders = set(output[0].split()), set(output[1].split())
    assert {"tail-oversampling", "weighted-sampling", "crop", "text-eda", "smote-enn", "class-weights", "ctgan"} <= components
    assert "weighted_sample" not in components
    assert recommenders == {"als", "content", "ease", "fusion", "itemknn", "popularity", "sasrec", "sasrec-adaptor", "sasrec-dual-view", "sasrec-tail-blend"}
