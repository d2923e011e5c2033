"""``bragi transcribe --diarize``: transcribe and diarize here, print speaker-labelled lines."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

from bragi.audio import decode_audio
from bragi.backends.protocol import (
    DiarizeOptions,
    ModelKind,
    SpeakerDiarizer,
    SpeakerTurn,
    SpeechToText,
    TranscribeOptions,
)
from bragi.backends.registry import BackendRegistry
from bragi.backends.stretches import transcribe_planned
from bragi.config import Settings
from bragi.diarization import DiarizedSegment, SpeakerLabels, attribute_speakers
from bragi.diarization.availability import require_diarizer
from bragi.models.configure import build_manager
from bragi.models.manager import ModelManager
from bragi.models.served import ModelState

__all__ = ["diarized_lines", "speaker_lines"]


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes):02d}:{rest:05.2f}"


def speaker_lines(pieces: Sequence[DiarizedSegment]) -> str:
    """One ``[mm:ss.ss-mm:ss.ss] A: text`` line per run of one speaker's pieces."""
    runs: list[DiarizedSegment] = []
    for piece in pieces:
        if runs and runs[-1].speaker == piece.speaker:
            last = runs[-1]
            runs[-1] = dataclasses.replace(last, end=piece.end, text=last.text + piece.text)
        else:
            runs.append(piece)
    return "".join(
        f"[{_clock(run.start)}-{_clock(run.end)}] {run.speaker}: {run.text.strip()}\n"
        for run in runs
        if run.text.strip()
    )


async def _turns(
    manager: ModelManager, alias: str, data: bytes, speakers: int | None
) -> list[SpeakerTurn]:
    async with await manager.acquire(alias, ModelKind.DIARIZATION) as lease:
        engine = lease.engine
        assert isinstance(engine, SpeakerDiarizer)
        audio = decode_audio(data, engine.capabilities.sample_rate)
        options = DiarizeOptions(num_speakers=speakers)
        return await asyncio.to_thread(engine.diarize, audio, options)


def diarized_lines(
    settings: Settings, alias: str, data: bytes, options: TranscribeOptions, speakers: int | None
) -> str:
    """The recording diarized and transcribed by this process, as speaker lines."""

    async def run() -> str:
        manager = build_manager(settings, BackendRegistry.from_entry_points())
        try:
            diarizer = require_diarizer(manager)
            for model in (manager.get(alias), diarizer):
                if model.state is ModelState.DOWNLOADING:
                    await manager.prepare(model)
            turns = await _turns(manager, diarizer.alias, data, speakers)
            async with await manager.acquire(alias, ModelKind.STT) as lease:
                stt = lease.engine
                assert isinstance(stt, SpeechToText)
                words = stt.capabilities.word_timestamps  # to split segments between speakers
                asked = dataclasses.replace(options, word_timestamps=words)
                audio = decode_audio(data, stt.capabilities.sample_rate)
                segments, _info = await asyncio.to_thread(
                    transcribe_planned, stt, audio, asked, turns
                )
                collected = await asyncio.to_thread(list, segments)
        finally:
            await manager.stop()
        labels = SpeakerLabels(turns)
        return speaker_lines([p for s in collected for p in attribute_speakers(s, turns, labels)])

    return asyncio.run(run())
