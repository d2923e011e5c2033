"""The SpeechBrain engine: torch and SpeechBrain, imported only in the engine's worker.

The model is built the way SpeechBrain's ``from_hparams`` builds it (the hyperparams,
then the pretrainer's checkpoints, then the interface class), with the one difference
that every checkpoint is read in place from the model directory: no savedir, no
symlinks, no fetch. A checkpoint the hyperparams name on the hub or elsewhere is taken
from the model directory by its file name, or loading fails saying which is missing.

Long audio is cut at pauses by Bragi's energy detector (``speech_chunks`` in
:mod:`bragi.backends.chunked`, as for Paraformer and Parakeet); each stretch is one
``transcribe_batch`` call and one segment with its real start and end. SpeechBrain's ASR
interfaces give no token times, so segments carry no words.
"""

from __future__ import annotations

import gc
import logging
import zlib
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import speechbrain.inference.ASR as sb_asr
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.fetching import (
    FetchConfig,
    LocalStrategy,
)

from bragi.audio.types import Audio, Samples
from bragi.backends.chunked import ensure_open, plan_chunks
from bragi.backends.protocol import (
    Device,
    Segment,
    SttCapabilities,
    TranscribeOptions,
    TranscriptionInfo,
)
from bragi.backends.speechbrain import HYPERPARAMS, ModelSpec, SpeechBrainOptions
from bragi.devices import usable_cpus
from bragi.errors import EngineError, ModelUnavailableError

__all__ = ["SpeechBrainEngine", "load_speechbrain"]

log = logging.getLogger(__name__)
_MIN_SECONDS = 0.5  # shorter chunks are padded with silence: convolutional front ends need frames
_CHECKPOINT = ".ckpt"  # the pretrainer's file name for a loadable: <name>.ckpt


