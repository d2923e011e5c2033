"""The Fish Speech (OpenAudio S1-mini) engine: torch and fish-speech 0.1.0, imported only in
the engine's worker.

Only the modules inference needs are imported: ``text2semantic.inference`` (the slow and
fast transformers and ``generate_long``) and ``dac.modded_dac`` through hydra. Not
``dac.inference`` (it looks for a project root at import and fails from site-packages),
nor ``inference_engine`` (it calls a torchaudio API that 2.11 no longer has). A cloned
voice is encoded once to DAC codes (cached per voice); each sentence is one
``generate_long`` call with the codes and transcript as its prompt, capped in frames, then
decoded by the codec, so audio streams sentence by sentence at 44.1 kHz.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fish_speech.models.text2semantic.inference import generate_long, init_model
from hydra.utils import instantiate
from loguru import logger as fish_logger
from omegaconf import OmegaConf

from bragi.audio import decode_audio
from bragi.audio.resample import resample
from bragi.audio.types import Audio
from bragi.backends.fish import DEFAULT_VOICE, MARKERS, FishOptions
from bragi.backends.protocol import (
    Device,
    SynthesisRequest,
    TtsCapabilities,
    Voice,
    VoiceReference,
)
from bragi.backends.references import (
    PromptCache,
    fit_reference,
    long_enough,
    needs_transcript,
)
from bragi.backends.sentences import FIRST_MAX_CHARS, split_sentences
from bragi.devices import usable_cpus
from bragi.errors import (
    BragiError,
    EngineError,
    InvalidRequestError,
    UnknownVoiceError,
    UnsupportedCapabilityError,
)

__all__ = ["FishEngine", "load_fish"]

log = logging.getLogger(__name__)
_MAX_CHARS = 250
_MIN_REFERENCE_SECONDS = 1.0
_DEFAULT_ID = "default-reference"


def _load_codec(config: Path | None, weights: Path, device: str, dtype: torch.dtype) -> Any:
    """The modded DAC as fish-speech's own ``dac.inference.load_model`` builds it."""
    path = config or Path(str(resources.files("fish_speech") / "configs" / "modded_dac_vq.yaml"))
    codec = instantiate(OmegaConf.load(str(path)))
    state = torch.load(str(weights), map_location=device, mmap=True, weights_only=True)
    state = state.get("state_dict", state)
    if any("generator" in key for key in state):
        state = {k.replace("generator.", ""): v for k, v in state.items() if "generator." in k}
    result = codec.load_state_dict(state, strict=False, assign=True)
    if result.missing_keys:
        raise EngineError(
            f"{weights} does not fit the codec config {path}: {len(result.missing_keys)} "
            f"tensors missing (e.g. {result.missing_keys[0]})"
        )
    return codec.eval().to(device=device, dtype=dtype)


def load_fish(
    model_dir: Path, codec_config: Path | None, device: Device, options: FishOptions
) -> FishEngine:
    torch.set_num_threads(options.threads or usable_cpus())
    fish_logger.disable("fish_speech")  # and its per-sentence log lines
    target = "cuda" if device == "cuda" else "cpu"
    dtype = torch.bfloat16 if device == "cuda" and options.bfloat16 else torch.float32
    try:
        model, decode_one_token = init_model(str(model_dir), target, dtype, compile=False)
        codec = _load_codec(codec_config, model_dir / "codec.pth", target, dtype)
    except BragiError:
        raise
    except Exception as exc:  # the library boundary: bad config, missing or corrupt files
        raise EngineError(f"cannot load the Fish Speech model in {model_dir}: {exc}") from exc
    model.requires_grad_(False)
    codec.requires_grad_(False)
    return FishEngine(model, decode_one_token, codec, target, options)


