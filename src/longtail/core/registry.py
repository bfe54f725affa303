"""One generic registry: implementations selectable by a kebab-case name from config, filled explicitly."""

from __future__ import annotations

import importlib
import re
from typing import ClassVar, Generic, Protocol, TypeVar

from longtail.core.errors import ConfigError

KEBAB_CASE = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
# the one module that imports every implementation: looking a name up imports it first, so what is registered
# never depends on which modules a caller happened to import before
CATALOGUE = "longtail.registries"


class Named(Protocol):
    """Anything registered carries its registry name as a class attribute."""

    name: ClassVar[str]


T = TypeVar("T", bound=type[Named])


class Registry(Generic[T]):
    """Classes of one kind (recommenders, balancing components) by kebab-case name."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, cls: T) -> T:
        """Class decorator: make `cls` selectable by its `name`; a malformed or taken name is an error."""
        if not KEBAB_CASE.fullmatch(cls.name):
            raise ConfigError(f"{self.kind} name {cls.name!r} ({cls.__qualname__}) must be kebab-case, e.g. 'tail-oversampling'")
        if self._entries.get(cls.name, cls) is not cls:
            raise ConfigError(f"{self.kind} name {cls.name!r} is taken by {self._entries[cls.name].__qualname__}")
        self._entries[cls.name] = cls
        return cls

    def get(self, name: str) -> T:
        """The class registered as `name`; an unknown name is a ConfigError listing the known ones."""
        entries = self._complete()
        if name not in entries:
            raise ConfigError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(entries))}")
        return entries[name]

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._complete())

    def _complete(self) -> dict[str, T]:
        importlib.import_module(CATALOGUE)
        return self._entries
