"""The XTTS-v2 engine: torch and coqui-tts, imported only in the engine's worker.

Built-in speakers come with precomputed latents (``speakers_xtts.pth``). A cloned voice
is conditioned on its reference recording: XTTS computes a GPT conditioning latent and a
speaker embedding from it, which are cached per voice id (the reference of an id never
changes). Text is cut into sentences under the language's character limit, and each
sentence streams in chunks of ``stream_chunk_size`` GPT tokens.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from TTS.tts.configs.xtts_config import XttsConfig
from TTS.tts.models.xtts import Xtts

from bragi.audio.types import Audio
from bragi.backends.protocol import (
    Device,
    SynthesisRequest,
    TtsCapabilities,
    Voice,
    VoiceReference,
)
from bragi.backends.sentences import FIRST_MAX_CHARS, split_sentences
from bragi.backends.xtts import XttsOptions
from bragi.devices import usable_cpus
from bragi.errors import (
    BragiError,
    EngineError,
    InvalidRequestError,
    UnknownVoiceError,
    UnsupportedCapabilityError,
)

__all__ = ["XttsEngine", "load_xtts"]

log = logging.getLogger(__name__)
#: XTTS's own limit for languages its tokenizer does not list.
_DEFAULT_CHAR_LIMIT = 250
#: The shortest reference XTTS can condition on (its own minimum is 0.33 s per chunk).
_MIN_REFERENCE_SECONDS = 0.5
Latents = tuple[torch.Tensor, torch.Tensor]


def load_xtts(model_dir: Path, device: Device, options: XttsOptions) -> XttsEngine:
    torch.set_num_threads(options.threads or usable_cpus())
    try:
        config = XttsConfig()
        config.load_json(str(model_dir / "config.json"))
        model = Xtts(config)
        model.load_checkpoint(config, checkpoint_dir=str(model_dir), eval=True)
    except Exception as exc:  # the library boundary: bad config, missing or corrupt files
        raise EngineError(f"cannot load the XTTS model in {model_dir}: {exc}") from exc
    # No autograd graphs, whichever thread runs a step (grad mode is per thread).
    model.requires_grad_(False)
    if device == "cuda":
        model = model.cuda()
    return XttsEngine(model, config, options)


def _language_key(language: str) -> str:
    """XTTS's spelling of a language: ``zh`` is ``zh-cn``, other regions are dropped."""
    code = language.strip().lower().replace("_", "-")
    return "zh-cn" if code.split("-")[0] == "zh" else code.split("-")[0]