class FishEngine:
    """A loaded OpenAudio S1-mini: cloned voices (and a configured default one)."""

    def __init__(
        self, model: Any, decode_one_token: Any, codec: Any, device: str, options: FishOptions
    ) -> None:
        self._model = model
        self._decode_one_token = decode_one_token
        self._codec = codec
        self._device = device
        self._options = options
        self.capabilities = TtsCapabilities(
            sample_rate=int(codec.sample_rate),
            native_speed=False,  # no speed input: the server time-stretches
            languages=frozenset(options.languages),
            cloning=True,
            instructions="style",
        )
        self._samples_per_frame = int(codec.frame_length)
        self._prompts: PromptCache[tuple[torch.Tensor, str]] = PromptCache()
        self._default: VoiceReference | None = None
        if options.default_reference is not None:
            self._default = self._default_reference(options)
            self._prompt(self._default, DEFAULT_VOICE)  # encoded once, and checked now

    def voices(self) -> Sequence[Voice]:
        return [Voice(DEFAULT_VOICE)] if self._default is not None else []

    def _default_reference(self, options: FishOptions) -> VoiceReference:
        path = Path(options.default_reference or "").expanduser()
        try:
            audio = decode_audio(path.read_bytes(), int(self._codec.sample_rate))
        except (OSError, BragiError) as exc:
            raise EngineError(f"option default_reference: cannot read {path}: {exc}") from exc
        return VoiceReference(_DEFAULT_ID, audio, options.default_reference_text)

    def synthesize(self, request: SynthesisRequest) -> Iterator[Audio]:
        """Check the request and encode the voice now; synthesize lazily."""
        if not request.speed > 0:  # refuses NaN too
            raise InvalidRequestError("speed must be a positive number", param="speed")
        if request.language is not None:
            code = request.language.strip().lower().replace("_", "-").split("-")[0]
            if code not in self.capabilities.languages:
                known = ", ".join(sorted(self.capabilities.languages))
                raise UnsupportedCapabilityError(
                    f"this Fish Speech model does not speak {request.language!r}; it speaks "
                    f"{known}",
                    param="language",
                )
        markers = self._markers(request.instructions)
        reference = request.reference
        if reference is None and request.voice == DEFAULT_VOICE and self._default is not None:
            reference = self._default
        if reference is None:
            raise UnknownVoiceError(
                f"Voice {request.voice!r} does not exist; OpenAudio S1-mini has no built-in "
                "voice: clone one (POST /v1/audio/voices), or configure default_reference",
                param="voice",
            )
        codes, text = self._prompt(reference, request.voice)
        pieces = split_sentences(
            request.text, max_chars=_MAX_CHARS, first_max_chars=FIRST_MAX_CHARS
        )
        if not pieces:
            raise InvalidRequestError("input has no text to speak", param="input")
        return self._generate(pieces, markers, codes, text)

    def _markers(self, instructions: str | None) -> str:
        """S1's emotion markers from ``instructions``: a 400 for anything else."""
        if not instructions or not instructions.strip():
            return ""
        if not MARKERS.match(instructions):
            raise InvalidRequestError(
                "OpenAudio S1 follows instructions given as its emotion and tone markers, "
                "such as '(sad)', '(excited) (whispering)' or '(soft tone)'; free-form "
                "instructions are not supported",
                param="instructions",
            )
        return " ".join(instructions.split()) + " "

    def _prompt(self, reference: VoiceReference, voice: str) -> tuple[torch.Tensor, str]:
        """The voice's DAC codes ([codebooks, frames]) and transcript, made once per voice."""
        cached = self._prompts.get(reference.id)
        if cached is not None:
            return cached
        limit = self._options.max_reference_seconds
        fitted = fit_reference(reference, limit)
        text = needs_transcript("Fish Speech", voice, fitted, limit)
        audio = long_enough(fitted.audio, voice, "Fish Speech", _MIN_REFERENCE_SECONDS)
        rate = self.capabilities.sample_rate
        if audio.sample_rate != rate:
            audio = resample(audio, rate)
        samples = torch.from_numpy(np.ascontiguousarray(audio.samples, dtype=np.float32))
        samples = samples.to(self._device, dtype=next(self._codec.parameters()).dtype)
        try:
            with torch.inference_mode():
                lengths = torch.tensor([samples.shape[-1]], device=self._device)
                codes = self._codec.encode(samples[None, None], lengths)[0][0].cpu()
        except Exception as exc:  # the library boundary
            raise EngineError(f"Fish Speech could not encode voice {voice!r}: {exc}") from exc
        prompt = (codes, text)
        # the configured default voice is kept even when cloned voices are not
        keep = self._options.cached_voices or (1 if reference.id == _DEFAULT_ID else 0)
        self._prompts.put(reference.id, prompt, keep)
        return prompt

    def frame_cap(self, text: str) -> int:
        """Most codec frames a sentence of ``text`` may take."""
        options = self._options
        return options.max_frames_base + round(options.max_frames_per_char * len(text))

    def _generate(
        self, pieces: list[str], markers: str, codes: torch.Tensor, ref_text: str
    ) -> Iterator[Audio]:
        options, rate = self._options, self.capabilities.sample_rate
        for piece in pieces:
            cap = self.frame_cap(piece)
            if options.seed is not None:
                torch.manual_seed(options.seed)
            try:
                with torch.inference_mode():
                    spoken = self._codes(markers + piece, codes, ref_text, cap)
                    if spoken.shape[1] >= cap:
                        raise EngineError(
                            f"Fish Speech did not finish the sentence {piece[:40]!r} within "
                            f"{cap} frames ({cap * self._samples_per_frame / rate:.1f} s of "
                            "audio): it missed its stop token. The cap is max_frames_base + "
                            "max_frames_per_char per character.",
                            code="runaway_generation",
                        )
                    if not spoken.shape[1]:
                        continue
                    lengths = torch.tensor([spoken.shape[1]], device=self._device)
                    wave = self._codec.decode(
                        indices=spoken[None].to(self._device), feature_lengths=lengths
                    )[0]
            except BragiError:
                raise
            except Exception as exc:  # the library boundary: torch, fish-speech
                raise EngineError(f"Fish Speech failed to speak {piece[:40]!r}: {exc}") from exc
            samples = wave.detach().to("cpu", torch.float32).numpy().reshape(-1)
            if samples.size:
                yield Audio(np.clip(samples, -1.0, 1.0), rate)

    def _codes(self, text: str, codes: torch.Tensor, ref_text: str, cap: int) -> torch.Tensor:
        """The sentence's codes ([codebooks, frames]); one more token than the cap lets a
        sentence that stops in time show that it did."""
        for response in generate_long(
            model=self._model,
            device=self._device,
            decode_one_token=self._decode_one_token,
            text=text,
            max_new_tokens=cap + 1,
            top_p=self._options.top_p,
            temperature=self._options.temperature,
            repetition_penalty=self._options.repetition_penalty,
            prompt_text=[ref_text],
            prompt_tokens=[codes],
        ):
            if response.action == "sample" and response.codes is not None:
                result: torch.Tensor = response.codes
                return result
        raise EngineError("Fish Speech generated nothing")

    def close(self) -> None:
        self._prompts.clear()
        del self._model, self._codec
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
