"""Cloned voices on disk: ``<data_dir>/voices/<voice id>/`` with the reference and its facts.

Each voice is a directory named after its id holding ``reference.flac`` (mono, 16-bit,
:data:`~bragi.voices.reference.STORED_SAMPLE_RATE`) and ``voice.json``, readable by the
service user only (folders 0700, files 0600: a voice is a recording of a person). A voice is
written into a hidden temporary directory and renamed into place, and removed by a
rename out of the way before it is deleted, so a crash or a failed upload never
leaves a half-written voice that listings would show. Creating and deleting hold a
lock file, so two server processes (or the server and ``bragi voices``) sharing a
data dir never give two voices one name.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from bragi.audio import Audio, decode_audio, encode_audio
from bragi.backends.protocol import TimedText, VoiceReference
from bragi.config import Settings
from bragi.datadir import make_private_dir
from bragi.errors import BragiError, ConflictError, InvalidRequestError, NotFoundError
from bragi.voices.disk import (
    exclusive_lock,
    storage_error,
    sweep,
    sync_dir,
    write_file,
)
from bragi.voices.reference import (
    ID_PREFIX,
    STORED_SAMPLE_RATE,
    ReferenceLimits,
    check_name,
    check_transcript,
    decode_reference,
)

__all__ = [
    "REFERENCE_FILE",
    "VOICE_FILE",
    "StoreProblem",
    "StoredVoice",
    "VoiceStore",
    "voice_not_found",
]

log = logging.getLogger(__name__)

REFERENCE_FILE = "reference.flac"
VOICE_FILE = "voice.json"
_LOCK_FILE = ".lock"
_TEMP_PREFIX = ".tmp-"
_TRASH_PREFIX = ".trash-"
#: Leftovers of a crash older than this are swept away.
_STALE_SECONDS = 3600.0
#: Decoded references kept in memory: at most 60 s at 24 kHz float32 (5.8 MB) each.
_CACHE_SIZE = 8


class StoredVoice(BaseModel):
    """One cloned voice's facts, as ``voice.json`` holds them."""

    # Fields a later Bragi adds are ignored by this one, not fatal.
    model_config = ConfigDict(extra="ignore", frozen=True)

    version: Literal[1] = 1  # of this file's layout
    id: str
    name: str
    created_at: int  # unix seconds
    duration: float  # seconds of reference audio
    sample_rate: int
    transcript: str | None = None
    #: The transcript in timed stretches (start, end, text), when Bragi transcribed it.
    timed_transcript: list[tuple[float, float, str]] | None = None
    #: The speech-to-text model that made the transcript; None: the creator gave it.
    transcribed_by: str | None = None
    model: str | None = None  # the model alias it was made for, if the creator said
    consent: str | None = None  # OpenAI's consent recording id, kept as given
    created_by: str | None = None  # id of the API key that made it; None: CLI or auth off
    shared: bool = False  # usable by every key, not only its creator's (and admin keys)

    def usable_by(self, key_id: str | None, *, admin: bool) -> bool:
        """Whether a caller may speak in, list or read this voice: its creator's key, an
        admin key, or any key when it is shared. One made without a key (the command
        line, auth off) belongs to the admins."""
        return admin or self.shared or (key_id is not None and key_id == self.created_by)


@dataclass(frozen=True, slots=True)
class StoreProblem:
    """A directory under the store that is not a usable voice, and why."""

    path: Path
    reason: str


