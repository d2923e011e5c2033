"""``bragi transcribe --diarize``: transcribe and diarize here, print speaker-labelled lines."""

from __future__ import annotations

import asyncio
import dataclasses

from bragi.audio import decode_audio
from bragi.backends.protocol import (
    DiarizeOptions,
    ModelKind,
    SpeakerDiarizer,
    SpeechToText,
    TranscribeOptions,
)
from bragi.backends.registry import BackendRegistry
from bragi.config import Settings
from bragi.diarization import SpeakerLabels, attribute_speakers
from bragi.errors import InvalidRequestError
from bragi.models.configure import build_manager
from bragi.models.served import ModelState

__all__ = ["diarized_lines"]


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes):02d}:{rest:05.2f}"


def diarized_lines(
    settings: Settings, alias: str, data: bytes, options: TranscribeOptions, speakers: int | None
) -> str:
    """One ``[mm:ss.ss-mm:ss.ss] A: text`` line per speaker turn."""

    async def run() -> str:
        manager = build_manager(settings, BackendRegistry.from_entry_points())
        diarizer = manager.diarizer()
        if diarizer is None:
            raise InvalidRequestError(
                "no diarization model is configured: `bragi pull pyannote-segmentation-3.0`, "
                "or add one to models: (docs/diarization.md)"
            )
        for model in (manager.get(alias), diarizer):
            if model.state is ModelState.DOWNLOADING:
                await manager.prepare(model)
        try:
            async with await manager.acquire(diarizer.alias, ModelKind.DIARIZATION) as lease:
                engine = lease.engine
                assert isinstance(engine, SpeakerDiarizer)
                audio = decode_audio(data, engine.capabilities.sample_rate)
                turns = await asyncio.to_thread(
                    engine.diarize, audio, DiarizeOptions(num_speakers=speakers)
                )
            async with await manager.acquire(alias, ModelKind.STT) as lease:
                stt = lease.engine
                assert isinstance(stt, SpeechToText)
                words = dataclasses.replace(
                    options, word_timestamps=stt.capabilities.word_timestamps
                )
                audio = decode_audio(data, stt.capabilities.sample_rate)
                segments, _info = await asyncio.to_thread(stt.transcribe, audio, words)
                collected = await asyncio.to_thread(list, segments)
        finally:
            await manager.stop()
        labels = SpeakerLabels(turns)
        pieces = [p for s in collected for p in attribute_speakers(s, turns, labels)]
        merged: list[list[object]] = []
        for piece in pieces:
            if merged and merged[-1][2] == piece.speaker:
                merged[-1][1] = piece.end
                merged[-1][3] = f"{merged[-1][3]}{piece.text}"
            else:
                merged.append([piece.start, piece.end, piece.speaker, piece.text])
        return "".join(
            f"[{_clock(float(start))}-{_clock(float(end))}] {speaker}: {str(text).strip()}\n"  # type: ignore[arg-type]
            for start, end, speaker, text in merged
            if str(text).strip()
        )

    return asyncio.run(run())
