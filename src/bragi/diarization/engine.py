"""The diarizer: pyannote segmentation (ONNX Runtime), speaker embeddings (sherpa-onnx's
extractor), Bragi's clustering, block by block, with speakers linked across blocks and
named after known speakers.

A recording is cut into blocks of at most ``block_seconds`` (so clustering and memory stay
bounded); each block is segmented in overlapping 10 s windows, its local speakers cut into
units, embedded, clustered (:mod:`bragi.diarization.clustering`) and turned into turns
(:mod:`bragi.diarization.turns`). The blocks' speakers are linked by their mean voices
(:mod:`bragi.diarization.linking`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bragi.audio.types import Audio, Samples
from bragi.backends.protocol import (
    DiarizeOptions,
    DiarizerCapabilities,
    KnownSpeaker,
    SpeakerTurn,
)
from bragi.diarization.clustering import (
    SpeechUnit,
    assign_to_nearest,
    cluster_voices,
    speech_units,
)
from bragi.diarization.linking import SpeakerLedger, Vector, match_greedy, unit
from bragi.diarization.segmentation import Segmenter, WindowActivity
from bragi.diarization.turns import FrameGrid, Turn, speaker_turns
from bragi.errors import EngineError, InvalidRequestError

__all__ = ["Diarizer", "DiarizerSettings"]

#: Seconds of clean speech a unit needs to take part in clustering: shorter embeddings
#: are too noisy to found or join a speaker, so they are only matched afterwards.
CLUSTER_SECONDS = 1.0
#: A pause this long cuts a unit too: pyannote's segmentation may give the next person,
#: after a silence, the same local label (a reader, then a synthetic voice 0.6 s later).
PAUSE_SECONDS = 0.5
#: Shorter units are not embedded at all (their frames get no speaker from their window).
EMBED_SECONDS = 0.3
#: A short unit joins the most similar speaker at this fraction of the similarity that
#: clustering asks (1 - threshold): embeddings of under a second are noisy. Measured on the
#: test conversations (44 units of 0.3-1 s): 0.33-0.80 to their own speaker's centroid,
#: at most 0.19 to any other.
SHORT_UNIT_SIMILARITY = 0.5


@dataclass(frozen=True, slots=True)
class DiarizerSettings:
    sample_rate: int
    threshold: float  # cosine distance under which two voices are one speaker
    window_shift: float  # fraction of the 10 s window between segmentation windows
    min_speech: float
    min_silence: float
    block_seconds: float
    known_similarity: float


@dataclass(frozen=True, slots=True)
class _Block:
    turns: list[Turn]  # speakers numbered within the block
    voices: list[Vector]  # each speaker's mean voice
    seconds: list[float]  # each speaker's speech


class Diarizer:
    """Implements :class:`~bragi.backends.protocol.SpeakerDiarizer`."""

    def __init__(
        self, settings: DiarizerSettings, segmenter: Segmenter, extractors: Sequence[Any]
    ) -> None:
        """``extractors``: sherpa-onnx embedding extractors, one thread each; units are
        embedded by all of them at once (their ``compute`` runs without the GIL)."""
        self._settings = settings
        self._segmenter: Segmenter | None = segmenter
        self._extractors: list[Any] = list(extractors)
        self._lock = threading.Lock()  # one diarization at a time per loaded model
        self.capabilities = DiarizerCapabilities(sample_rate=settings.sample_rate)

    def close(self) -> None:
        if self._segmenter is not None:
            self._segmenter.close()
        self._segmenter = None
        self._extractors = []

    # --- the protocol ----------------------------------------------------------------

    def diarize(self, audio: Audio, options: DiarizeOptions) -> list[SpeakerTurn]:
        rate = self._settings.sample_rate
        if audio.sample_rate != rate:
            raise EngineError(f"the diarizer needs {rate} Hz audio, got {audio.sample_rate}")
        threshold = self._settings.threshold if options.threshold is None else options.threshold
        with self._lock:
            if self._segmenter is None:
                raise EngineError("this diarizer has been closed")
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
    ) -> tuple[list[Turn], SpeakerLedger]:
        rate = self._settings.sample_rate
        blocks = _block_bounds(samples, rate, self._settings.block_seconds)
        ledger = SpeakerLedger(link_similarity=1.0 - threshold)
        one_block = len(blocks) == 1
        turns: list[Turn] = []
        for first, last in blocks:
            block = self._block(samples[first:last], num_speakers if one_block else None, threshold)
            ids = ledger.link(block.voices, block.seconds)
            offset = first / rate
            turns += [Turn(t.start + offset, t.end + offset, ids[t.speaker]) for t in block.turns]
        if num_speakers and not one_block and len(ledger.speakers) > num_speakers:
            merged = ledger.merge_to(num_speakers)
            turns = [Turn(t.start, t.end, merged[t.speaker]) for t in turns]
        return turns, ledger

    def _block(self, samples: Samples, num_speakers: int | None, threshold: float) -> _Block:
        """One block: segmentation, units, voices, clusters, turns."""
        assert self._segmenter is not None
        model = self._segmenter.model
        step = max(1, round(model.window_size * self._settings.window_shift))
        windows = self._segmenter.windows(samples, step)
        if not windows:
            return _Block([], [], [])
        hop = model.window_size / len(windows[0].active)
        units = speech_units(windows, round(PAUSE_SECONDS * model.sample_rate / hop))
        if not units:
            return _Block([], [], [])
        grid = FrameGrid(hop, model.sample_rate, len(samples))
        seconds = np.array([len(u.clean) * hop / grid.rate for u in units])
        wanted = [i for i in range(len(units)) if seconds[i] >= EMBED_SECONDS]
        pieces = [_pieces(samples, windows[units[i].window], units[i], grid) for i in wanted]
        voices = self._embed_all(wanted, pieces)
        founders = [i for i in voices if seconds[i] >= CLUSTER_SECONDS] or list(voices)
        if not founders:
            return _Block([], [], [])
        founding = cluster_voices(
            np.stack([voices[i] for i in founders]), seconds[founders], threshold, num_speakers
        )
        labels: list[int | None] = [None] * len(units)
        sums = np.zeros((int(founding.max()) + 1, len(voices[founders[0]])), np.float64)
        for index, label in zip(founders, founding.tolist(), strict=True):
            labels[index] = label
            sums[label] += voices[index] * seconds[index]
        centroids = np.stack([unit(row) for row in sums])
        least = (1.0 - threshold) * SHORT_UNIT_SIMILARITY
        for index in voices.keys() - set(founders):
            labels[index] = assign_to_nearest(voices[index], centroids, least)
        turns = speaker_turns(
            windows, units, labels, grid, self._settings.min_speech, self._settings.min_silence
        )
        return _renumbered(turns, centroids)

    def _embed_all(self, indices: list[int], pieces: list[list[Samples]]) -> dict[int, Vector]:
        """index -> voice embedding, the extractors taking the units in turn, in parallel."""
        share = len(self._extractors)

        def embed(worker: int) -> dict[int, Vector]:
            extractor = self._extractors[worker]
            found = {}
            for index, parts in zip(indices[worker::share], pieces[worker::share], strict=True):
                voice = self._voice(parts, extractor)
                if voice is not None:
                    found[index] = voice
            return found

        if share == 1 or len(indices) < share:  # not worth a thread
            return _merged(embed(worker) for worker in range(share))
        with ThreadPoolExecutor(max_workers=share, thread_name_prefix="diarize") as pool:
            return _merged(pool.map(embed, range(share)))

    def _voice(self, pieces: list[Samples], extractor: Any) -> Vector | None:
        """The embedding of the pieces as one stretch of speech; None when they are too
        short for the model (it gives no embedding, or a non-finite one)."""
        stream = extractor.create_stream()
        for piece in pieces:
            if len(piece):
                stream.accept_waveform(
                    self._settings.sample_rate, np.ascontiguousarray(piece, dtype=np.float32)
                )
        stream.input_finished()
        if not extractor.is_ready(stream):
            return None
        vector = np.asarray(extractor.compute(stream), np.float32)
        return unit(vector) if np.all(np.isfinite(vector)) and vector.any() else None

    # --- known speakers ------------------------------------------------------------------

    def _reference(self, known: KnownSpeaker) -> Vector:
        audio = known.reference
        if audio.sample_rate != self._settings.sample_rate:
            raise EngineError(f"reference for {known.name!r} is not at the model's rate")
        voice = self._voice([audio.samples], self._extractors[0])
        if voice is None:
            raise InvalidRequestError(
                f"The reference recording for {known.name!r} is too short to recognise a voice.",
                param="known_speaker_references",
            )
        return voice

    def _names(
        self, ledger: SpeakerLedger, references: list[Vector], known: tuple[KnownSpeaker, ...]
    ) -> dict[int, str]:
        if not references or not ledger.speakers:
            return {}
        similarity = np.stack(ledger.centroids()) @ np.stack(references).T
        pairs = match_greedy(similarity, self._settings.known_similarity)
        return {speaker: known[reference].name for speaker, reference in pairs.items()}


def _pieces(
    samples: Samples, window: WindowActivity, speech: SpeechUnit, grid: FrameGrid
) -> list[Samples]:
    """A unit's clean speech, as runs of samples."""
    pieces = []
    breaks = np.flatnonzero(np.diff(speech.clean) > 1) + 1
    for run in np.split(speech.clean, breaks):
        start = window.start + round(int(run[0]) * grid.hop)
        end = min(window.start + round((int(run[-1]) + 1) * grid.hop), len(samples))
        pieces.append(samples[start:end])
    return pieces


def _merged(parts: Iterable[dict[int, Vector]]) -> dict[int, Vector]:
    merged: dict[int, Vector] = {}
    for part in parts:
        merged |= part
    return merged


def _renumbered(turns: list[Turn], centroids: NDArray[np.float32]) -> _Block:
    """Only the speakers that kept a turn, numbered 0, 1, ... in order of appearance."""
    order: dict[int, int] = {}
    for turn in turns:
        order.setdefault(turn.speaker, len(order))
    seconds = [0.0] * len(order)
    for turn in turns:
        seconds[order[turn.speaker]] += turn.end - turn.start
    return _Block(
        [Turn(t.start, t.end, order[t.speaker]) for t in turns],
        [centroids[old] for old in order],
        seconds,
    )


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
