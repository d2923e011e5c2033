"""Speech synthesis, shared by every front end (the HTTP API, the command line, live
protocols): what to ask the engine, and what the server does on top of it."""

from __future__ import annotations

from bragi.backends.protocol import SynthesisRequest, TextToSpeech, VoiceReference

__all__ = ["synthesis_plan"]


def synthesis_plan(
    text: str,
    voice: str,
    speed: float,
    engine: TextToSpeech,
    reference: VoiceReference | None = None,
    language: str | None = None,
    instructions: str | None = None,
) -> tuple[SynthesisRequest, float]:
    """The engine's request and the tempo the server applies on top (pitch kept).

    Engines change speed themselves as far as they do it faithfully; beyond their
    ``max_native_speed``, or entirely when they have no native speed, the server
    time-stretches. ``instructions`` go to engines that follow them; the others never
    see them (ignored, as OpenAI's ``tts-1`` ignores them).
    """
    capabilities = engine.capabilities
    native = min(speed, capabilities.max_native_speed) if capabilities.native_speed else 1.0
    request = SynthesisRequest(
        text=text,
        voice=voice,
        speed=native,
        language=language,
        reference=reference,
        instructions=instructions if capabilities.instructions != "none" else None,
    )
    return request, speed / native
