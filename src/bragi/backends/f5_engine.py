"""The F5-TTS engine: torch, f5-tts and vocos, imported only in the engine's worker.

The model is built by f5-tts's own ``load_model`` with an architecture read from the
checkpoint's tensors, and Vocos by its ``load_vocoder`` from a local directory: nothing
is downloaded. References are decoded by Bragi (a stored voice is already 24 kHz mono)
and handed over as tensors, because ``torchaudio.load`` cannot work beside a CPU torch
here and f5-tts's own reference preprocessing shells out to ffmpeg and runs Whisper from
the hub. Each sentence is one ``infer_batch_process`` call (flow matching makes a whole
sentence at once), so audio streams sentence by sentence; speed is native (F5 stretches
its duration estimate).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from f5_tts.infer.utils_infer import infer_batch_process, load_model, load_vocoder
from f5_tts.model import DiT

from bragi.audio.resample import resample
from bragi.audio.types import Audio
from bragi.backends.f5 import F5Options
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

__all__ = ["F5Engine", "architecture", "load_f5"]

log = logging.getLogger(__name__)
SAMPLE_RATE = 24_000
#: F5-TTS's heads are 64 wide (Base and Small); the width is not in the weights unless the
#: checkpoint keeps its rotary buffer.
_HEAD_DIM = 64
#: F5's context is about 22 s: what the reference leaves is for the sentence (upstream's
#: ``max_chars`` rule), but never less than a short sentence.
_CONTEXT_SECONDS = 22.0
_MIN_CHARS = 40
_MIN_REFERENCE_SECONDS = 1.0


def _tensors(checkpoint: Path) -> dict[str, tuple[int, ...]]:
    """Every tensor's name and shape, without loading a safetensors file's data."""
    if checkpoint.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(checkpoint), framework="pt") as f:
            return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}  # noqa: SIM118
    state = torch.load(str(checkpoint), map_location="cpu", mmap=True, weights_only=True)
    state = state.get("ema_model_state_dict") or state.get("model_state_dict") or state
    return {key: tuple(value.shape) for key, value in state.items() if hasattr(value, "shape")}


def architecture(shapes: dict[str, tuple[int, ...]], version: str) -> tuple[dict[str, Any], bool]:
    """The DiT arguments the checkpoint was trained with, and whether it is an EMA one."""
    ema = any(key.startswith("ema_model.") for key in shapes)
    prefix = "ema_model.transformer." if ema else "transformer."
    own = {key[len(prefix) :]: shape for key, shape in shapes.items() if key.startswith(prefix)}
    try:
        dim = own["input_embed.proj.weight"][0]
        ff = own["transformer_blocks.0.ff.ff.0.0.weight"][0]
        text_dim = own["text_embed.text_embed.weight"][1]
    except KeyError as exc:
        raise EngineError(f"not an F5-TTS DiT checkpoint: it has no {exc.args[0]}") from None
    rotary = own.get("rotary_embed.inv_freq")
    head_dim = 2 * rotary[0] if rotary else _HEAD_DIM
    count = _count
    arch = {
        "dim": dim,
        "depth": count(own, "transformer_blocks."),
        "heads": max(1, dim // head_dim),
        "dim_head": head_dim,
        "ff_mult": ff // dim,
        "text_dim": text_dim,
        "conv_layers": count(own, "text_embed.text_blocks."),
        "qk_norm": "rms_norm" if "transformer_blocks.0.attn.q_norm.weight" in own else None,
        "long_skip_connection": "long_skip_connection.weight" in own,
        # v1 and v0 differ only here: the same tensors either way.
        "text_mask_padding": version == "v1",
        "pe_attn_head": None if version == "v1" else 1,
    }
    return arch, ema


def _count(shapes: dict[str, tuple[int, ...]], prefix: str) -> int:
    return len({key[len(prefix) :].split(".")[0] for key in shapes if key.startswith(prefix)})


def load_f5(
    checkpoint: Path, vocoder: Path, version: str, device: Device, options: F5Options
) -> F5Engine:
    torch.set_num_threads(options.threads or usable_cpus())
    target = "cuda" if device == "cuda" else "cpu"
    try:
        arch, ema = architecture(_tensors(checkpoint), version)
        model = load_model(
            DiT,
            arch,
            str(checkpoint),
            mel_spec_type="vocos",
            vocab_file=str(checkpoint.parent / "vocab.txt"),
            use_ema=ema,
            device=target,
        )
        vocos = load_vocoder("vocos", is_local=True, local_path=str(vocoder), device=target)
    except BragiError:
        raise
    except Exception as exc:  # the library boundary: shapes, missing or corrupt files
        raise EngineError(f"cannot load the F5-TTS model {checkpoint}: {exc}") from exc
    model.requires_grad_(False)
    log.info("F5-TTS %s %s (%s), vocoder %s", version, checkpoint, arch, vocoder)
    return F5Engine(model, vocos, target, options)


class F5Engine:
    """A loaded F5-TTS model: clones every voice it speaks in."""

    def __init__(self, model: Any, vocoder: Any, device: str, options: F5Options) -> None:
        self._model = model
        self._vocoder = vocoder
        self._device = device
        self._options = options
        self.capabilities = TtsCapabilities(
            sample_rate=SAMPLE_RATE,
            max_native_speed=2.0,  # a shorter duration estimate; past 2x words are lost
            languages=frozenset(options.languages),
            cloning=True,
        )
        self._prompts: PromptCache[tuple[torch.Tensor, str]] = PromptCache()

    def voices(self) -> Sequence[Voice]:
        return ()  # every voice is cloned

    def synthesize(self, request: SynthesisRequest) -> Iterator[Audio]:
        """Check the request and prepare the voice now; synthesize lazily."""
        if not request.speed > 0:  # refuses NaN too
            raise InvalidRequestError("speed must be a positive number", param="speed")
        if request.language is not None:
            code = request.language.strip().lower().replace("_", "-").split("-")[0]
            if code not in self.capabilities.languages:
                known = ", ".join(sorted(self.capabilities.languages))
                raise UnsupportedCapabilityError(
                    f"this F5-TTS model does not speak {request.language!r}; it speaks {known}",
                    param="language",
                )
        if request.reference is None:
            raise UnknownVoiceError(
                f"Voice {request.voice!r} does not exist; F5-TTS has no built-in voices: clone "
                "one (POST /v1/audio/voices)",
                param="voice",
            )
        audio, ref_text = self._prompt(request.reference, request.voice)
        seconds = audio.shape[-1] / SAMPLE_RATE
        # Upstream's rule: the characters a second the reference speaks, over what is left
        # of the context, faster speech packing more in.
        per_second = len(ref_text.encode("utf-8")) / seconds
        limit = max(_MIN_CHARS, int(per_second * (_CONTEXT_SECONDS - seconds) * request.speed))
        pieces = split_sentences(
            request.text, max_chars=limit, first_max_chars=min(limit, FIRST_MAX_CHARS)
        )
        if not pieces:
            raise InvalidRequestError("input has no text to speak", param="input")
        return self._generate(pieces, audio, ref_text, request.speed)

    def _prompt(self, reference: VoiceReference, voice: str) -> tuple[torch.Tensor, str]:
        """The voice's reference as F5 takes it ([1, samples] at 24 kHz) and its text."""
        cached = self._prompts.get(reference.id)
        if cached is not None:
            return cached
        limit = self._options.max_reference_seconds
        fitted = fit_reference(reference, limit)
        text = needs_transcript("F5-TTS", voice, fitted, limit)
        audio = long_enough(fitted.audio, voice, "F5-TTS", _MIN_REFERENCE_SECONDS)
        if audio.sample_rate != SAMPLE_RATE:
            audio = resample(audio, SAMPLE_RATE)
        samples = torch.from_numpy(np.ascontiguousarray(audio.samples, dtype=np.float32))
        prompt = (samples.unsqueeze(0), text)
        self._prompts.put(reference.id, prompt, self._options.cached_voices)
        return prompt

    def _generate(
        self, pieces: list[str], audio: torch.Tensor, ref_text: str, speed: float
    ) -> Iterator[Audio]:
        options = self._options
        for piece in pieces:
            if options.seed is not None:
                torch.manual_seed(options.seed)
            try:
                waves = infer_batch_process(
                    (audio, SAMPLE_RATE),
                    ref_text,
                    [piece],
                    self._model,
                    self._vocoder,
                    mel_spec_type="vocos",
                    progress=None,
                    nfe_step=options.nfe_step,
                    cfg_strength=options.cfg_strength,
                    sway_sampling_coef=options.sway_sampling_coef,
                    speed=speed,
                    device=self._device,
                    streaming=True,
                    chunk_size=SAMPLE_RATE * 3600,  # the sentence in one piece
                )
                for wave, _rate in waves:
                    samples = np.asarray(wave, dtype=np.float32).reshape(-1)
                    if samples.size:
                        yield Audio(np.clip(samples, -1.0, 1.0), SAMPLE_RATE)
            except BragiError:
                raise
            except Exception as exc:  # the library boundary: torch, f5-tts, vocos
                raise EngineError(f"F5-TTS failed to speak {piece[:40]!r}: {exc}") from exc

    def close(self) -> None:
        self._prompts.clear()
        del self._model, self._vocoder
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
