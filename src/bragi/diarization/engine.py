"""The diarizer: sherpa-onnx's pyannote segmentation + speaker embeddings + clustering,
block by block, with speakers linked across blocks and named after known speakers.

sherpa-onnx clusters every (10 s window, local speaker) embedding of a call at once, so its
memory grows with the square of the recording's length; Bragi hands it blocks of at most
``block_seconds`` and links the blocks' speakers by their mean embeddings
(:mod:`bragi.diarization.linking`). A recording that fits in one block is clustered by
sherpa-onnx alone, exactly as its own examples do.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from bragi.audio.types import Audio, Samples
from bragi.backends.protocol import (
    DiarizeOptions,
    DiarizerCapabilities,
    KnownSpeaker,
    SpeakerTurn,
)
from bragi.diarization.linking import SpeakerLedger, Vector, match_greedy, unit
from bragi.errors import EngineError, InvalidRequestError

__all__ = ["SherpaDiarizer", "SherpaDiarizerSettings"]

#: Seconds of one speaker's clean speech embedded for its voice (more adds little).
_VOICE_SECONDS = 30.0
_MIN_PIECE = 0.25  # shorter pieces are mostly edges of someone else's words


@dataclass(frozen=True, slots=True)
class SherpaDiarizerSettings:
    segmentation: str  # paths of the two ONNX files
    embedding: str
    sample_rate: int
    threads: int
    threshold: float
    window_shift: float  # fraction of the 10 s window between segmentation windows
    min_speech: float
    min_silence: float
    block_seconds: float
    known_similarity: float


@dataclass(frozen=True, slots=True)
class _Turn:
    start: float
    end: float
    speaker: int  # within its block, then globally


class SherpaDiarizer:
    """Implements :class:`~bragi.backends.protocol.SpeakerDiarizer`."""

    def __init__(self, settings: SherpaDiarizerSettings, sherpa: Any) -> None:
        self._settings = settings
        self._sherpa: Any = sherpa
        self._lock = threading.Lock()  # one diarization at a time per loaded model
        self._extractor: Any = sherpa.SpeakerEmbeddingExtractor(
            sherpa.SpeakerEmbeddingExtractorConfig(
                model=settings.embedding, num_threads=settings.threads
            )
        )
        self._diarizers: dict[tuple[int, float], Any] = {}
        self._diarizer(-1, settings.threshold)  # fail at load, not at the first request
        self.capabilities = DiarizerCapabilities(sample_rate=settings.sample_rate)

    def close(self) -> None:
        self._diarizers.clear()
        self._extractor = None

    # --- the protocol ----------------------------------------------------------------

    def diarize(self, audio: Audio, options: DiarizeOptions) -> list[SpeakerTurn]:
        rate = self._settings.sample_rate
        if audio.sample_rate != rate:
            raise EngineError(f"the diarizer needs {rate} Hz audio, got {audio.sample_rate}")
        if self._extractor is None:
            raise EngineError("this diarizer has been closed")
        threshold = self._settings.threshold if options.threshold is None else options.threshold
        with self._lock:
            references = [self._reference(known) for known in options.known_speakers]
            turns, ledger = self._diarize_blocks(audio.samples, options.num_speakers, threshold)
        names = self._names(ledger, references, options.known_speakers)
        return [
            SpeakerTurn(
                round(t.start, 3),
                round(t.end, 3),
                names.get(t.speaker, f"spk{t.speaker}"),
                known=t.speaker in names,
            )
            for t in sorted(turns, key=lambda t: (t.start, t.end))
        ]

    # --- blocks and linking ------------------------------------------------------------

    def _diarize_blocks(
        self, samples: Samples, num_speakers: int | None, threshold: float
    ) -> tuple[list[_Turn], SpeakerLedger]:
        rate = self._settings.sample_rate
        blocks = _block_bounds(samples, rate, self._settings.block_seconds)
        ledger = SpeakerLedger(link_similarity=1.0 - threshold)
        one_block = len(blocks) == 1
        turns: list[_Turn] = []
        for first, last in blocks:
            block = samples[first:last]
            clusters = num_speakers if one_block and num_speakers else -1
            found = self._diarizer(clusters, threshold).process(block).sort_by_start_time()
            local = [_Turn(s.start, s.end, int(s.speaker)) for s in found]
            speakers = sorted({t.speaker for t in local})
            voices = [self._voice(block, local, speaker) for speaker in speakers]
            kept = [i for i, voice in enumerate(voices) if voice is not None]
            ids = ledger.link(
                [voices[i] for i in kept],  # type: ignore[misc]
                [sum(t.end - t.start for t in local if t.speaker == speakers[i]) for i in kept],
            )
            to_global = {speakers[i]: ids[n] for n, i in enumerate(kept)}
            offset = first / rate
            turns += [
                _Turn(t.start + offset, t.end + offset, to_global[t.speaker])
                for t in local
                if t.speaker in to_global
            ]
        if num_speakers and not one_block and len(ledger.speakers) > num_speakers:
            merged = ledger.merge_to(num_speakers)
            turns = [_Turn(t.start, t.end, merged[t.speaker]) for t in turns]
        return turns, ledger

    def _voice(self, block: Samples, turns: list[_Turn], speaker: int) -> Vector | None:
        """The speaker's embedding over (up to 30 s of) its speech that nobody else overlaps."""
        rate = self._settings.sample_rate
        mine = [t for t in turns if t.speaker == speaker]
        others = [t for t in turns if t.speaker != speaker]
        pieces = _without(mine, others) or [(t.start, t.end) for t in mine]
        pieces.sort(key=lambda p: p[1] - p[0], reverse=True)
        stream = self._extractor.create_stream()
        taken = 0.0
        for start, end in pieces:
            if taken >= _VOICE_SECONDS or (end - start < _MIN_PIECE and taken > 0):
                break
            piece = block[int(start * rate) : int(end * rate)]
            if len(piece):
                stream.accept_waveform(rate, np.ascontiguousarray(piece, dtype=np.float32))
                taken += len(piece) / rate
        stream.input_finished()
        if not self._extractor.is_ready(stream):
            return None
        vector = np.asarray(self._extractor.compute(stream), np.float32)
        return None if not np.all(np.isfinite(vector)) else unit(vector)

    # --- known speakers ------------------------------------------------------------------

    def _reference(self, known: KnownSpeaker) -> Vector:
        audio = known.reference
        if audio.sample_rate != self._settings.sample_rate:
            raise EngineError(f"reference for {known.name!r} is not at the model's rate")
        stream = self._extractor.create_stream()
        stream.accept_waveform(audio.sample_rate, np.ascontiguousarray(audio.samples))
        stream.input_finished()
        if not self._extractor.is_ready(stream):
            raise InvalidRequestError(
                f"The reference recording for {known.name!r} is too short to recognise a voice.",
                param="known_speaker_references",
            )
        return unit(np.asarray(self._extractor.compute(stream), np.float32))

    def _names(
        self, ledger: SpeakerLedger, references: list[Vector], known: tuple[KnownSpeaker, ...]
    ) -> dict[int, str]:
        if not references or not ledger.speakers:
            return {}
        similarity = np.stack(ledger.centroids()) @ np.stack(references).T
        pairs = match_greedy(similarity, self._settings.known_similarity)
        return {speaker: known[reference].name for speaker, reference in pairs.items()}

    # --- sherpa-onnx ---------------------------------------------------------------------

    def _diarizer(self, clusters: int, threshold: float) -> Any:
        key = (clusters, threshold)
        if key not in self._diarizers:
            sherpa, settings = self._sherpa, self._settings
            pyannote = sherpa.OfflineSpeakerSegmentationPyannoteModelConfig(
                model=settings.segmentation, window_shift_ratio=settings.window_shift
            )
            config = sherpa.OfflineSpeakerDiarizationConfig(
                segmentation=sherpa.OfflineSpeakerSegmentationModelConfig(
                    pyannote=pyannote, num_threads=settings.threads
                ),
                embedding=sherpa.SpeakerEmbeddingExtractorConfig(
                    model=settings.embedding, num_threads=settings.threads
                ),
                clustering=sherpa.FastClusteringConfig(num_clusters=clusters, threshold=threshold),
                min_duration_on=settings.min_speech,
                min_duration_off=settings.min_silence,
            )
            if not config.validate():
                raise EngineError("sherpa-onnx rejected the diarization configuration")
            if len(self._diarizers) >= 4:  # a few (speaker count, threshold) variants at most
                self._diarizers.pop(next(iter(self._diarizers)))
            self._diarizers[key] = sherpa.OfflineSpeakerDiarization(config)
        return self._diarizers[key]