class XttsEngine:
    """A loaded XTTS model: built-in speakers, cloned voices, streaming synthesis."""

    def __init__(self, model: Any, config: Any, options: XttsOptions) -> None:
        self._model = model
        self._config = config
        self._options = options
        self._device = next(model.parameters()).device
        languages = frozenset(_language_key(code) for code in config.languages)
        self.capabilities = TtsCapabilities(
            sample_rate=int(config.model_args.output_sample_rate),
            max_native_speed=2.0,  # latents are stretched; past 2x words blur
            languages=languages,
            cloning=True,
        )
        manager = model.speaker_manager
        self._speakers: dict[str, Latents] = dict(manager.speakers) if manager else {}
        self._by_folded = {name.casefold(): name for name in self._speakers}
        self._cloned: OrderedDict[str, Latents] = OrderedDict()
        self._cloned_lock = threading.Lock()

    def voices(self) -> Sequence[Voice]:
        return [Voice(name) for name in self._speakers]

    def synthesize(self, request: SynthesisRequest) -> Iterator[Audio]:
        """Check the request and condition on the voice now; synthesize lazily."""
        if not request.speed > 0:  # refuses NaN too
            raise InvalidRequestError("speed must be a positive number", param="speed")
        language = self._language(request.language)
        latents = (
            self._reference_latents(request.reference)
            if request.reference is not None
            else self._speaker_latents(request.voice)
        )
        limit = self._model.tokenizer.char_limits.get(language.split("-")[0], _DEFAULT_CHAR_LIMIT)
        pieces = split_sentences(
            request.text, max_chars=limit, first_max_chars=min(limit, FIRST_MAX_CHARS)
        )
        if not pieces:
            raise InvalidRequestError("input has no text to speak", param="input")
        return self._generate(pieces, language, latents, request.speed)

    def _language(self, wanted: str | None) -> str:
        language = _language_key(wanted or self._options.language)
        if language not in self.capabilities.languages:
            known = ", ".join(sorted(self.capabilities.languages))
            raise UnsupportedCapabilityError(
                f"this XTTS model does not speak {wanted or language!r}; it speaks {known}",
                param="language",
            )
        return language

    def _speaker_latents(self, voice: str) -> Latents:
        name = self._by_folded.get(voice.casefold())
        if name is None:
            available = ", ".join(self._speakers) or "none (clone one)"
            raise UnknownVoiceError(
                f"Voice {voice!r} does not exist; available voices: {available}", param="voice"
            )
        speaker = self._speakers[name]
        if isinstance(speaker, dict):  # speakers_xtts.pth keeps each pair in a dict
            return speaker["gpt_cond_latent"], speaker["speaker_embedding"]
        return speaker

    def _reference_latents(self, reference: VoiceReference) -> Latents:
        with self._cloned_lock:
            cached = self._cloned.get(reference.id)
            if cached is not None:
                self._cloned.move_to_end(reference.id)
                return cached
        audio = reference.audio
        if audio.duration < _MIN_REFERENCE_SECONDS:
            raise InvalidRequestError(
                f"the reference of voice {reference.id!r} is {audio.duration:.2f} s long; "
                f"XTTS needs at least {_MIN_REFERENCE_SECONDS} s",
                param="voice",
            )
        rate = audio.sample_rate
        keep = round(self._options.max_reference_seconds * rate)
        samples = torch.from_numpy(np.ascontiguousarray(audio.samples[:keep])).unsqueeze(0)
        samples = samples.to(self._device)
        try:
            with torch.inference_mode():
                latent = self._model.get_gpt_cond_latents(
                    samples,
                    rate,
                    length=int(self._config.gpt_cond_len),
                    chunk_length=int(self._config.gpt_cond_chunk_len),
                )
                embedding = self._model.get_speaker_embedding(samples, rate)
        except Exception as exc:  # the library boundary
            raise EngineError(f"XTTS could not condition on voice {reference.id!r}: {exc}") from exc
        latents = (latent, embedding)
        with self._cloned_lock:
            if self._options.cached_voices:
                self._cloned[reference.id] = latents
                while len(self._cloned) > self._options.cached_voices:
                    self._cloned.popitem(last=False)
        return latents

    def _generate(
        self, pieces: list[str], language: str, latents: Latents, speed: float
    ) -> Iterator[Audio]:
        config, options = self._config, self._options
        rate = self.capabilities.sample_rate
        latent, embedding = latents
        for piece in pieces:
            try:
                stream = self._model.inference_stream(
                    piece,
                    language,
                    latent,
                    embedding,
                    stream_chunk_size=options.stream_chunk_size,
                    temperature=options.temperature or config.temperature,
                    top_k=options.top_k or config.top_k,
                    top_p=options.top_p or config.top_p,
                    repetition_penalty=options.repetition_penalty or config.repetition_penalty,
                    length_penalty=config.length_penalty,
                    speed=speed,
                )
                for chunk in stream:
                    samples = chunk.detach().to("cpu", torch.float32).numpy().reshape(-1)
                    if samples.size:
                        yield Audio(
                            np.clip(samples, -1.0, 1.0).astype(np.float32, copy=False), rate
                        )
            except BragiError:
                raise
            except Exception as exc:  # the library boundary: torch, transformers
                raise EngineError(f"XTTS failed to speak {piece[:40]!r}: {exc}") from exc

    def close(self) -> None:
        self._speakers.clear()
        self._cloned.clear()
        del self._model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
