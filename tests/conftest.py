"""Shared fixtures: real speech, a real server with the starter models, openai clients."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
# Test helpers that live beside the tests (livesupport, speech, hubstub, fakes) import
# as top-level modules.
sys.path.insert(0, str(TESTS))

from livesupport import LiveServer, start_server  # noqa: E402
from speech import SpeechSample, speech_samples  # noqa: E402

# Fixtures from helper modules: hub_stub, whisper_repo_dir, the catalog repos; engine_env
# (shared by the torch engines' tests and the web page's, so an environment is installed once).
pytest_plugins = ["hubstub", "cataloghub", "torchenvs"]

__all__ = ["LiveServer", "SpeechSample"]


@pytest.fixture(scope="session")
def speech() -> dict[str, SpeechSample]:
    """Recordings of human speech with their known text (from moonshine-voice)."""
    return speech_samples()


@pytest.fixture(scope="session")
def models_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One model cache for the session's servers, so the starter set is assembled once."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, models_cache: Path) -> Iterator[LiveServer]:
    """``bragi serve`` in a subprocess on 127.0.0.1 with the starter set and auth on."""
    data_dir = tmp_path_factory.mktemp("data")
    private_tmp = data_dir / "tmp"  # the server's own TMPDIR, so tests can see what it leaves
    private_tmp.mkdir()
    with start_server(data_dir, models_cache, env={"TMPDIR": str(private_tmp)}) as live:
        yield live
