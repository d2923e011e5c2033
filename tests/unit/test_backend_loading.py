"""Loading a backend whose library is missing or broken: one error, with the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from bragi.backends.protocol import BackendOptions, Device, Engine
from bragi.backends.registry import load_engine
from bragi.errors import BackendUnavailableError
from fakes import FakeSttBackend


class BrokenLibrary(FakeSttBackend):
    """``is_available`` finds the module; importing it fails (a broken install)."""

    def load(self, model_dir: Path, device: Device, options: BackendOptions) -> Engine:
        import bragi_no_such_engine_library  # type: ignore[import-not-found]  # noqa: F401

        raise AssertionError("unreachable")


class BrokenIsolated(BrokenLibrary):
    requirements = ("no-such-engine==1.0",)


def test_an_engine_library_that_fails_to_import_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError) as missing:
        load_engine(BrokenLibrary(), tmp_path, "cpu", BackendOptions())
    message = missing.value.message
    assert message.startswith("the fake-stt engine is not installed")
    assert "bragi_no_such_engine_library" in message and "pip install 'bragi[fake]'" in message
    assert missing.value.status_code == 503

    with pytest.raises(BackendUnavailableError, match="bragi backend install fake-stt"):
        load_engine(BrokenIsolated(), tmp_path, "cpu", BackendOptions())


def test_a_working_backend_loads_as_before(tmp_path: Path) -> None:
    backend = FakeSttBackend()
    assert load_engine(backend, tmp_path, "cpu", BackendOptions()) is backend.engines[0]