def load_speechbrain(
    model_dir: Path, device: Device, options: SpeechBrainOptions, spec: ModelSpec
) -> SpeechBrainEngine:
    languages = _languages(model_dir, options, spec)
    torch.set_num_threads(options.threads or usable_cpus())
    if device == "cuda" and not torch.cuda.is_available():
        log.warning("device is cuda but torch sees no CUDA device; using the CPU")
        device = "cpu"
    try:
        with (model_dir / HYPERPARAMS).open(encoding="utf-8") as file:
            hparams = load_hyperpyyaml(file)
        pretrainer = hparams["pretrainer"]
        pretrainer.set_collect_in(None)  # read the files where they are
        _point_at_local_files(pretrainer, model_dir)
        pretrainer.collect_files(
            default_source=str(model_dir),
            local_strategy=LocalStrategy.NO_LINK,
            fetch_config=FetchConfig(allow_network=False),
        )
        pretrainer.load_collected()
        hparams["savedir"] = None  # EncoderASR fetches an n-gram LM with it: in place too
        interface = getattr(sb_asr, spec.interface)
        model = interface(modules=hparams["modules"], hparams=hparams, run_opts={"device": device})
    except ModelUnavailableError:
        raise
    except ImportError as exc:  # the hyperparams build a class from a package not installed
        raise ModelUnavailableError(
            f"the SpeechBrain model in {model_dir} needs {exc.name or exc}, which the "
            "speechbrain environment does not have"
        ) from exc
    except Exception as exc:  # the library boundary: malformed hyperparams, bad checkpoints
        raise ModelUnavailableError(
            f"SpeechBrain could not load {spec.interface} from {model_dir}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    capabilities = SttCapabilities(spec.sample_rate, languages or None)
    return SpeechBrainEngine(model, capabilities, options)


def _languages(model_dir: Path, options: SpeechBrainOptions, spec: ModelSpec) -> frozenset[str]:
    """The configured languages, else the model card's, else the ``language`` option."""
    configured = frozenset(options.languages or ())
    languages = configured or spec.languages or frozenset(filter(None, [options.language]))
    if options.language and options.language not in languages:
        raise ModelUnavailableError(
            f"the language option {options.language!r} is not one the SpeechBrain model in "
            f"{model_dir} speaks according to its card: {', '.join(sorted(languages))}"
        )
    return languages


def _point_at_local_files(pretrainer: Any, model_dir: Path) -> None:
    """Make every checkpoint the pretrainer loads a file in ``model_dir``.

    Hub hyperparams may name their files by repo id (``speechbrain/asr-.../lm.ckpt``),
    which SpeechBrain would fetch from the hub: the same file name in the model directory
    is used instead, as it was downloaded with the model.
    """
    missing: list[str] = []
    for name in pretrainer.loadables:
        if not pretrainer.is_loadable(name):
            continue
        if name not in pretrainer.paths:
            if not (model_dir / f"{name}{_CHECKPOINT}").is_file():
                missing.append(f"{name}{_CHECKPOINT}")
            continue
        named = pretrainer.paths[name]
        path = str(getattr(named, "path", named))  # a str, a Path, or a FetchSource
        filename = path.rsplit("/", 1)[-1]
        if (model_dir / filename).is_file():
            pretrainer.paths[name] = str(model_dir / filename)
        elif not Path(path).is_absolute() or not Path(path).is_file():
            missing.append(f"{filename} (named as {path})")
    if missing:
        raise ModelUnavailableError(
            f"the SpeechBrain model in {model_dir} lacks {', '.join(missing)}: its "
            f"{HYPERPARAMS} loads them, and Bragi reads models from local files only"
        )


class SpeechBrainEngine:
    """A loaded SpeechBrain ASR model; implements :class:`~bragi.backends.protocol.SpeechToText`."""

    def __init__(
        self, model: Any, capabilities: SttCapabilities, options: SpeechBrainOptions
    ) -> None:
        self._model: Any = model  # EncoderDecoderASR or EncoderASR; None once closed
        self._options = options
        self.capabilities = capabilities

    def transcribe(
        self, audio: Audio, options: TranscribeOptions
    ) -> tuple[Generator[Segment, None, None], TranscriptionInfo]:
        """Check the request and find the speech now; decode it piece by piece as it is read."""
        chunks, info = plan_chunks("SpeechBrain", audio, options, self.capabilities, self._options)
        ensure_open(self._model, "SpeechBrain")
        return self._segments(audio.samples, chunks), info

    def close(self) -> None:
        """Drop the model so its memory goes back (after any decode still running)."""
        on_cuda = self._model is not None and str(self._model.device).startswith("cuda")
        self._model = None
        gc.collect()
        if on_cuda:
            torch.cuda.empty_cache()

    def _segments(
        self, samples: Samples, chunks: list[tuple[int, int]]
    ) -> Generator[Segment, None, None]:
        rate = self.capabilities.sample_rate
        index = 0
        for begin, end in chunks:
            text, tokens = self._decode(samples[begin:end])
            if not text:
                continue
            encoded = text.encode("utf-8")
            yield Segment(
                id=index,
                seek=round(begin / rate * 100),  # Whisper counts seek in 10 ms frames
                start=begin / rate,
                end=end / rate,
                text=" " + text,  # segments join into the transcript as Whisper's do
                tokens=tokens,
                # Whisper's measure of repetition: how well the text compresses
                compression_ratio=len(encoded) / len(zlib.compress(encoded)),
            )
            index += 1

    def _decode(self, clip: Samples) -> tuple[str, tuple[int, ...]]:
        """One stretch of speech: its text and, where the decoder gives them, token ids."""
        model = self._model
        if model is None:
            raise EngineError("this SpeechBrain engine was closed while decoding")
        shortest = round(_MIN_SECONDS * self.capabilities.sample_rate)
        if len(clip) < shortest:
            clip = np.pad(clip, (0, shortest - len(clip)))
        try:
            with torch.inference_mode():
                wavs = torch.from_numpy(np.ascontiguousarray(clip, dtype=np.float32))[None]
                words, hypotheses = model.transcribe_batch(wavs, torch.ones(1))
        except Exception as exc:  # the library boundary: torch and SpeechBrain errors
            raise EngineError(f"SpeechBrain failed while decoding: {exc}") from exc
        return str(words[0]).strip(), _token_ids(hypotheses[0])


def _token_ids(hypothesis: Any) -> tuple[int, ...]:
    """Token ids of one hypothesis: a list or tensor of ids from the attention and greedy
    CTC decoders; CTC beam searchers give text only."""
    if isinstance(hypothesis, torch.Tensor):
        return tuple(int(t) for t in hypothesis.flatten().tolist())
    if isinstance(hypothesis, Iterable) and not isinstance(hypothesis, str):
        items = list(hypothesis)
        if all(isinstance(t, int | np.integer | torch.Tensor) for t in items):
            return tuple(int(t) for t in items)
    return ()
