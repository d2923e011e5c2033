"""The backend registry: every adapter, built-in or third-party, comes from the
``bragi.backends`` entry-point group, so both are registered the same way."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from importlib.metadata import entry_points
from pathlib import Path

from bragi.backends.protocol import (
    Backend,
    BackendOptions,
    Device,
    Engine,
    IsolatedBackend,
    ModelKind,
)
from bragi.errors import BackendUnavailableError, ConfigError

__all__ = ["ENTRY_POINT_GROUP", "BackendRegistry", "load_engine", "not_installed"]

ENTRY_POINT_GROUP = "bragi.backends"
log = logging.getLogger(__name__)


class BackendRegistry:
    """The backends Bragi knows, by name. Passed into ``create_app()``; no global state."""

    def __init__(self, backends: Iterable[Backend]):
        self._backends: dict[str, Backend] = {}
        for backend in backends:
            if backend.name in self._backends:
                raise ValueError(f"two backends are named {backend.name!r}")
            self._backends[backend.name] = backend

    @classmethod
    def from_entry_points(cls) -> BackendRegistry:
        found: list[Backend] = []
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            try:
                found.append(entry.load())
            except Exception:  # a broken plugin must not stop the server
                log.exception("cannot load backend plugin %s (%s)", entry.name, entry.value)
        return cls(found)

    def __iter__(self) -> Iterator[Backend]:
        return iter(self._backends.values())

    def __contains__(self, name: object) -> bool:
        return name in self._backends

    def names(self) -> list[str]:
        return sorted(self._backends)

    def available(self) -> list[Backend]:
        return [backend for backend in self if backend.is_available()]

    def get(self, name: str) -> Backend:
        try:
            return self._backends[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise ConfigError(f"unknown backend {name!r}; known backends: {known}") from None

    def require_available(self, backend: Backend) -> Backend:
        if not backend.is_available():
            raise not_installed(backend)
        return backend

    def detect(self, model_dir: Path, kind: ModelKind | None = None) -> Backend | None:
        """The backend that recognises ``model_dir`` from its files, preferring installed ones."""
        matches = [
            backend
            for backend in self
            if (kind is None or backend.kind is kind) and backend.detect(model_dir)
        ]
        matches.sort(key=lambda backend: not backend.is_available())
        return matches[0] if matches else None

    def describe_installed(self) -> str:
        return ", ".join(backend.name for backend in self.available()) or "none"


def not_installed(backend: Backend, detail: str = "") -> BackendUnavailableError:
    """The error for a backend whose engine library is missing, with how to install it."""
    if isinstance(backend, IsolatedBackend):
        fix = f"bragi backend install {backend.name}"
    else:
        fix = f"pip install 'bragi[{backend.extra}]'"
    reason = f" ({detail})" if detail else ""
    return BackendUnavailableError(f"the {backend.name} engine is not installed{reason}: {fix}")


def load_engine(
    backend: Backend, model_dir: Path, device: Device, options: BackendOptions
) -> Engine:
    """``backend.load``, where a library that fails to import (``is_available`` looks for
    it without importing it) says which and how to install it."""
    try:
        return backend.load(model_dir, device, options)
    except ImportError as exc:
        raise not_installed(backend, f"import failed: {exc}") from exc
