"""Audio in and out: the Audio type, decoding, resampling, encoders."""

from bragi.audio.decode import SUPPORTED_INPUT_FORMATS, decode_audio
from bragi.audio.encode import (
    CONTENT_TYPES,
    OUTPUT_FORMATS,
    OUTPUT_SAMPLE_RATE,
    StreamEncoder,
    encode_audio,
)
from bragi.audio.resample import StreamResampler, resample
from bragi.audio.types import Audio, Samples

__all__ = [
    "CONTENT_TYPES",
    "OUTPUT_FORMATS",
    "OUTPUT_SAMPLE_RATE",
    "SUPPORTED_INPUT_FORMATS",
    "Audio",
    "Samples",
    "StreamEncoder",
    "StreamResampler",
    "decode_audio",
    "encode_audio",
    "resample",
]
