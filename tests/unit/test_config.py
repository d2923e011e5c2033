"""Settings: YAML file < BRAGI_* environment < CLI flags; one-line errors; exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bragi.config import load_settings, parse_duration
from bragi.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No BRAGI_* variable from the machine running the tests, and no /etc config."""
    for name in list(os.environ):
        if name.startswith("BRAGI_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr("bragi.config.DEFAULT_CONFIG_FILE", tmp_path / "absent.yaml")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def config_error(**kwargs: object) -> str:
    """The ConfigError message of ``load_settings(**kwargs)``, checked to be one line."""
    with pytest.raises(ConfigError) as caught:
        load_settings(**kwargs)  # type: ignore[arg-type]
    message = caught.value.message
    assert "\n" not in message
    return message


# --- precedence -------------------------------------------------------------------


def test_the_file_is_overridden_by_the_environment_and_that_by_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(tmp_path / "bragi.yaml", "port: 9000\nhost: 0.0.0.0\nlog_level: debug\n")

    from_file = load_settings(config)
    assert (from_file.port, from_file.host, from_file.log_level) == (9000, "0.0.0.0", "debug")

    monkeypatch.setenv("BRAGI_PORT", "9100")
    from_env = load_settings(config)
    assert from_env.port == 9100
    assert from_env.host == "0.0.0.0"  # what the environment does not set stays the file's

    from_flags = load_settings(config, port=9200, host=None)
    assert from_flags.port == 9200
    assert from_flags.host == "0.0.0.0"  # an unset flag (None) does not override


def test_the_config_file_comes_from_bragi_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRAGI_CONFIG", str(write(tmp_path / "c.yaml", "max_queue: 3\n")))
    assert load_settings().max_queue == 3


def test_without_a_file_the_defaults_apply(tmp_path: Path) -> None:
    settings = load_settings()
    assert (settings.host, settings.port, settings.device) == ("127.0.0.1", 8000, "auto")
    assert settings.auth_enabled
    assert settings.models is None  # the starter set
    assert settings.upload_limit_bytes == 25 * 1024 * 1024


def test_the_starter_set_preloads_the_default_models(monkeypatch: pytest.MonkeyPatch) -> None:
    from bragi.models.starter import starter_models

    assert load_settings().preload_starter
    preloaded = {alias for alias, config in starter_models().items() if config.preload}
    assert preloaded == {"whisper-1", "tts-1"}  # what OpenAI clients name by default
    assert all(starter_models()[alias].keep_alive == -1 for alias in preloaded)  # and stay
    assert starter_models()["kokoro"].keep_alive is None  # the server's keep-alive
    assert not any(config.preload for config in starter_models(preload=False).values())
    monkeypatch.setenv("BRAGI_PRELOAD_STARTER", "false")
    assert not load_settings().preload_starter


def test_an_empty_file_is_the_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path / "empty.yaml", "")).port == 8000


# --- models -----------------------------------------------------------------------


def test_the_original_readme_shape_with_repo_loads(tmp_path: Path) -> None:
    config = write(
        tmp_path / "readme.yaml",
        "host: 0.0.0.0\n"
        "port: 8000\n"
        "device: auto\n"
        "models:\n"
        "  whisper:\n"
        "    repo: Systran/faster-whisper-large-v3\n"
        "  kokoro:\n"
        "    repo: hexgrad/Kokoro-82M\n",
    )
    models = load_settings(config).models
    assert models is not None
    assert models["whisper"].model == "Systran/faster-whisper-large-v3"
    assert models["kokoro"].model == "hexgrad/Kokoro-82M"


def test_a_model_entry_takes_backend_options_and_durations(tmp_path: Path) -> None:
    config = write(
        tmp_path / "models.yaml",
        "keep_alive: 10m\n"
        "models:\n"
        "  whisper-1:\n"
        "    model: whisper-base\n"
        "    backend: faster-whisper\n"
        "    keep_alive: -1\n"
        "    max_concurrency: 4\n"
        "    options: {compute_type: int8}\n",
    )
    settings = load_settings(config)
    assert settings.keep_alive == 600
    assert settings.models is not None
    whisper = settings.models["whisper-1"]
    assert (whisper.backend, whisper.keep_alive, whisper.max_concurrency) == (
        "faster-whisper",
        -1,
        4,
    )
    assert whisper.options == {"compute_type": "int8"}


@pytest.mark.parametrize(
    ("given", "seconds"), [(300, 300), ("300s", 300), ("5m", 300), ("1h", 3600), (-1, -1), ("0", 0)]
)
def test_durations(given: object, seconds: float) -> None:
    assert parse_duration(given) == seconds


# --- environment ------------------------------------------------------------------


