"""The Qwen3-TTS engine: torch and qwen-tts, imported only in the engine's worker.

One class for the three models. Each sentence is one call to qwen-tts's generator
(``generate_custom_voice``, ``generate_voice_clone`` or ``generate_voice_design``), so
audio streams sentence by sentence. The generator gets a frame cap per sentence; a
sentence that uses all of it never reached its stop token (a runaway, which Qwen3-TTS is
known for on short inputs) and is an error, not minutes of noise. A cloned voice's prompt
(its speech codes and speaker embedding) is made once per voice and cached.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from qwen_tts import Qwen3TTSModel

from bragi.audio.types import Audio
from bragi.backends.protocol import (
    Device,
    SynthesisRequest,
    TtsCapabilities,
    Voice,
    VoiceReference,
)
from bragi.backends.qwen3tts import (
    DESIGNED_VOICE,
    Qwen3TtsOptions,
    instructions_of,
    languages_of,
    speakers_of,
)
from bragi.backends.references import PromptCache, fit_reference, long_enough
from bragi.backends.sentences import FIRST_MAX_CHARS, split_sentences
from bragi.devices import usable_cpus
from bragi.errors import (
    BragiError,
    EngineError,
    InvalidRequestError,
    UnknownVoiceError,
    UnsupportedCapabilityError,
)

__all__ = ["Qwen3TtsEngine", "load_qwen3tts"]

log = logging.getLogger(__name__)
#: Longest sentence, in characters: about 20 s of speech.
_MAX_CHARS = 250
#: The shortest reference the speaker encoder and codec work with.
_MIN_REFERENCE_SECONDS = 1.0


def load_qwen3tts(
    model_dir: Path, config: dict[str, Any], device: Device, options: Qwen3TtsOptions
) -> Qwen3TtsEngine:
    torch.set_num_threads(options.threads or usable_cpus())
    dtype = torch.bfloat16 if device == "cuda" and options.bfloat16 else torch.float32
    try:
        model = Qwen3TTSModel.from_pretrained(
            str(model_dir),
            device_map="cuda:0" if device == "cuda" else "cpu",
            dtype=dtype,
            attn_implementation="sdpa",
            local_files_only=True,
        )
    except Exception as exc:  # the library boundary: bad config, missing or corrupt files
        raise EngineError(f"cannot load the Qwen3-TTS model in {model_dir}: {exc}") from exc
    model.model.requires_grad_(False)
    return Qwen3TtsEngine(model, config, options)


class Qwen3TtsEngine:
    """A loaded Qwen3-TTS model: speakers, cloned voices or a described voice."""

    def __init__(self, model: Any, config: dict[str, Any], options: Qwen3TtsOptions) -> None:
        self._model = model
        self._options = options
        self._variant = str(config["tts_model_type"])
        self._languages = languages_of(config)
        tokenizer = model.model.speech_tokenizer
        self._samples_per_frame = int(tokenizer.get_decode_upsample_rate())
        self.capabilities = TtsCapabilities(
            sample_rate=int(tokenizer.get_output_sample_rate()),
            native_speed=False,  # no speed input: the server time-stretches
            languages=frozenset(self._languages),
            cloning=self._variant == "base",
            instructions=instructions_of(config),
        )
        self._voices = speakers_of(config)
        self._by_folded = {voice.id.casefold(): voice.id for voice in self._voices}
        if options.language is not None and options.language not in self._languages:
            known = ", ".join(sorted(self._languages))
            raise EngineError(f"option language {options.language!r}: the model speaks {known}")
        self._prompts: PromptCache[Any] = PromptCache()

    def voices(self) -> Sequence[Voice]:
        return self._voices

    def synthesize(self, request: SynthesisRequest) -> Iterator[Audio]:
        """Check the request and make the voice's prompt now; synthesize lazily."""
        if not request.speed > 0:  # refuses NaN too
            raise InvalidRequestError("speed must be a positive number", param="speed")
        language = self._language(request.language)
        instruct = self._instructions(request.instructions)
        speak = self._speaker(request, instruct)
        pieces = split_sentences(
            request.text, max_chars=_MAX_CHARS, first_max_chars=FIRST_MAX_CHARS
        )
        if not pieces:
            raise InvalidRequestError("input has no text to speak", param="input")
        return self._generate(pieces, language, speak)

    # --- checks, before any audio ---------------------------------------------------

    def _language(self, wanted: str | None) -> str:
        code = wanted or self._options.language
        if code is None or code.strip().lower() == "auto":
            return "auto"
        primary = code.strip().lower().replace("_", "-").split("-")[0]
        name = self._languages.get(primary)
        if name is None:
            known = ", ".join(sorted(self._languages))
            raise UnsupportedCapabilityError(
                f"this Qwen3-TTS model does not speak {code!r}; it speaks {known}",
                param="language",
            )
        return name

    def _instructions(self, given: str | None) -> str | None:
        text = (given or "").strip() or self._options.default_instructions
        follows = self.capabilities.instructions
        if follows == "none":
            return None  # ignored, as OpenAI's tts-1 ignores them
        if follows == "voice" and not text:
            raise InvalidRequestError(
                "this Qwen3-TTS VoiceDesign model makes the voice from `instructions`: "
                "describe it (e.g. 'A calm, low-pitched elderly storyteller.')",
                param="instructions",
            )
        return text or None

    def _speaker(
        self, request: SynthesisRequest, instruct: str | None
    ) -> Callable[[str, str, int], list[np.ndarray]]:
        """A function speaking one sentence: (text, language, max frames) -> waves."""
        model, kwargs = self._model, self._sampling()
        if self._variant == "base":
            if request.reference is None:
                raise UnknownVoiceError(
                    f"Voice {request.voice!r} does not exist; this Qwen3-TTS Base model has "
                    "no built-in voices: clone one (POST /v1/audio/voices)",
                    param="voice",
                )
            prompt = self._prompt(request.reference)
            return lambda text, language, cap: model.generate_voice_clone(
                text, language=language, voice_clone_prompt=prompt, max_new_tokens=cap, **kwargs
            )[0]
        speaker = self._by_folded.get(request.voice.casefold())
        if speaker is None:
            available = ", ".join(voice.id for voice in self._voices)
            raise UnknownVoiceError(
                f"Voice {request.voice!r} does not exist; available voices: {available}",
                param="voice",
            )
        if self._variant == "voice_design":
            assert speaker == DESIGNED_VOICE and instruct is not None
            return lambda text, language, cap: model.generate_voice_design(
                text, language=language, instruct=instruct, max_new_tokens=cap, **kwargs
            )[0]
        return lambda text, language, cap: model.generate_custom_voice(
            text,
            language=language,
            speaker=speaker,
            instruct=instruct,
            max_new_tokens=cap,
            **kwargs,
        )[0]

    def _sampling(self) -> dict[str, Any]:
        options = self._options
        chosen = {
            "temperature": options.temperature,
            "top_k": options.top_k,
            "top_p": options.top_p,
            "repetition_penalty": options.repetition_penalty,
        }
        return {name: value for name, value in chosen.items() if value is not None}

    def _prompt(self, reference: VoiceReference) -> Any:
        """The voice's clone prompt (codes and speaker embedding), made once per voice."""
        cached = self._prompts.get(reference.id)
        if cached is not None:
            return cached
        fitted = fit_reference(reference, self._options.max_reference_seconds)
        audio = long_enough(fitted.audio, reference.id, "Qwen3-TTS", _MIN_REFERENCE_SECONDS)
        # With the transcript the model continues the reference (in-context); without
        # one it clones from the speaker embedding alone, which is less close.
        in_context = fitted.transcript is not None
        try:
            prompt = self._model.create_voice_clone_prompt(
                ref_audio=(np.ascontiguousarray(audio.samples), audio.sample_rate),
                ref_text=fitted.transcript,
                x_vector_only_mode=not in_context,
            )
        except Exception as exc:  # the library boundary
            raise EngineError(
                f"Qwen3-TTS could not make a prompt from voice {reference.id!r}: {exc}"
            ) from exc
        log.info(
            "voice %s: %.1f s of reference, %s",
            reference.id,
            audio.duration,
            "in-context with its transcript" if in_context else "speaker embedding only",
        )
        self._prompts.put(reference.id, prompt, self._options.cached_voices)
        return prompt

    # --- generation --------------------------------------------------------------

    def frame_cap(self, text: str) -> int:
        """Most codec frames a sentence of ``text`` may take."""
        options = self._options
        return options.max_frames_base + round(options.max_frames_per_char * len(text))

    def _generate(
        self,
        pieces: list[str],
        language: str,
        speak: Callable[[str, str, int], list[np.ndarray]],
    ) -> Iterator[Audio]:
        rate = self.capabilities.sample_rate
        for piece in pieces:
            cap = self.frame_cap(piece)
            if self._options.seed is not None:
                torch.manual_seed(self._options.seed)
            try:
                with torch.inference_mode():
                    # The last token generated gets no codes of its own: one more than the
                    # cap lets a sentence that stops in time show that it did.
                    waves = speak(piece, language, cap + 1)
            except BragiError:
                raise
            except Exception as exc:  # the library boundary: torch, transformers
                raise EngineError(f"Qwen3-TTS failed to speak {piece[:40]!r}: {exc}") from exc
            samples = np.asarray(waves[0], dtype=np.float32).reshape(-1)
            frames = round(samples.size / self._samples_per_frame)
            if frames >= cap:
                raise EngineError(
                    f"Qwen3-TTS did not finish the sentence {piece[:40]!r} within {cap} frames "
                    f"({cap * self._samples_per_frame / rate:.1f} s of audio): it missed its "
                    "stop token. The cap is max_frames_base + max_frames_per_char per character.",
                    code="runaway_generation",
                )
            if samples.size:
                yield Audio(np.clip(samples, -1.0, 1.0), rate)

    def close(self) -> None:
        self._prompts.clear()
        del self._model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