def _without(mine: list[_Turn], others: list[_Turn]) -> list[tuple[float, float]]:
    """``mine`` minus every stretch another speaker overlaps, pieces of at least 0.25 s."""
    pieces: list[tuple[float, float]] = []
    for turn in mine:
        cuts = [(turn.start, turn.end)]
        for other in others:
            if other.end <= turn.start or other.start >= turn.end:
                continue
            next_cuts = []
            for start, end in cuts:
                if other.start > start:
                    next_cuts.append((start, min(end, other.start)))
                if other.end < end:
                    next_cuts.append((max(start, other.end), end))
            cuts = next_cuts
        pieces += [(s, e) for s, e in cuts if e - s >= _MIN_PIECE]
    return pieces


def _block_bounds(samples: Samples, rate: int, block_seconds: float) -> list[tuple[int, int]]:
    """Blocks of at most ``block_seconds``, each cut at the quietest 20 ms of its last 10 %."""
    total, size = len(samples), int(block_seconds * rate)
    if total <= size:
        return [(0, total)]
    hop = rate // 50
    bounds: list[tuple[int, int]] = []
    start = 0
    while total - start > size:
        lo, hi = start + int(size * 0.9), start + size
        frames = (hi - lo) // hop
        energy = np.square(samples[lo : lo + frames * hop].reshape(frames, hop)).mean(axis=1)
        cut = lo + int(np.argmin(energy)) * hop
        bounds.append((start, cut))
        start = cut
    bounds.append((start, total))
    return bounds