def test_model_cache_dir_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRAGI_DATA_DIR", str(tmp_path / "data"))
    assert load_settings().models_dir == tmp_path / "data" / "models"
    monkeypatch.setenv("BRAGI_MODEL_CACHE_DIR", str(tmp_path / "cache"))
    assert load_settings().models_dir == tmp_path / "cache"


@pytest.mark.parametrize(
    ("value", "enabled"),
    [("disabled", False), ("DISABLED", False), ("false", False), ("enabled", True), ("on", True)],
)
def test_auth_switch_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, enabled: bool
) -> None:
    monkeypatch.setenv("BRAGI_AUTH", value)
    assert load_settings().auth_enabled is enabled


def test_device_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAGI_DEVICE", "cuda")
    assert load_settings().device == "cuda"


# --- bad values: ConfigError, one line, naming the key --------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "key", "hint"),
    [
        ("port: 70000\n", "port", "65535"),
        ("device: gpu\n", "device", "cuda"),
        ("log_level: loud\n", "log_level", "debug"),
        ("ports: 8000\n", "ports", "unknown setting"),
        ("upload_limit_mb: -1\n", "upload_limit_mb", "greater than 0"),
        ("keep_alive: soon\n", "keep_alive", "duration"),
        ("models:\n  w:\n    model: x\n    colour: red\n", "models.w.colour", "unknown setting"),
        ("models:\n  w:\n    backend: piper\n", "models.w.model", "required"),
        ("models:\n  w:\n    model: x\n    max_concurrency: 0\n", "max_concurrency", "1"),
    ],
)
def test_a_bad_file_value_is_one_line_naming_the_key(
    tmp_path: Path, yaml_text: str, key: str, hint: str
) -> None:
    message = config_error(config_file=write(tmp_path / "bad.yaml", yaml_text))
    assert key in message
    assert hint in message


def test_a_bad_environment_value_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAGI_PORT", "eighty")
    message = config_error()
    assert "port" in message and "eighty" in message


def test_invalid_yaml_is_one_line_with_the_line_number(tmp_path: Path) -> None:
    config = write(tmp_path / "broken.yaml", "port: 8000\nmodels:\n  - [unclosed\n")
    message = config_error(config_file=config)
    assert "not valid YAML" in message
    assert str(config) in message
    assert "line" in message


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    message = config_error(config_file=write(tmp_path / "list.yaml", "- port\n- 8000\n"))
    assert "mapping" in message


def test_a_missing_config_file_is_refused(tmp_path: Path) -> None:
    message = config_error(config_file=tmp_path / "nowhere.yaml")
    assert "nowhere.yaml" in message


# --- the CLI: exit code 2, one line, no traceback --------------------------------------


def run_bragi(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("BRAGI_", "HF_"))
    }
    environment |= {
        "BRAGI_DATA_DIR": str(tmp_path / "data"),
        "BRAGI_MODEL_CACHE_DIR": str(tmp_path / "models"),
        "BRAGI_PORT": "1",  # never listened on: start-up must stop before
        "HF_HUB_OFFLINE": "1",
    } | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "bragi", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )


def assert_one_line_exit_2(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bragi: ")
    return lines[0]


def test_serve_with_a_bad_device_exits_2_with_one_line(tmp_path: Path) -> None:
    result = run_bragi(tmp_path, "serve", env={"BRAGI_DEVICE": "gpu"})
    line = assert_one_line_exit_2(result)
    assert "device" in line and "gpu" in line


def test_serve_with_an_unrecognised_model_dir_names_it_and_the_backends(tmp_path: Path) -> None:
    mystery = tmp_path / "mystery-model"
    mystery.mkdir()
    (mystery / "weights.bin").write_bytes(b"\0" * 64)
    config = write(tmp_path / "bragi.yaml", f"models:\n  mystery:\n    model: {mystery}\n")
    result = run_bragi(tmp_path, "serve", "--config", str(config))
    line = assert_one_line_exit_2(result)
    assert "'mystery'" in line
    assert "no backend recognises" in line
    assert "installed backends: " in line
    assert "faster-whisper" in line  # the installed backends, by name


# --- the web page -----------------------------------------------------------------


def test_the_web_page_is_on_unless_the_file_or_the_environment_turns_it_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_settings().web.enabled is True
    off = write(tmp_path / "c.yaml", "web:\n  enabled: false\n")
    assert load_settings(off).web.enabled is False
    monkeypatch.setenv("BRAGI_WEB__ENABLED", "true")
    assert load_settings(off).web.enabled is True  # the environment beats the file
    monkeypatch.setenv("BRAGI_WEB__ENABLED", "false")
    assert load_settings().web.enabled is False
    typo = write(tmp_path / "t.yaml", "web:\n  enable: false\n")
    assert config_error(config_file=typo).startswith("invalid configuration: web.enable: unknown")
