"""The "server" side: calls through the official ``openai`` client, timed by the caller."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["Client", "audio_seconds"]


class Client:
    """An OpenAI client for one server, with the few calls the suites make."""

    def __init__(self, base_url: str, api_key: str) -> None:
        import openai

        self.base_url = base_url.rstrip("/")
        self.openai = openai.OpenAI(
            base_url=f"{self.base_url}/v1", api_key=api_key, max_retries=0, timeout=900
        )

    def transcribe(
        self, model: str, path: Path, *, words: bool = False, language: str | None = None
    ) -> str:
        """Upload ``path``; ``json``, or ``verbose_json`` with word timestamps. The text."""
        options: dict[str, Any] = {"response_format": "json"}
        if words:
            options = {"response_format": "verbose_json", "timestamp_granularities": ["word"]}
        if language:
            options["language"] = language
        with path.open("rb") as file:
            result = self.openai.audio.transcriptions.create(model=model, file=file, **options)
        if words and not getattr(result, "words", None):
            raise RuntimeError(f"{self.base_url} returned no words for {path.name}")
        return str(result.text).strip()

    def diarize(self, model: str, path: Path) -> str:
        """Upload ``path`` for ``diarized_json``; the text (every segment has a speaker)."""
        with path.open("rb") as file:
            result = self.openai.audio.transcriptions.create(
                model=model, file=file, response_format="diarized_json"
            )
        segments = getattr(result, "segments", None) or []
        if not segments or not all(segment.speaker for segment in segments):
            raise RuntimeError(f"{self.base_url} returned no speakers for {path.name}")
        return str(result.text).strip()

    def speech(self, model: str, voice: str, text: str, fmt: Any) -> bytes:
        """The whole encoded file."""
        response = self.openai.audio.speech.create(
            model=model, voice=voice, input=text, response_format=fmt
        )
        return bytes(response.content)

    def first_audio(
        self,
        model: str,
        voice: str,
        text: str,
        fmt: Any,
        at_first: Callable[[], object] | None = None,
    ) -> tuple[float, bytes]:
        """Streamed speech: (seconds to the first audio byte, the whole body); ``at_first``
        is called right after the first byte's time is taken."""
        started = time.perf_counter()
        first = None
        parts = []
        with self.openai.audio.speech.with_streaming_response.create(
            model=model, voice=voice, input=text, response_format=fmt
        ) as response:
            for chunk in response.iter_bytes():
                if chunk and first is None:
                    first = time.perf_counter() - started
                    if at_first is not None:
                        at_first()
                parts.append(chunk)
        if first is None:
            raise RuntimeError(f"{self.base_url} sent no audio for {text[:40]!r}")
        return first, b"".join(parts)

    def close(self) -> None:
        self.openai.close()


def audio_seconds(data: bytes) -> float:
    """Duration of an encoded file (any format FFmpeg reads), by decoding it."""
    import av

    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.codec_context.sample_rate
