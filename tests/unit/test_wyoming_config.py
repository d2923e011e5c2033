"""The ``wyoming:`` settings: file, environment and ``bragi serve`` flags, and start-up
refusing a section that cannot work (exit code 2, one line)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bragi.backends.registry import BackendRegistry
from bragi.cli.main import build_parser, settings_from_args
from bragi.cli.serve import wyoming_flags
from bragi.config import load_settings
from bragi.errors import ConfigError
from bragi.models.configure import build_manager
from bragi.wyoming import check_settings


def test_off_by_default_on_port_10300() -> None:
    settings = load_settings(None)
    assert settings.wyoming.enabled is False
    assert settings.wyoming.port == 10300
    assert settings.wyoming.host is None  # the server's host


def test_flags_beat_the_environment_which_beats_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "bragi.yaml"
    config.write_text(
        "wyoming:\n  port: 10301\n  stt_models: {de: whisper-1}\n  idle_timeout: 2m\n"
    )
    monkeypatch.setenv("BRAGI_WYOMING__PORT", "10302")
    monkeypatch.setenv("BRAGI_WYOMING__TTS_VOICES", '{"en_US": "tts-1/en_US-joe-medium"}')
    args = build_parser().parse_args(["serve", "--config", str(config), "--wyoming"])
    settings = settings_from_args(args, wyoming=wyoming_flags(args)).wyoming
    assert (settings.enabled, settings.port) == (True, 10302)
    assert settings.stt_models == {"de": "whisper-1"}  # the file's, merged under the flag
    assert settings.tts_voices == {"en_US": "tts-1/en_US-joe-medium"}
    assert settings.idle_timeout == 120.0

    args = build_parser().parse_args(["serve", "--config", str(config), "--wyoming-port", "9"])
    settings = settings_from_args(args, wyoming=wyoming_flags(args)).wyoming
    assert (settings.enabled, settings.port) == (True, 9)  # a port turns it on

    args = build_parser().parse_args(["serve", "--config", str(config)])
    assert settings_from_args(args, wyoming=wyoming_flags(args)).wyoming.enabled is False


def run_serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("BRAGI_", "HF_"))}
    environment |= {
        "BRAGI_DATA_DIR": str(tmp_path / "data"),
        "BRAGI_MODEL_CACHE_DIR": str(tmp_path / "models"),
        "BRAGI_PORT": "1",  # never listened on: start-up must stop before
        "HF_HUB_OFFLINE": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "bragi", "serve", "--wyoming", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("section", "words"),
    [
        ("stt_model: nonexistent", ["wyoming.stt_model", "nonexistent", "whisper-1"]),
        ("zeroconf_address: 169.254.0.9\n  zeroconf: true", ["zeroconf_address", "link-local"]),
    ],
)
def test_a_section_that_cannot_work_stops_start_up_with_one_line(
    tmp_path: Path, section: str, words: list[str]
) -> None:
    config = tmp_path / "bragi.yaml"
    config.write_text(f"wyoming:\n  {section}\n")
    result = run_serve(tmp_path, "--config", str(config))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bragi: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.parametrize(
    ("section", "words"),
    [
        ("stt_models: {de: tts-1}", ["wyoming.stt_models.de", "text-to-speech"]),
        ("idle_timeout: never", ["wyoming.idle_timeout"]),
        ("port: 70000", ["wyoming.port"]),
        ("colour: blue", ["wyoming.colour", "unknown setting"]),
    ],
)
def test_bad_values_name_their_key(tmp_path: Path, section: str, words: list[str]) -> None:
    config = tmp_path / "bragi.yaml"
    config.write_text(f"wyoming:\n  enabled: true\n  {section}\n")
    with pytest.raises(ConfigError) as refused:
        settings = load_settings(config, data_dir=tmp_path / "data")
        check_settings(settings, build_manager(settings, BackendRegistry.from_entry_points()))
    for word in words:
        assert word in refused.value.message, refused.value.message


def test_a_wyoming_port_in_use_stops_start_up_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_serve(tmp_path, "--wyoming-port", str(port))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"bragi: cannot listen for Wyoming clients on 127.0.0.1:{port}: Address already in use"
    ]
