"""The built-in voices of text-to-speech models that are not loaded, read from their files
once and kept until the model directory changes.

Listing reads files (Piper parses every ``.onnx.json``, Kokoro opens its ``.npz``), so it
is done in a thread when a model's files arrive (:meth:`VoiceLists.warm`); afterwards,
on the event loop, a lookup costs one ``stat`` of the directory.
"""

from __future__ import annotations

import threading
from pathlib import Path

from bragi.backends.protocol import Backend, BackendOptions, Voice, VoiceListing

__all__ = ["VoiceLists"]


def _stamp(model_dir: Path) -> int | None:
    try:
        return model_dir.stat().st_mtime_ns
    except OSError:
        return None


class VoiceLists:
    """Voices by model directory, valid while the directory's mtime is unchanged."""

    def __init__(self) -> None:
        self._lists: dict[tuple[str, Path, str], tuple[int, list[Voice]]] = {}
        self._lock = threading.Lock()

    def voices(
        self, backend: Backend, model_dir: Path, options: BackendOptions | None
    ) -> list[Voice] | None:
        """The voices in ``model_dir``; None when the backend cannot list them unloaded."""
        if not isinstance(backend, VoiceListing):
            return None
        stamp = _stamp(model_dir)
        if stamp is None:
            return None
        key = (backend.name, model_dir, options.model_dump_json() if options else "")
        with self._lock:
            cached = self._lists.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        voices = list(backend.voices_in(model_dir, options))
        with self._lock:
            self._lists[key] = (stamp, voices)
        return voices

    def warm(self, backend: Backend, model_dir: Path, options: BackendOptions | None) -> None:
        """Read the voices now (call it from a thread), so the event loop never does."""
        self.voices(backend, model_dir, options)