class VoiceStore:
    """The cloned voices under ``root``; blocking file I/O (run it off the event loop)."""

    def __init__(
        self,
        root: Path,
        *,
        limits: ReferenceLimits | None = None,
        max_voices: int = 100,
        clock: Callable[[], float] = time.time,
        narrow: bool = False,
    ):
        self.root = root
        #: whether a folder found wider than 0700 (an older Bragi's) is narrowed; not for
        #: a voices_dir an operator chose, which may be shared on purpose
        self.narrow = narrow
        self.limits = limits or ReferenceLimits()
        self.max_voices = max_voices
        self.clock = clock
        self._cache: OrderedDict[str, VoiceReference] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._reported: set[tuple[Path, str]] = set()

    @classmethod
    def for_settings(cls, settings: Settings) -> VoiceStore:
        """The store in ``voices_dir`` (default ``<data_dir>/voices``) with the configured
        limits."""
        return cls(
            settings.voices_dir or settings.data_dir / "voices",
            limits=ReferenceLimits(settings.voice_min_seconds, settings.voice_max_seconds),
            max_voices=settings.max_voices,
            narrow=settings.voices_dir is None,
        )

    # --- reading ---------------------------------------------------------------

    def scan(self) -> tuple[list[StoredVoice], list[StoreProblem]]:
        """Every usable voice (oldest first), and every directory that is not one."""
        voices: list[StoredVoice] = []
        problems: list[StoreProblem] = []
        if not self.root.is_dir():
            return voices, problems
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            try:
                voices.append(self._read(entry))
            except _Unusable as exc:
                problems.append(StoreProblem(entry, str(exc)))
        voices.sort(key=lambda voice: (voice.created_at, voice.name))
        return voices, problems

    def list(self) -> list[StoredVoice]:
        """Every usable voice, oldest first; unusable directories are skipped (and logged,
        once each: listings run on every request that names a cloned voice)."""
        voices, problems = self.scan()
        for problem in problems:
            if (problem.path, problem.reason) not in self._reported:
                self._reported.add((problem.path, problem.reason))
                log.warning("ignoring %s: %s", problem.path, problem.reason)
        return voices

    def find(self, name_or_id: str) -> StoredVoice | None:
        """The voice with this id, or with this name (names compare case-insensitively)."""
        if name_or_id.startswith(ID_PREFIX):
            entry = self.root / name_or_id
            if _is_voice_id(name_or_id) and entry.is_dir():
                with contextlib.suppress(_Unusable):
                    return self._read(entry)
            return None
        folded = name_or_id.casefold()
        return next((v for v in self.list() if v.name.casefold() == folded), None)

    def get(
        self, name_or_id: str, usable: Callable[[StoredVoice], bool] | None = None
    ) -> StoredVoice:
        """Like :meth:`find`, but a 404 when there is no such voice, or none the caller
        may use (``usable``): another key's voice is as absent as one never made."""
        voice = self.find(name_or_id)
        if voice is None:
            raise voice_not_found(name_or_id)
        return voice

    def reference(self, voice: StoredVoice) -> VoiceReference:
        """The voice's recording and transcript for an engine, from a small in-memory cache."""
        with self._cache_lock:
            cached = self._cache.get(voice.id)
            if cached is not None:
                self._cache.move_to_end(voice.id)
                return cached
        path = self.root / voice.id / REFERENCE_FILE
        try:
            audio = decode_audio(path.read_bytes(), STORED_SAMPLE_RATE)
        except (OSError, BragiError) as exc:
            # It was checked when it was stored: a failure now is damage on disk.
            raise BragiError(
                f"The stored recording of voice '{voice.name}' ({voice.id}) cannot be read "
                f"({exc}); delete the voice and create it again.",
                code="voice_damaged",
            ) from exc
        timed = tuple(TimedText(*piece) for piece in voice.timed_transcript or ())
        reference = VoiceReference(
            id=voice.id, audio=audio, transcript=voice.transcript, timed_transcript=timed
        )
        with self._cache_lock:
            self._cache[voice.id] = reference
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return reference

    # --- writing ---------------------------------------------------------------

    def create(
        self,
        name: str,
        data: bytes,
        *,
        transcript: str | None = None,
        model: str | None = None,
        consent: str | None = None,
        created_by: str | None = None,
        shared: bool = False,
        reserved: Collection[str] = (),
        param: str = "audio_sample",
    ) -> StoredVoice:
        """Check the name and the recording, then store the voice; 400/409 when they fail."""
        name, audio, transcript = self.check_upload(name, data, transcript, reserved, param)
        return self.add(
            name,
            audio,
            transcript=transcript,
            model=model,
            consent=consent,
            created_by=created_by,
            shared=shared,
        )

    def check_upload(
        self,
        name: str,
        data: bytes,
        transcript: str | None = None,
        reserved: Collection[str] = (),
        param: str = "audio_sample",
    ) -> tuple[str, Audio, str | None]:
        """The name, the decoded recording and the transcript, checked as :meth:`create`
        checks them (a 400 saying why), for a caller that does more before :meth:`add`."""
        name = check_name(name, reserved)
        transcript = check_transcript(transcript)
        return name, decode_reference(data, self.limits, param), transcript

    def add(
        self,
        name: str,
        audio: Audio,
        *,
        transcript: str | None = None,
        timed_transcript: Sequence[TimedText] = (),
        transcribed_by: str | None = None,
        model: str | None = None,
        consent: str | None = None,
        created_by: str | None = None,
        shared: bool = False,
    ) -> StoredVoice:
        """Store an already checked recording (see :meth:`create`) under ``name``."""
        if audio.sample_rate != STORED_SAMPLE_RATE:
            raise ValueError(f"references are stored at {STORED_SAMPLE_RATE} Hz")
        voice = StoredVoice(
            id=f"{ID_PREFIX}{secrets.token_hex(12)}",
            name=name,
            created_at=int(self.clock()),
            duration=round(audio.duration, 3),
            sample_rate=audio.sample_rate,
            transcript=transcript,
            timed_transcript=[(p.start, p.end, p.text) for p in timed_transcript] or None,
            transcribed_by=transcribed_by,
            model=model,
            consent=consent,
            created_by=created_by,
            shared=shared,
        )
        self._make_root()
        staging = self.root / f"{_TEMP_PREFIX}{voice.id}"
        try:
            staging.mkdir(mode=0o700)
            # Encoded outside the lock: only the name check and the rename need it.
            write_file(staging / REFERENCE_FILE, encode_audio(audio, "flac"))
            write_file(staging / VOICE_FILE, voice.model_dump_json(indent=2).encode() + b"\n")
            with self._locked():
                # What a crash left; young leftovers may be another process's, mid-write.
                sweep(self.root, (_TEMP_PREFIX, _TRASH_PREFIX), _STALE_SECONDS)
                self._check_room(voice.name)
                staging.rename(self.root / voice.id)
                sync_dir(self.root)
        except OSError as exc:  # a full or read-only disk: a typed error, not a 500
            if (typed := storage_error(exc, self.root)) is None:
                raise
            raise typed from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # gone already after the rename
        log.info("stored cloned voice %s (%s, %.1f s)", voice.name, voice.id, voice.duration)
        return voice

    def delete(self, name_or_id: str) -> StoredVoice:
        """Remove a voice; a 404 when there is none."""
        try:
            with self._locked():
                voice = self.get(name_or_id)
                trash = self.root / f"{_TRASH_PREFIX}{voice.id}"
                (self.root / voice.id).rename(trash)
                sync_dir(self.root)
        except OSError as exc:
            if (typed := storage_error(exc, self.root)) is None:
                raise
            raise typed from exc
        with self._cache_lock:
            self._cache.pop(voice.id, None)
        shutil.rmtree(trash, ignore_errors=True)
        log.info("deleted cloned voice %s (%s)", voice.name, voice.id)
        return voice

    # --- inside ------------------------------------------------------------------

    def _read(self, entry: Path) -> StoredVoice:
        try:
            voice = StoredVoice.model_validate_json((entry / VOICE_FILE).read_bytes())
        except OSError as exc:
            raise _Unusable(f"no readable {VOICE_FILE} ({exc.strerror or exc})") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or VOICE_FILE
            raise _Unusable(f"bad {VOICE_FILE}: {where}: {first['msg']}") from None
        if voice.id != entry.name:
            raise _Unusable(f"{VOICE_FILE} says id {voice.id!r}, the directory {entry.name!r}")
        if not (entry / REFERENCE_FILE).is_file():
            raise _Unusable(f"no {REFERENCE_FILE}")
        return voice

    def _check_room(self, name: str) -> None:
        voices = self.list()
        folded = name.casefold()
        taken = next((v for v in voices if v.name.casefold() == folded), None)
        if taken is not None:
            raise ConflictError(
                f"A voice named '{taken.name}' already exists ({taken.id}); delete it "
                "first or choose another name.",
                param="name",
                code="voice_exists",
            )
        if len(voices) >= self.max_voices:
            raise InvalidRequestError(
                f"The server keeps at most {self.max_voices} cloned voices (max_voices); "
                "delete one first.",
                code="voice_limit_reached",
            )

    def _make_root(self) -> None:
        make_private_dir(self.root)
        if self.narrow and self.root.stat().st_mode & 0o077:
            self.root.chmod(0o700)

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        self._make_root()
        return exclusive_lock(self.root / _LOCK_FILE)


def voice_not_found(name_or_id: str) -> NotFoundError:
    """The 404 for a voice that does not exist (or that the caller may not see)."""
    return NotFoundError(
        f"No cloned voice named or with id '{name_or_id}'. GET /v1/audio/voices lists the voices.",
        param="voice_id",
        code="voice_not_found",
    )


class _Unusable(Exception):
    """A directory in the store that is not a voice (its reason is the message)."""


def _is_voice_id(text: str) -> bool:
    suffix = text[len(ID_PREFIX) :]
    return bool(suffix) and all(c in "0123456789abcdef" for c in suffix)
