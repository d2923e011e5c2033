"""Settings: a YAML file, overridden by ``BRAGI_*`` environment variables, overridden by CLI flags.

The file is ``--config``, else ``$BRAGI_CONFIG``, else ``/etc/bragi/config.yaml`` when it
exists. With no ``models:`` anywhere, Bragi serves the offline starter set.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from bragi.errors import ConfigError

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "ModelAlias",
    "ModelConfig",
    "RealtimeSettings",
    "Settings",
    "VoiceMapping",
    "WebSettings",
    "WyomingSettings",
    "default_data_dir",
    "load_settings",
    "parse_duration",
]

DEFAULT_CONFIG_FILE = Path("/etc/bragi/config.yaml")

_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds from ``300``, ``"300s"``, ``"5m"``, ``"1h"``; ``-1`` means forever."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 300, '5m' or -1")
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"expected a duration such as 300, '5m' or -1, got {value!r}")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return -1.0 if seconds < 0 else seconds


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "bragi"


class ModelConfig(BaseModel):
    """One served model, listed under its alias (the name clients send as ``model``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    model: str = Field(validation_alias=AliasChoices("model", "repo"), min_length=1)
    """A catalog name, a Hugging Face repo id (``org/name``), or a local directory."""
    backend: str | None = None
    """The engine; detected from the model's files when absent."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) for repo ids."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Engine options, validated by the backend (unknown keys are an error)."""
    keep_alive: float | None = None
    """Seconds to keep the model loaded after its last use (-1 forever, 0 unload at once)."""
    preload: bool = False
    """Load at start-up instead of on first use."""
    max_concurrency: int | None = Field(default=None, ge=1)
    """Requests run at once on this model (default: the server's ``max_concurrency``)."""
    max_queue: int | None = Field(default=None, ge=0)
    """Requests waiting for this model before 429 (default: the server's ``max_queue``)."""
    runner: Literal["auto", "process", "worker"] = "auto"
    """Where the engine runs: ``worker``, a child process (restarted when it crashes or
    hangs); ``process``, inside the server; ``auto``, a worker for engines with their own
    environment (torch engines, ``bragi backend install``), else inside the server."""
    worker_timeout: float = Field(default=120.0, gt=0)
    """Seconds a worker may take to answer one step (a segment, an audio chunk) before it
    is killed and restarted; the requests it was serving get 503."""
    worker_load_timeout: float = Field(default=600.0, gt=0)
    """Seconds a worker may take to start and load the model."""

    @field_validator("keep_alive", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float | None:
        return None if value is None else parse_duration(value)

    @field_validator("worker_timeout", "worker_load_timeout", mode="before")
    @classmethod
    def _timeout(cls, value: object) -> float:
        return parse_duration(value)


class ModelAlias(BaseModel):
    """Another name for a configured model (OpenAI's model names); ``diarize`` makes the
    name label speakers in verbose_json, srt and vtt too."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    diarize: bool = False


class VoiceMapping(BaseModel):
    """An OpenAI voice name (``alloy``, ...) mapped to a model alias and an engine voice."""

    model_config = ConfigDict(extra="forbid")

    model: str
    voice: str


class WebSettings(BaseModel):
    """The page in the browser that tries every model (served at ``/``)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    """Serve the page (``BRAGI_WEB__ENABLED=false`` turns it off; the API stays)."""


class WyomingSettings(BaseModel):
    """The Wyoming listener (Home Assistant's protocol, beside the OpenAI API). It has no
    authentication: anyone who reaches the port can use every model."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    """Listen for Wyoming clients (``bragi serve --wyoming``)."""
    host: str | None = None
    """Address to listen on; defaults to the server's ``host``."""
    port: int = Field(default=10300, ge=1, le=65535)
    """TCP port (10300 is the one Home Assistant users know)."""
    stt_model: str | None = None
    """Model for requests that name none and whose language ``stt_models`` does not map;
    defaults to the first speech-to-text model."""
    stt_models: dict[str, str] = Field(default_factory=dict)
    """Language (``en``, ``de``, ...) ─▶ speech-to-text model alias."""
    tts_voice: str | None = None
    """Voice for requests that name none (a Wyoming voice name such as
    ``tts-1/en_US-joe-medium``); defaults to the first voice of the first TTS model."""
    tts_voices: dict[str, str] = Field(default_factory=dict)
    """Language (``en``, ``de_DE``, ...) ─▶ voice, for requests that give only a language."""
    transcript_streaming: bool = True
    """Send ``transcript-start``/``-chunk``/``-stop`` as segments are decoded (the final
    ``transcript`` always comes too)."""
    idle_timeout: float = Field(default=60.0, gt=0)
    """Seconds a client may stay silent (or not read) before its connection is closed."""
    zeroconf: bool = False
    """Announce ``_wyoming._tcp`` on the local network (needs ``bragi[zeroconf]``)."""
    zeroconf_name: str | None = None
    """The announced service name; defaults to ``bragi-<hostname>``."""
    zeroconf_address: str | None = None
    """The IP address to announce; defaults to ``host`` when it is one address, else the
    address of the interface that reaches the local network."""

    @field_validator("idle_timeout", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return parse_duration(value)


class RealtimeSettings(BaseModel):
    """Live transcription over ``GET /v1/realtime`` (``realtime:``, ``BRAGI_REALTIME__*``)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    enabled: bool = True
    """Serve the Realtime WebSocket and ``POST /v1/realtime/client_secrets``."""
    max_sessions: int = Field(default=32, ge=1)
    """Realtime sessions open at once; one more is refused (``error``, close 1013)."""
    max_session_minutes: float = Field(default=30.0, gt=0)
    """A session ends with ``session_expired`` after this long (OpenAI's limit is 30)."""
    max_buffer_seconds: float = Field(default=300.0, ge=1)
    """Audio a session buffers for one turn; a longer turn is committed where it is."""
    max_event_mb: float = Field(default=15.0, gt=0)
    """Largest client event, in MiB (OpenAI: 15 MiB of audio per append)."""
    partials: bool = True
    """Send text while the person is still speaking (re-decoding, or the engine's stream)."""
    partial_interval_ms: int = Field(default=500, ge=100)
    """Least time between two partial decodes of a session; it grows to the time the
    last decode took, so partials use at most about half of one engine slot."""
    default_model: str | None = None
    """The transcription model of a new session (default: ``whisper-1`` when configured,
    else the first speech-to-text model)."""

    @property
    def max_event_bytes(self) -> int:
        return int(self.max_event_mb * 1024 * 1024)


class Settings(BaseSettings):
    """Bragi's configuration. Every field can be set as ``BRAGI_<FIELD>``."""

    model_config = SettingsConfigDict(
        env_prefix="BRAGI_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    host: str = "127.0.0.1"
    """Address to listen on (``0.0.0.0`` in containers)."""
    port: int = Field(default=8000, ge=1, le=65535)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where engines run; ``auto`` picks CUDA when a GPU is usable."""
    data_dir: Path = Field(default_factory=default_data_dir)
    """Models, API keys and voices live here (``/data`` in the container)."""
    model_cache_dir: Path | None = None
    """Where models are stored; defaults to ``<data_dir>/models``."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    upload_limit_mb: float = Field(default=25.0, gt=0)
    """Largest accepted upload, in MiB (OpenAI's limit is 25)."""
    max_audio_minutes: float = Field(default=20.0, gt=0)
    """Longest audio accepted for transcription (a small compressed file can hold hours).
    Memory grows with it: faster-whisper peaks near 50 MB per minute of audio, so 20
    minutes take about 1 GB per running request (docs/deployment.md)."""
    voice_upload_limit_mb: float = Field(default=20.0, gt=0)
    """Largest reference recording ``POST /v1/audio/voices`` accepts, in MiB (never more
    than ``upload_limit_mb``)."""
    voice_min_seconds: float = Field(default=1.0, gt=0)
    """Least sound a cloned voice's reference recording must hold, in seconds."""
    voice_max_seconds: float = Field(default=60.0, gt=0)
    """Longest reference recording, in seconds after decoding (XTTS uses up to 30 s)."""
    max_voices: int = Field(default=100, ge=1)
    """Most cloned voices kept in ``<data_dir>/voices``; more are refused until some go."""
    voices_dir: Path | None = None
    """Where cloned voices are kept; defaults to ``<data_dir>/voices`` (replicas share one
    on a shared volume)."""
    voice_transcription_model: str | None = "whisper-1"
    """Speech-to-text model (a configured alias) that transcribes a cloned voice's
    recording, once, when it comes without a transcript (F5-TTS, Fish Speech and Qwen3-TTS
    clone better, or only, with one); null: never."""
    auth: Literal["enabled", "disabled"] = "enabled"
    """``disabled`` turns API keys off: for local use only."""
    insecure_no_auth: bool = False
    """Let ``bragi serve`` run with ``auth: disabled`` on an address other than loopback
    (anyone who reaches the port may then use and administer the server)."""
    keep_alive: float = 300.0
    """Default seconds a model stays loaded after its last use (-1 forever, 0 unload at once)."""
    max_loaded_models: int = Field(default=0, ge=0)
    """Most models loaded at once (0: no limit); the least recently used idle one goes first."""
    max_concurrency: int = Field(default=2, ge=1)
    """Default number of requests running at once per model."""
    max_queue: int = Field(default=16, ge=0)
    """Default number of requests waiting per model before 429."""
    rate_limit_per_minute: int = Field(default=0, ge=0)
    """Requests one API key may make per minute (a minute's worth at once), across every
    route that needs a key; more are answered 429 with ``Retry-After``. 0: no limit."""
    models: dict[str, ModelConfig] | None = None
    """Served models by alias; ``None`` serves the starter set."""
    preload_starter: bool = True
    """With no ``models:``, load the starter set's whisper-1 and tts-1 at start-up and keep
    them loaded, instead of on the first request (about 300 MB of memory)."""
    voices: dict[str, VoiceMapping] = Field(default_factory=dict)
    """OpenAI voice names mapped to engine voices."""
    allow_downloads: bool = True
    """Fetch missing models from the Hugging Face hub: ``false`` serves only what is in the
    model cache and refuses ``POST /admin/pull`` (``bragi pull`` always downloads)."""
    web: WebSettings = Field(default_factory=WebSettings)
    """The web page at ``/``."""
    wyoming: WyomingSettings = Field(default_factory=WyomingSettings)
    """The Wyoming listener for Home Assistant (off by default; unauthenticated)."""
    realtime: RealtimeSettings = Field(default_factory=RealtimeSettings)
    """Live transcription (the OpenAI Realtime API)."""
    aliases: dict[str, ModelAlias] | None = None
    """More names for configured models (``gpt-4o-transcribe: whisper-1``, or
    ``{model: whisper-1, diarize: true}``); unset, the starter set gets OpenAI's current names."""
    install_engines: bool = False
    """Install a configured model's missing engine environment (``bragi backend install``)
    in the background at start-up; the container image turns it on."""

    @field_validator("aliases", mode="before")
    @classmethod
    def _alias_shorthand(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: {"model": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("keep_alive", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return parse_duration(value)

    @field_validator("auth", mode="before")
    @classmethod
    def _auth_switch(cls, value: object) -> object:
        if isinstance(value, bool):
            return "enabled" if value else "disabled"
        if isinstance(value, str) and value.lower() in {"true", "on", "1", "yes"}:
            return "enabled"
        if isinstance(value, str) and value.lower() in {"false", "off", "0", "no"}:
            return "disabled"
        return value.lower() if isinstance(value, str) else value

    @property
    def models_dir(self) -> Path:
        return self.model_cache_dir or self.data_dir / "models"

    @property
    def upload_limit_bytes(self) -> int:
        return int(self.upload_limit_mb * 1024 * 1024)

    @property
    def voice_upload_limit_bytes(self) -> int:
        return int(min(self.voice_upload_limit_mb, self.upload_limit_mb) * 1024 * 1024)

    @model_validator(mode="after")
    def _voice_limits(self) -> Settings:
        if self.voice_min_seconds > self.voice_max_seconds:
            raise ValueError("voice_min_seconds is more than voice_max_seconds")
        return self

    @property
    def auth_enabled(self) -> bool:
        return self.auth == "enabled"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # CLI flags (init) beat the environment, which beats the file.
        file_values = _FILE_VALUES.get() or {}
        return (init_settings, env_settings, InitSettingsSource(settings_cls, file_values))


# The YAML file's values while load_settings builds a Settings (a context variable, so
# building settings stays re-entrant and thread-safe; no import-time singleton).
_FILE_VALUES: ContextVar[dict[str, Any] | None] = ContextVar("bragi_config_file", default=None)


def _config_file(explicit: Path | None) -> Path | None:
    if explicit is not None:
        return explicit
    if env := os.environ.get("BRAGI_CONFIG"):
        return Path(env)
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must be a mapping of settings")
    return data


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"]) or "config"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown setting"
    given = first.get("input")
    shown = "" if isinstance(given, dict | list) or given is None else f" (got {given!r})"
    return f"invalid configuration: {location}: {message}{shown}"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from the file, the environment and ``overrides`` (CLI flags).

    Raises :class:`ConfigError` with one line naming the bad key and what is allowed.
    """
    path = _config_file(config_file)
    file_values = _read_yaml(path) if path is not None else {}
    given = {key: value for key, value in overrides.items() if value is not None}
    token = _FILE_VALUES.set(file_values)
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    finally:
        _FILE_VALUES.reset(token)
