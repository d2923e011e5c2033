"""Audio in and out: the Audio type, decoding, resampling, encoders, subtitles."""

from bragi.audio.types import Audio, Samples

__all__ = ["Audio", "Samples"]
