"""Engines that live in a worker process, behind the same protocols as in-process ones.

``transcribe()`` and ``synthesize()`` start the work in the worker (so errors it raises
up front, like an unknown voice, are raised here, typed) and return a
:class:`RemoteStream`: each ``next()`` asks the worker for one more segment or audio
chunk, so nothing is produced that nobody reads, and ``close()`` closes the engine's
generator in the worker. Capabilities and voices are fetched once, at load, so asking
for them never waits on the worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

from bragi.audio.types import Audio
from bragi.backends.protocol import (
    Engine,
    ModelKind,
    Segment,
    SynthesisRequest,
    TranscribeOptions,
    TranscriptionInfo,
    Voice,
)
from bragi.errors import BragiError, EngineError
from bragi.runners import codec
from bragi.runners.framing import Frame
from bragi.runners.process import LiveWorkers, WorkerProcess, WorkerSpec

__all__ = ["RemoteStream", "WorkerSpeechToText", "WorkerTextToSpeech", "start_worker"]

T = TypeVar("T")


class RemoteStream(Iterator[T], Generic[T]):
    """A stream of items produced in the worker, one per ``next()``."""

    def __init__(
        self,
        worker: WorkerProcess,
        stream: int,
        generation: int,
        decode: Callable[[Frame], T],
    ):
        self._worker = worker
        self._stream = stream
        self._generation = generation
        self._decode = decode
        self._done = False

    def __iter__(self) -> RemoteStream[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        try:
            frame, _ = self._worker.call(
                {"op": "next", "stream": self._stream}, generation=self._generation
            )
        except BaseException:
            self._done = True  # the worker dropped the stream (or is gone)
            raise
        if frame.op == "end":
            self._done = True
            raise StopIteration
        return self._decode(frame)

    def close(self) -> None:
        """Stop the work: the engine's generator in the worker is closed."""
        if not self._done:
            self._done = True
            self._worker.cancel(self._stream, self._generation)

    def __del__(self) -> None:
        if not getattr(self, "_done", True):
            self._worker.forget(self._stream, self._generation)


def _segment(frame: Frame) -> Segment:
    return codec.segment(frame.header["segment"])


def _chunk(frame: Frame) -> Audio:
    return codec.audio_from_payload(frame.payload, int(frame.header["sample_rate"]))


class _WorkerEngine:
    def __init__(self, worker: WorkerProcess):
        self.worker = worker

    @property
    def pid(self) -> int | None:
        """The worker's process id (None while it is not running)."""
        return self.worker.pid

    def ping(self) -> dict[str, Any]:
        """The worker's health: pid, resident memory, open streams, interpreter."""
        frame, _ = self.worker.call({"op": "ping"})
        return frame.header

    def close(self) -> None:
        self.worker.close()

    def kill(self) -> None:
        """End the worker now, without waiting for the step in flight (shutdown's last
        resort)."""
        self.worker.kill()


class WorkerSpeechToText(_WorkerEngine):
    def __init__(self, worker: WorkerProcess):
        super().__init__(worker)
        self.capabilities = codec.stt_capabilities(worker.loaded["capabilities"])

    def transcribe(
        self, audio: Audio, options: TranscribeOptions
    ) -> tuple[Iterator[Segment], TranscriptionInfo]:
        stream = self.worker.new_stream()
        header = {
            "op": "transcribe",
            "stream": stream,
            "sample_rate": audio.sample_rate,
            "options": codec.encode(options),
        }
        frame, generation = self.worker.call(header, codec.audio_payload(audio))
        info = codec.transcription_info(frame.header["info"])
        return RemoteStream(self.worker, stream, generation, _segment), info


class WorkerTextToSpeech(_WorkerEngine):
    def __init__(self, worker: WorkerProcess):
        super().__init__(worker)
        self.capabilities = codec.tts_capabilities(worker.loaded["capabilities"])
        self._voices = [codec.voice(v) for v in worker.loaded.get("voices", [])]

    def voices(self) -> Sequence[Voice]:
        return self._voices

    def refresh_voices(self) -> Sequence[Voice]:
        """Ask the worker again (after voices were added to the engine)."""
        frame, _ = self.worker.call({"op": "voices"})
        self._voices = [codec.voice(v) for v in frame.header["voices"]]
        return self._voices

    def synthesize(self, request: SynthesisRequest) -> Iterator[Audio]:
        stream = self.worker.new_stream()
        data, payload = codec.synthesis_header(request)
        header = {"op": "synthesize", "stream": stream, "request": data}
        _, generation = self.worker.call(header, payload)
        return RemoteStream(self.worker, stream, generation, _chunk)


def start_worker(spec: WorkerSpec, kind: ModelKind, workers: LiveWorkers | None = None) -> Engine:
    """Start a worker for ``spec`` (tracked in ``workers``), load its engine, and return
    the engine's proxy."""
    worker = WorkerProcess(spec)
    if workers is not None:
        workers.add(worker)
    loaded = worker.start()
    try:
        if loaded.get("kind") != kind.value or "capabilities" not in loaded:
            raise EngineError(
                f"the {spec.backend} backend is {kind.value}, but its engine is not "
                f"(the worker loaded a {loaded.get('kind')} engine)"
            )
        if kind is ModelKind.STT:
            return WorkerSpeechToText(worker)
        return WorkerTextToSpeech(worker)
    except BragiError:
        worker.close()
        raise
